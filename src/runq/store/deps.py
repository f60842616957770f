"""Dependencies between jobs, the parts both stores share (model/deps.py decides).

A job with ``JobSpec.after`` is inserted ``waiting`` (by the row-by-row insert path, so
plain batches keep theirs) with one ``job_deps`` row per parent. Whenever jobs end, the
store settles their waiting dependents in the same transaction; a dependent cancelled
that way ends in turn, so its own dependents are settled next.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, NamedTuple

from runq.errors import UnknownJob
from runq.model import JobSpec, JobState
from runq.model.deps import Settled, settle, with_previous
from runq.store import rows

WAITING: Final = str(JobState.WAITING)
STATE_INDEX: Final = 4  # position of the state in an insert row


class Released(NamedTuple):
    queues: set[str]  # queues that got a dependent ready to run
    cancelled: list[int]  # dependents cancelled because a parent failed or was cancelled


def any_after(specs: Sequence[JobSpec]) -> bool:
    return any(s.after for s in specs)


def parents_wanted(specs: Sequence[JobSpec]) -> list[int]:
    return sorted({p for s in specs for p in s.after})


def check_parents(wanted: Sequence[int], found: set[int]) -> None:
    """Refuse a batch naming a parent that does not exist (UnknownJob, nothing stored).
    Parents must exist before their dependents, so dependencies never form a cycle."""
    for parent in wanted:
        if parent not in found:
            raise UnknownJob(f"no job with id {parent} (named in after)")


def insert_row(s: JobSpec, now: float) -> tuple[Any, ...]:
    """rows.insert_row, in state waiting for a job with parents."""
    row = rows.insert_row(s, now)
    return (*row[:STATE_INDEX], WAITING, *row[STATE_INDEX + 1 :]) if s.after else row


def dep_rows(
    specs: Sequence[JobSpec], ids: Sequence[int], merged: Sequence[int]
) -> list[tuple[int, int, int, bool, bool]]:
    """(job, parent, pos, after_any, pass_results) of each new job with parents."""
    skip = set(merged)
    return [
        (ids[i], parent, pos, s.after_any, s.pass_results)
        for i, s in enumerate(specs)
        if s.after and i not in skip
        for pos, parent in enumerate(dict.fromkeys(s.after))
    ]


def new_dependents(
    specs: Sequence[JobSpec], ids: Sequence[int], merged: Sequence[int]
) -> list[int]:
    skip = set(merged)
    return [ids[i] for i, s in enumerate(specs) if s.after and i not in skip]


def verdict(parents: Sequence[tuple[Any, ...]]) -> tuple[Settled | None, bool]:
    """From rows of (parent, state, after_any, pass_results, result): what becomes of
    the dependent, and whether it takes its parents' results."""
    if not parents:  # cannot happen: a waiting job has parents; let it run
        return Settled(JobState.QUEUED), False
    after_any, pass_results = bool(parents[0][2]), bool(parents[0][3])
    return settle([(r[0], JobState(r[1])) for r in parents], after_any), pass_results


def args_with_results(args: bytes, parents: Sequence[tuple[Any, ...]]) -> bytes:
    """A dependent's msgpack [args, kwargs] with kwargs["previous"] set."""
    a, kw = rows.dec.decode(args)
    results = [None if r[4] is None else rows.dec.decode(r[4]) for r in parents]
    return rows.enc.encode((a, with_previous(kw, results)))
