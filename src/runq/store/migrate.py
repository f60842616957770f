"""Numbered migrations: ``NNN_name.sql`` files applied in order, tracked in user_version."""

from __future__ import annotations

import sqlite3
from importlib import resources

from runq.errors import StoreError


def migrations(package: str = "runq.store.sqlite") -> list[tuple[int, str]]:
    files = resources.files(package)
    found = []
    for entry in files.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:3].isdigit():
            found.append((int(name[:3]), entry.read_text()))
    return sorted(found)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to the newest schema; returns the version it ends at."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    steps = migrations()
    newest = steps[-1][0] if steps else 0
    if version > newest:
        raise StoreError(
            f"the store has schema version {version}, newer than this runq knows ({newest})"
        )
    for number, sql in steps:
        if number > version:
            conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
            version = number
    return int(version)
