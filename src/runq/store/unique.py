"""Insert rows of a batch with unique jobs, shared by the SQLite and PostgreSQL stores.

Such a batch takes its own path (store/*/ops.py ``insert_unique``), so a batch without
unique jobs goes in exactly as before. A row is ``rows.insert_row`` and then the unique
identity and the end of its window; a unique job's ``key`` names its identity and is
not an idempotency key (it would hold forever, where uniqueness ends with the window).
"""

from __future__ import annotations

from typing import Any, Final

from runq.model import JobSpec
from runq.model.unique import identity
from runq.store import rows

WIDTH: Final = len(rows.INSERT_COLUMNS.split(",")) + 2


def identities(specs: list[JobSpec]) -> tuple[list[str | None], list[str]]:
    """Each job's identity (None: not unique) and the distinct ones, sorted."""
    idents = [identity(s) for s in specs]
    return idents, sorted({i for i in idents if i is not None})


def unique_row(spec: JobSpec, ident: str | None, now: float) -> tuple[Any, ...]:
    row = rows.insert_row(spec, now)
    if ident is None:
        return (*row, None, None)
    assert spec.unique_for is not None
    key = rows.KEY_INDEX
    return (*row[:key], None, *row[key + 1 :], ident, now + spec.unique_for)
