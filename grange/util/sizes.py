"""Byte sizes and durations as operators write them in config files and read them in CLI output.

Why this exists: Garage's config accepts sizes as integers or strings parsed by the Rust
``bytesize`` crate (``block_size = "1M"``, ``lmdb_map_size = "1T"``, ``capacity = "256MiB"``)
and durations parsed by the ``parse_duration`` crate (``metadata_auto_snapshot_interval =
"6h"``). A Garage operator's file must mean the same thing here, so the grammar below follows
those crates rather than Python habits:

- sizes: an integer number of bytes, or a decimal number (``"1.5"``) followed by optional
  spaces and a unit, case-insensitive: ``B``; ``K``/``KB``, ``M``/``MB``, ``G``/``GB``,
  ``T``/``TB``, ``P``/``PB`` are powers of 1000; ``Ki``/``KiB`` ... ``Pi``/``PiB`` are powers
  of 1024 (``E``/``EiB`` too, beyond bytesize, so that what ``format_size`` prints always
  reads back). A fractional result is truncated toward zero, as bytesize does (``"1.5K"`` = 1500).
  A bare decimal without a unit (``"1.5"``) is refused, as bytesize refuses it.
- durations: one or more ``<number><unit>`` terms (``"1h30m"``, ``"1 day 2 hours"``), or one
  bare number meaning seconds. Units: ns, us/µs, ms, s/sec/second(s), m/min/minute(s),
  h/hr/hour(s), d/day(s), w/week(s), month(s) (30.436875 days) and y/year(s) (365.2425 days),
  which are parse_duration's. Unlike parse_duration, stray words and negative terms are
  refused: in a config file they are mistakes, not intentions.

``format_size`` prints like bytesize's ``Display`` (what ``garage layout show`` prints):
one decimal and a decimal unit, ``"1.0 GB"``; ``format_size_iec`` prints ``"1.0 GiB"``.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "KB",
    "MB",
    "GB",
    "TB",
    "PB",
    "KIB",
    "MIB",
    "GIB",
    "TIB",
    "PIB",
    "EB",
    "EIB",
    "SIZE_MAX",
    "parse_size",
    "format_size",
    "format_size_iec",
    "parse_duration",
]

KB = 1000
MB = 1000**2
GB = 1000**3
TB = 1000**4
PB = 1000**5
KIB = 1024
MIB = 1024**2
GIB = 1024**3
TIB = 1024**4
PIB = 1024**5
EB = 1000**6
EIB = 1024**6

# Sizes are u64 in Garage; a larger value is a typo, and would not fit the on-disk formats.
SIZE_MAX = 2**64 - 1

_SIZE_UNITS: dict[str, int] = {
    "b": 1,
    "k": KB,
    "kb": KB,
    "m": MB,
    "mb": MB,
    "g": GB,
    "gb": GB,
    "t": TB,
    "tb": TB,
    "p": PB,
    "pb": PB,
    "ki": KIB,
    "kib": KIB,
    "mi": MIB,
    "mib": MIB,
    "gi": GIB,
    "gib": GIB,
    "ti": TIB,
    "tib": TIB,
    "pi": PIB,
    "pib": PIB,
    # Not in bytesize's parser, but format_size() prints them, so they must read back.
    "e": EB,
    "eb": EB,
    "ei": EIB,
    "eib": EIB,
}

_SIZE_EXAMPLES = 'such as 1048576, "1M", "10 GB" or "256MiB"'
_SIZE_RE = re.compile(r"(?P<number>[0-9]*\.?[0-9]*)\s*(?P<unit>[A-Za-z]*)")


def _show(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def parse_size(value: int | str, what: str = "size") -> int:
    """Return the number of bytes ``value`` denotes, with bytesize's units (see module doc).

    ``what`` names the setting in the error message. Raises ``ValueError`` for anything that
    is not a non-negative size of at most ``SIZE_MAX`` bytes.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{what} must be a byte size {_SIZE_EXAMPLES}, got {_show(value)}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{what} must not be negative, got {value}")
        if value > SIZE_MAX:
            raise ValueError(f"{what} is too large (at most {SIZE_MAX} bytes), got {value}")
        return value
    text = value.strip()
    m = _SIZE_RE.fullmatch(text)
    if m is None or m["number"] in ("", "."):
        raise ValueError(f"{what} must be a byte size {_SIZE_EXAMPLES}, got {_show(value)}")
    number, unit = m["number"], m["unit"]
    if not unit:
        if "." in number:
            raise ValueError(
                f"{what} must be a whole number of bytes or have a unit {_SIZE_EXAMPLES}, got {_show(value)}"
            )
        result = int(number)
    else:
        factor = _SIZE_UNITS.get(unit.lower())
        if factor is None:
            raise ValueError(
                f"{what} has an unknown unit {_show(unit)} in {_show(value)}: use B, K/KB, M/MB, "
                "G/GB, T/TB, P/PB, E/EB (powers of 1000) or KiB, MiB, GiB, TiB, PiB, EiB (powers of 1024)"
            )
        if "." in number:
            # bytesize computes (f64 * factor) as u64: truncation toward zero.
            result = int(float(number) * factor)
        else:
            result = int(number) * factor
    if result > SIZE_MAX:
        raise ValueError(f"{what} is too large (at most {SIZE_MAX} bytes), got {_show(value)}")
    return result


def _format(n: int, base: int, prefixes: str, suffix: str) -> str:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"a size must be a non-negative integer, got {n!r}")
    if n < base:
        return f"{n} B"
    # Integer search for the exponent: log(1000**3)/log(1000) is 2.9999999999999996 in floats.
    exp = 1
    while exp < len(prefixes) and base ** (exp + 1) <= n:
        exp += 1
    return f"{n / base**exp:.1f} {prefixes[exp - 1]}{suffix}"


def format_size(n: int) -> str:
    """Human form with decimal units and one decimal, like ``garage layout show``: ``"1.5 GB"``."""
    return _format(n, 1000, "KMGTPE", "B")


def format_size_iec(n: int) -> str:
    """Human form with binary units and one decimal: ``"1.0 GiB"`` for 2**30."""
    return _format(n, 1024, "KMGTPE", "iB")


# parse_duration's unit spellings, lower-cased, in seconds.
_MONTH_S = 2_629_746.0  # 30.436875 days: parse_duration's (and humantime's) Gregorian month
_YEAR_S = 31_556_952.0  # 365.2425 days
_DURATION_UNITS: dict[str, float] = {}
for _names, _seconds in (
    (("ns", "nsec", "nsecs", "nano", "nanos", "nanosecond", "nanoseconds"), 1e-9),
    (("us", "µs", "μs", "usec", "usecs", "micro", "micros", "microsecond", "microseconds"), 1e-6),
    (("ms", "msec", "msecs", "milli", "millis", "millisecond", "milliseconds"), 1e-3),
    (("s", "sec", "secs", "second", "seconds"), 1.0),
    (("m", "min", "mins", "minute", "minutes"), 60.0),
    (("h", "hr", "hrs", "hour", "hours"), 3600.0),
    (("d", "day", "days"), 86400.0),
    (("w", "wk", "wks", "week", "weeks"), 604800.0),
    (("mo", "mon", "month", "months"), _MONTH_S),
    (("y", "yr", "yrs", "year", "years"), _YEAR_S),
):
    for _name in _names:
        _DURATION_UNITS[_name] = _seconds

_DURATION_TERM_RE = re.compile(r"\s*(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?P<unit>[^\W\d_]*)\s*,?")


def parse_duration(value: str | int | float, what: str = "duration") -> float:
    """Return the number of seconds ``value`` denotes: ``"6h"``, ``"1h30m"``, ``"90s"``, ``"30d"``.

    A bare number (string or int/float) is seconds. Raises ``ValueError`` naming ``what``
    for anything else, including negative or non-finite values.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f'{what} must be a duration such as "6h", "1h30m" or "90s", got {value!r}')
    if not isinstance(value, str):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{what} must be a non-negative number of seconds, got {value!r}")
        return float(value)
    text = value.strip()
    if not text:
        raise ValueError(f'{what} must be a duration such as "6h", "1h30m" or "90s", got ""')
    total = 0.0
    pos = 0
    terms = 0
    bare = False
    while pos < len(text):
        m = _DURATION_TERM_RE.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f'{what} must be a duration such as "6h", "1h30m" or "90s", got {_show(value)}')
        unit = m["unit"]
        if not unit:
            bare = True
            seconds = 1.0
        else:
            seconds = _DURATION_UNITS.get(unit.lower()) if unit != "M" else _MONTH_S
            if seconds is None:
                raise ValueError(
                    f"{what} has an unknown time unit {_show(unit)} in {_show(value)}: "
                    "use ms, s, m, h, d, w, month or y"
                )
        total += float(m["number"]) * seconds
        terms += 1
        pos = m.end()
    if bare and terms > 1:
        raise ValueError(f"{what} has a number without a unit in {_show(value)}")
    return total
