"""One SQLite writer thread with group commit.

Operations from the event loop queue up; the thread takes everything waiting, runs it
in one transaction, commits once and hands every result back to the loop in one call.
The event loop never touches the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from runq.errors import RunqError, StoreError

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
Item = tuple[Op, asyncio.Future[Any], asyncio.AbstractEventLoop]

MAX_GROUP = 2_000  # operations in one transaction


class Writer:
    def __init__(
        self, connect: Callable[[], sqlite3.Connection], name: str = "runq-sqlite"
    ) -> None:
        self._connect = connect
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise StoreError(f"cannot open the store: {self._error}") from None
        self.transactions = 0

    def run(self, op: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue ``op`` to run inside the next transaction; await its result."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put((op, fut, loop))
        return fut

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _main(self) -> None:
        try:
            conn = self._connect()
        except Exception as exc:  # reported to the constructor
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._serve(conn)
        finally:
            conn.close()

    def _serve(self, conn: sqlite3.Connection) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = self._drain(batch)
            _deliver(self._execute(conn, batch))
            self.transactions += 1
            if stop:
                return

    def _drain(self, batch: list[Item]) -> bool:
        while len(batch) < MAX_GROUP:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False
            if item is None:
                return True
            batch.append(item)
        return False

    def _execute(self, conn: sqlite3.Connection, batch: list[Item]) -> list[tuple[Item, Any, bool]]:
        try:
            conn.execute("BEGIN IMMEDIATE")
            results = [(item, item[0](conn), True) for item in batch]
            conn.execute("COMMIT")
            return results
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        # One operation failed: run each in its own transaction so the others still land.
        return [self._alone(conn, item) for item in batch]

    @staticmethod
    def _alone(conn: sqlite3.Connection, item: Item) -> tuple[Item, Any, bool]:
        try:
            conn.execute("BEGIN IMMEDIATE")
            value = item[0](conn)
            conn.execute("COMMIT")
            return (item, value, True)
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            err = exc if isinstance(exc, RunqError) else StoreError(f"store failure: {exc}")
            return (item, err, False)


def _deliver(results: list[tuple[Item, Any, bool]]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Item, Any, bool]]] = {}
    for res in results:
        by_loop.setdefault(res[0][2], []).append(res)
    for loop, group in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed while we worked
            loop.call_soon_threadsafe(_resolve, group)


def _resolve(group: list[tuple[Item, Any, bool]]) -> None:
    for (_, fut, _), value, ok in group:
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
