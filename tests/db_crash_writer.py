"""Writer for the SIGKILL crash test of the db engines (`tests/test_db.py`).

Usage: `python tests/db_crash_writer.py ENGINE PATH [FSYNC]` (FSYNC is 1 or 0, default 0).

Loops forever doing one transaction per step: read the counter N-1 from tree `a`, then write
`a[b"counter"] = N`, a log entry `c[b"entry-%08d" % N] = b""`, a 3000-byte random blob in
tree `d` (so a commit touches several pages), and last `b[b"counter"] = N`. After each commit
it prints N and flushes: a printed N is an acknowledged commit. It resumes from the counter
already stored, so the test can kill and restart it repeatedly on the same database.
"""

from __future__ import annotations

import os
import sys

from grange.db import Tx, open_db


def main() -> None:
    engine, path = sys.argv[1], sys.argv[2]
    fsync = len(sys.argv) > 3 and sys.argv[3] == "1"
    db = open_db(engine, path, fsync=fsync)
    a, b, c, d = (db.open_tree(name) for name in "abcd")

    def step(tx: Tx) -> int:
        raw = tx.get(a, b"counter")
        n = (0 if raw is None else int(raw)) + 1
        tx.insert(a, b"counter", b"%d" % n)
        tx.insert(c, b"entry-%08d" % n, b"")
        tx.insert(d, b"blob-%02d" % (n % 32), os.urandom(3000))
        tx.insert(b, b"counter", b"%d" % n)
        return n

    while True:
        n = db.transaction(step)
        sys.stdout.write(f"{n}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
