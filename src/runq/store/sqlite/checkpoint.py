"""WAL checkpoints on their own thread, so the writer never waits for an fsync of the
database file (with automatic checkpoints, one commit in a few hundred paid for it)."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger("runq.store")


class Checkpointer:
    def __init__(self, connect: Callable[[], sqlite3.Connection], every: float = 0.5) -> None:
        self._connect = connect
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="runq-sqlite-ckpt", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        conn = self._connect()
        try:
            while not self._stop.wait(self._every):
                self.checkpoint(conn)
            self.checkpoint(conn)
        finally:
            conn.close()

    @staticmethod
    def checkpoint(conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:  # busy or I/O: the next round tries again
            log.warning("WAL checkpoint failed: %s", exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
