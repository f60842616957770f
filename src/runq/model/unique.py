"""Unique jobs: which submits are twins, and what a submit answers.

A job submitted with ``unique_for`` has an identity: its ``key`` when it has one, else
its task, args and kwargs in a canonical form (msgpack with sorted map keys), always
within its queue. While a job with that identity is scheduled, queued or running and
less than its ``unique_for`` seconds old, a twin is merged into it (the submit answers
with its id) or, with ``unique_mode="refuse"``, refused with ``AlreadyQueued``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Final

import msgspec

from runq.errors import AlreadyQueued, InvalidArguments
from runq.model.spec import JobSpec

_canonical = msgspec.msgpack.Encoder(order="sorted")
REFUSE: Final = "refuse"


class SubmitIds(list[int]):
    """The ids a submit answers, in the order of its jobs, and ``merged``: the
    positions answered with a job that was already there (an idempotency key already
    used, or a unique job's unfinished twin, stored before or earlier in the batch)."""

    __slots__ = ("merged",)

    def __init__(self, ids: Iterable[int] = (), merged: Iterable[int] = ()) -> None:
        super().__init__(ids)
        self.merged: list[int] = sorted(merged)


def any_unique(specs: Sequence[JobSpec]) -> bool:
    """Whether any job of the batch is unique (one pass: the hot path pays little).
    Raises InvalidArguments for a ``unique_mode`` without ``unique_for``."""
    found = False
    for s in specs:
        if s.unique_for is not None:
            found = True
        elif s.unique_mode != "merge":
            raise InvalidArguments("invalid job: unique_mode needs unique_for")
    return found


def identity(spec: JobSpec) -> str | None:
    """The hex digest twins share (None: the job is not unique)."""
    if spec.unique_for is None:
        return None
    if spec.key is not None:
        parts: tuple[object, ...] = (spec.queue, "key", spec.key)
    else:
        parts = (spec.queue, "call", spec.task, spec.args, spec.kwargs)
    return hashlib.blake2b(_canonical.encode(parts), digest_size=16).hexdigest()


def what(spec: JobSpec) -> str:
    return "key" if spec.key is not None else "task and arguments"


def refused(spec: JobSpec, job_id: int, state: str) -> AlreadyQueued:
    """The error a refuse-mode twin of job ``job_id`` gets."""
    return AlreadyQueued(
        f"job {job_id} is already {state} with the same {what(spec)}"
        f" (unique for {spec.unique_for:g} s)",
        job_id,
    )


def refused_in_batch(spec: JobSpec, first: int, second: int) -> AlreadyQueued:
    return AlreadyQueued(
        f"jobs {first} and {second} of the batch (counting from 0) have the same"
        f" {what(spec)} and are unique: nothing was submitted"
    )


class Plan:
    """How a batch with unique jobs goes in, given the unfinished twins already stored
    (``held``: identity -> (id, state)). ``insert`` lists the positions to store;
    every other position is answered with a stored twin (``existing``) or an earlier
    position of the batch (``twin_of``). Raises AlreadyQueued for a refused twin."""

    def __init__(
        self,
        specs: Sequence[JobSpec],
        idents: Sequence[str | None],
        held: dict[str, tuple[int, str]],
    ) -> None:
        self.insert: list[int] = []
        self.existing: dict[int, int] = {}  # position -> stored job id
        self.twin_of: dict[int, int] = {}  # position -> earlier position
        first: dict[str, int] = {}
        for i, (spec, ident) in enumerate(zip(specs, idents, strict=True)):
            if ident is None:
                self.insert.append(i)
            elif ident in held:
                job_id, state = held[ident]
                if spec.unique_mode == REFUSE:
                    raise refused(spec, job_id, state)
                self.existing[i] = job_id
            elif ident in first:
                if spec.unique_mode == REFUSE:
                    raise refused_in_batch(spec, first[ident], i)
                self.twin_of[i] = first[ident]
            else:
                first[ident] = i
                self.insert.append(i)

    def answer(self, n: int, inserted: SubmitIds) -> SubmitIds:
        """The ids of all ``n`` positions from the ids of the inserted ones."""
        ids = [0] * n
        merged = [self.insert[k] for k in inserted.merged]
        for pos, job_id in zip(self.insert, inserted, strict=True):
            ids[pos] = job_id
        for pos, job_id in self.existing.items():
            ids[pos] = job_id
        for pos, earlier in sorted(self.twin_of.items()):
            ids[pos] = ids[earlier]
        return SubmitIds(ids, [*merged, *self.existing, *self.twin_of])
