"""Network addresses as written in the config and on the command line."""

from __future__ import annotations

import ipaddress
import re

_HOSTNAME_RE = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})")
_IPV4ISH_RE = re.compile(r"[0-9.]+")


def split_host_port(value: str, *, allow_port_zero: bool = True) -> tuple[str, int]:
    """Split ``"host:port"`` or ``"[ipv6]:port"`` into ``(host, port)``; host keeps no brackets.

    The host may be an IP address or a DNS name (resolved when connecting, as Garage does
    for ``rpc_public_addr`` and bootstrap peers). Raises ``ValueError`` with the reason.
    """
    if not isinstance(value, str):
        raise ValueError("not a string")
    if value.startswith("["):
        close = value.find("]")
        if close < 0 or value[close + 1 : close + 2] != ":":
            raise ValueError("expected [IPV6]:PORT")
        host, port_text = value[1:close], value[close + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep:
            raise ValueError("no :PORT")
        if not host:
            raise ValueError("no HOST")
        if ":" in host:
            raise ValueError('put an IPv6 address in brackets, e.g. "[::1]:3901"')
        if _IPV4ISH_RE.fullmatch(host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise ValueError(f"{host!r} is not an IPv4 address") from None
        elif not _HOSTNAME_RE.fullmatch(host):
            raise ValueError(f"{host!r} is not a host name or IP address")
    if not port_text.isascii() or not port_text.isdigit():
        raise ValueError(f"port {port_text!r} is not a number")
    port = int(port_text)
    if port > 65535 or (port == 0 and not allow_port_zero):
        raise ValueError(f"port {port} is out of range")
    return host, port
