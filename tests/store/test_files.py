"""Store contract for files (store/base.FileStore, JobSpec.files), on every backend:
blobs written in order a chunk at a time, checked when finished, read back once
complete; the input files of jobs; their purge and their sweep."""

from __future__ import annotations

import gc
import hashlib
import tracemalloc
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest
from test_contract import (  # type: ignore[import-not-found]
    Backend,
    backend,
    claim,
    clock,
    durable_backend,
    store,
)

from runq.broker.config import BrokerConfig
from runq.broker.duties import Duties
from runq.clock import FakeClock
from runq.errors import Conflict, FileMismatch, UnknownFile
from runq.model import JobSpec, JobState, Outcome
from runq.model.files import CHUNK, EMPTY_SHA256, BlobInfo, FileRef, new_blob_id
from runq.store.base import Store
from runq.store.open import StoreConfig, open_store

__all__ = ["Backend", "backend", "clock", "durable_backend", "store"]  # shared fixtures

GRACE = 3600.0
MiB = 2**20


def blob_for(
    data: bytes,
    now: float,
    name: str = "in.txt",
    kind: Any = "input",
    job_id: int | None = None,
    fence: int | None = None,
) -> BlobInfo:
    sha = hashlib.sha256(data).hexdigest()
    return BlobInfo(new_blob_id(), name, len(data), sha, kind, now, job_id=job_id, fence=fence)


async def upload(store: Store, info: BlobInfo, data: bytes, now: float, chunk: int = CHUNK) -> None:
    """Write ``data`` into the created blob ``info`` a chunk at a time."""
    for at in range(0, len(data), chunk):
        piece = data[at : at + chunk]
        assert await store.write_blob(info.id, at, piece, now) == at + len(piece)


async def stored(store: Store, data: bytes, now: float, **kw: Any) -> FileRef:
    """A complete blob holding ``data``, as a job names it."""
    info = blob_for(data, now, **kw)
    await store.create_blob(info)
    await upload(store, info, data, now)
    done = await store.finish_blob(info.id, now)
    return FileRef(done.name, done.id, done.size, done.sha256)


async def read_all(store: Store, blob_id: str, chunk: int = CHUNK) -> bytes:
    out, at = bytearray(), 0
    while piece := await store.read_blob(blob_id, at, chunk):
        out += piece
        at += len(piece)
    return bytes(out)


async def fetch(store: Store, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` (written for SQLite, ``?`` parameters) on either backend."""
    if hasattr(store, "_run"):  # PostgreSQL
        n = iter(range(1, 100))
        pg_sql = "".join(f"${next(n)}" if c == "?" else c for c in sql)

        async def op(conn: Any) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in await conn.fetch(pg_sql, *args)]

        found: list[tuple[Any, ...]] = await store._run(op, tx=False)
        return found
    rows: list[tuple[Any, ...]] = await store._read(lambda c: c.execute(sql, args).fetchall())
    return rows


async def has_bytes(store: Store, blob_id: str) -> bool:
    """Whether any byte of the blob is still stored (a file, or a chunk row)."""
    if hasattr(store, "_run"):
        return bool(await fetch(store, "SELECT 1 FROM blob_chunks WHERE blob_id = ?", blob_id))
    root: Path = store._blobs._dir.root  # type: ignore[attr-defined]
    return any(root.glob(blob_id + "*"))


# -- blobs ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 10, 3 * CHUNK + 17])
async def test_a_blob_round_trips_with_its_checksum(
    store: Store, clock: FakeClock, size: int
) -> None:
    data = bytes(i % 251 for i in range(size))
    info = blob_for(data, clock())
    await store.create_blob(info)
    fresh = await store.blob(info.id)
    assert fresh is not None and (fresh.received, fresh.complete) == (0, False)
    assert (fresh.name, fresh.size, fresh.sha256, fresh.kind) == (
        "in.txt",
        size,
        info.sha256,
        "input",
    )
    await upload(store, info, data, clock())
    mid = await store.blob(info.id)
    assert mid is not None and (mid.received, mid.complete) == (size, False)
    done = await store.finish_blob(info.id, clock())
    assert (done.received, done.complete, done.size, done.sha256) == (size, True, size, info.sha256)
    back = await read_all(store, info.id, chunk=CHUNK // 3)
    assert hashlib.sha256(back).hexdigest() == info.sha256 and back == data
    assert await store.read_blob(info.id, size, CHUNK) == b""
    assert await store.read_blob(info.id, size + 5, CHUNK) == b""
    if size:
        assert await store.read_blob(info.id, size - 3, CHUNK) == data[-3:]


async def test_finishing_a_complete_blob_again_answers_it_as_it_is(
    store: Store, clock: FakeClock
) -> None:
    ref = await stored(store, b"hello", clock())
    again = await store.finish_blob(ref.blob, clock.advance(5))
    assert again.complete and again.received == 5 and again.sha256 == ref.sha256


async def test_a_write_must_go_at_the_bytes_stored_so_far_and_fit_the_size(
    store: Store, clock: FakeClock
) -> None:
    data = b"x" * 100
    info = blob_for(data, clock())
    await store.create_blob(info)
    assert await store.write_blob(info.id, 0, data[:40], clock()) == 40
    with pytest.raises(Conflict, match="offset 40"):
        await store.write_blob(info.id, 50, data[50:60], clock())  # a gap
    with pytest.raises(Conflict, match="offset 40"):
        await store.write_blob(info.id, 0, data[:40], clock())  # again
    with pytest.raises(Conflict, match="passes the 100 bytes"):
        await store.write_blob(info.id, 40, data[40:] + b"!", clock())
    found = await store.blob(info.id)
    assert found is not None and found.received == 40
    assert await store.write_blob(info.id, 40, data[40:], clock()) == 100
    await store.finish_blob(info.id, clock())
    with pytest.raises(Conflict, match="finished"):
        await store.write_blob(info.id, 100, b"", clock())
    with pytest.raises(UnknownFile):
        await store.write_blob(new_blob_id(), 0, b"x", clock())


async def test_a_blob_id_is_created_once(store: Store, clock: FakeClock) -> None:
    info = blob_for(b"abc", clock())
    await store.create_blob(info)
    await store.write_blob(info.id, 0, b"ab", clock())
    with pytest.raises(Conflict):
        await store.create_blob(info)
    found = await store.blob(info.id)
    assert found is not None and found.received == 2  # the first upload is untouched


async def test_a_mismatch_on_finish_drops_the_bytes(store: Store, clock: FakeClock) -> None:
    data = b"payload" * 1000
    info = blob_for(data, clock())
    await store.create_blob(info)
    await upload(store, info, data[:-1], clock(), chunk=1000)  # one byte short
    with pytest.raises(FileMismatch, match="bytes, not the"):
        await store.finish_blob(info.id, clock())
    found = await store.blob(info.id)
    assert found is not None and (found.received, found.complete) == (0, False)
    assert not await store.write_blob(info.id, 0, b"", clock())
    wrong = bytes(reversed(data))  # the right size, the wrong bytes
    await upload(store, info, wrong, clock(), chunk=3000)
    with pytest.raises(FileMismatch, match="SHA-256"):
        await store.finish_blob(info.id, clock())
    found = await store.blob(info.id)
    assert found is not None and found.received == 0
    await upload(store, info, data, clock())  # the upload starts again and succeeds
    assert (await store.finish_blob(info.id, clock())).complete
    assert await read_all(store, info.id) == data


async def test_reading_an_unknown_or_unfinished_blob_is_refused(
    store: Store, clock: FakeClock
) -> None:
    info = blob_for(b"abcdef", clock())
    await store.create_blob(info)
    await store.write_blob(info.id, 0, b"abc", clock())
    with pytest.raises(UnknownFile, match="not finished"):
        await store.read_blob(info.id, 0, CHUNK)
    with pytest.raises(UnknownFile, match="no file"):
        await store.read_blob(new_blob_id(), 0, CHUNK)
    with pytest.raises(UnknownFile):
        await store.finish_blob(new_blob_id(), clock())
    assert await store.blob(new_blob_id()) is None


async def test_an_upload_goes_on_after_the_store_was_opened_again(
    durable_backend: Backend, clock: FakeClock
) -> None:
    # Given half an upload stored by a store that then closed (its running hash is lost)
    data = bytes(range(256)) * 5000
    info = blob_for(data, clock())
    first = durable_backend.open()
    try:
        await first.create_blob(info)
        await upload(first, info, data[:CHUNK], clock())
    finally:
        await first.close()
    # When another store (a restarted broker, or another one) takes the rest and finishes
    second = durable_backend.open()
    try:
        found = await second.blob(info.id)
        assert found is not None and found.received == CHUNK
        for at in range(CHUNK, len(data), CHUNK):
            await second.write_blob(info.id, at, data[at : at + CHUNK], clock())
        # Then the digest is computed from the stored bytes, and they read back whole
        assert (await second.finish_blob(info.id, clock())).complete
        assert await read_all(second, info.id) == data
    finally:
        await second.close()


async def test_stored_bytes_counts_the_declared_sizes_of_every_blob(
    store: Store, clock: FakeClock
) -> None:
    assert await store.stored_bytes() == 0
    await stored(store, b"x" * 1000, clock())
    await store.create_blob(blob_for(b"y" * 500, clock()))  # declared, not yet sent
    assert await store.stored_bytes() == 1500


# -- the input files of jobs ---------------------------------------------------------


async def test_a_job_carries_its_input_files_to_get_list_and_claim(
    store: Store, clock: FakeClock
) -> None:
    photo = await stored(store, b"jpeg bytes", clock(), name="photo.jpg")
    table = await stored(store, b"a,b\n1,2\n", clock(), name="data.csv")
    spec = JobSpec("thumbnail", args=[{"runq.file": "photo.jpg"}], files=[photo, table])
    plain, with_files = await store.submit_many([JobSpec("echo"), spec], clock())
    job = await store.get(with_files)
    assert job is not None and job.files == [photo, table]
    listed = {j.id: j.files for j in await store.list_jobs()}
    assert listed == {plain: [], with_files: [photo, table]}
    got = {a.id: a.files for a in await claim(store, clock)}
    assert got == {plain: [], with_files: [photo, table]}
    links = await fetch(store, "SELECT job_id, blob_id FROM job_files ORDER BY blob_id")
    assert sorted(links) == sorted([(with_files, photo.blob), (with_files, table.blob)])


async def test_jobs_with_files_take_every_submit_path(store: Store, clock: FakeClock) -> None:
    ref = await stored(store, b"shared", clock())
    (parent,) = await store.submit_many([JobSpec("echo", files=[ref])], clock())
    specs = [
        JobSpec("echo", files=[ref], key="k1"),
        JobSpec("echo", files=[ref], after=[parent]),
        JobSpec("echo", files=[ref], unique_for=60.0),
        JobSpec("echo", files=[ref], concurrency_key="c", max_concurrent=1),
    ]
    ids = []
    for spec in specs:
        ids += await store.submit_many([spec], clock())
    for job_id in ids:
        job = await store.get(job_id)
        assert job is not None and job.files == [ref]
    # a job merged into its twin links nothing new
    (again,) = await store.submit_many([JobSpec("echo", files=[ref], key="k1")], clock())
    assert again == ids[0]
    links = await fetch(store, "SELECT job_id FROM job_files WHERE blob_id = ?", ref.blob)
    assert sorted(r[0] for r in links) == sorted([parent, *ids])


async def test_a_batch_naming_a_missing_or_different_file_is_refused_whole(
    store: Store, clock: FakeClock
) -> None:
    ref = await stored(store, b"content", clock())
    half = blob_for(b"unfinished", clock())
    await store.create_blob(half)
    ghost = FileRef("ghost.bin", new_blob_id(), 1, EMPTY_SHA256)
    unfinished = FileRef("half.bin", half.id, half.size, half.sha256)
    wrong = FileRef("in.txt", ref.blob, ref.size + 1, ref.sha256)
    for bad, error in [(ghost, UnknownFile), (unfinished, UnknownFile), (wrong, FileMismatch)]:
        with pytest.raises(error):
            await store.submit_many(
                [JobSpec("echo", files=[ref]), JobSpec("echo", files=[bad])], clock()
            )
    assert await store.list_jobs() == []
    assert await fetch(store, "SELECT * FROM job_files") == []


# -- retention -----------------------------------------------------------------------


async def finish_job(store: Store, clock: FakeClock, artifact: bytes | None = None) -> str | None:
    """Claim the one ready job, store an artifact for its attempt, report success."""
    (a,) = await claim(store, clock)
    blob_id = None
    if artifact is not None:
        ref = await stored(store, artifact, clock(), name="out.gz", kind="artifact",
                           job_id=a.id, fence=a.fence)  # fmt: skip
        blob_id = ref.blob
    res = await store.report("w1", [Outcome(a.id, a.fence, True, "ok")], clock())
    assert res.accepted == [a.id]
    return blob_id


async def test_a_purge_takes_the_jobs_files_and_their_bytes(store: Store, clock: FakeClock) -> None:
    # Given two jobs sharing an input, the first with an artifact and its own input
    shared = await stored(store, b"shared input", clock())
    own = await stored(store, b"own input", clock(), name="own.txt")
    (first,) = await store.submit_many([JobSpec("echo", files=[shared, own])], clock())
    artifact = await finish_job(store, clock, artifact=b"made by the task")
    assert artifact is not None
    (second,) = await store.submit_many([JobSpec("echo", files=[shared])], clock())
    # When the first is purged
    assert await store.purge(clock.advance(10), 10) == 1
    assert await store.get(first) is None
    # Then its artifact and its own input go with their bytes; the shared input stays
    for gone in (artifact, own.blob):
        assert await store.blob(gone) is None and not await has_bytes(store, gone)
        with pytest.raises(UnknownFile):
            await store.read_blob(gone, 0, CHUNK)
    assert await read_all(store, shared.blob) == b"shared input"
    # When the second finishes and is purged too, the shared input goes
    await finish_job(store, clock)
    assert await store.purge(clock.advance(10), 10) == 1
    assert await store.blob(shared.blob) is None and not await has_bytes(store, shared.blob)
    assert await fetch(store, "SELECT * FROM job_files") == []
    assert await store.stored_bytes() == 0 and await store.get(second) is None


async def test_the_sweep_deletes_blobs_nobody_needs(store: Store, clock: FakeClock) -> None:
    t0 = clock()
    # Given a linked input, an unlinked one, a finished upload and an unfinished one
    linked = await stored(store, b"named by a job", t0)
    loose = await stored(store, b"named by nobody", t0)
    stale = blob_for(b"left half way", t0)
    await store.create_blob(stale)
    await store.write_blob(stale.id, 0, b"left", t0)
    (job,) = await store.submit_many([JobSpec("echo", files=[linked])], t0)
    # and a job whose first attempt was lost (its artifact made for nothing) and whose
    # second attempt's report was accepted (its artifact kept)
    (lost,) = await claim(store, clock)
    orphan = await stored(store, b"lost", t0, kind="artifact", job_id=job, fence=lost.fence)
    await store.requeue_worker("w1", t0)
    kept = await finish_job(store, clock, artifact=b"kept")
    assert kept is not None
    # When the sweep runs within the grace: only the lost attempt's artifact goes
    assert await store.sweep_blobs(clock.advance(60), GRACE) == 1
    assert await store.blob(orphan.blob) is None and not await has_bytes(store, orphan.blob)
    # When it runs after the grace: the unlinked input and the stale upload go too
    assert await store.sweep_blobs(clock.advance(GRACE), GRACE) == 2
    for gone in (loose.blob, stale.id):
        assert await store.blob(gone) is None and not await has_bytes(store, gone)
    for left in (linked.blob, kept):
        found = await store.blob(left)
        assert found is not None and found.complete
    assert await store.sweep_blobs(clock.advance(10 * GRACE), GRACE) == 0


async def test_the_sweep_spares_an_upload_written_to_lately(store: Store, clock: FakeClock) -> None:
    data = b"slow upload " * 100
    info = blob_for(data, clock())
    await store.create_blob(info)
    await store.write_blob(info.id, 0, data[:100], clock.advance(1800))
    await store.write_blob(info.id, 100, data[100:200], clock.advance(1800))
    assert await store.sweep_blobs(clock.advance(1800), GRACE) == 0  # 1.5 h old, 0.5 h idle
    assert await store.write_blob(info.id, 200, data[200:300], clock()) == 300
    assert await store.sweep_blobs(clock.advance(GRACE + 1), GRACE) == 1
    assert await store.blob(info.id) is None and not await has_bytes(store, info.id)


async def test_artifacts_of_an_unfinished_job_are_not_swept(store: Store, clock: FakeClock) -> None:
    (job,) = await store.submit_many([JobSpec("echo")], clock())
    (a,) = await claim(store, clock)
    ref = await stored(store, b"out", clock(), kind="artifact", job_id=job, fence=a.fence)
    assert await store.sweep_blobs(clock.advance(GRACE / 2), GRACE) == 0
    await store.cancel(job, clock())  # its report will never be accepted
    assert await store.sweep_blobs(clock(), GRACE) == 1
    assert await store.blob(ref.blob) is None
    found = await store.get(job)
    assert found is not None and found.state is JobState.CANCELLED


# -- memory --------------------------------------------------------------------------


async def test_a_large_blob_never_sits_whole_in_memory(store: Store, clock: FakeClock) -> None:
    size = 64 * MiB
    piece = bytes(range(256)) * (CHUNK // 256)
    expect = hashlib.sha256()
    for _ in range(size // CHUNK):
        expect.update(piece)
    info = BlobInfo(new_blob_id(), "big.bin", size, expect.hexdigest(), "input", clock())
    await store.create_blob(info)
    await store.write_blob(info.id, 0, piece, clock())  # warm up the paths once
    gc.collect()
    rss = psutil.Process().memory_info().rss
    tracemalloc.start()
    try:
        for at in range(CHUNK, size, CHUNK):
            await store.write_blob(info.id, at, piece, clock())
        assert (await store.finish_blob(info.id, clock())).complete
        got, at = hashlib.sha256(), 0
        while data := await store.read_blob(info.id, at, CHUNK):
            got.update(data)
            at += len(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert at == size and got.hexdigest() == info.sha256
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB of Python allocations"
    assert psutil.Process().memory_info().rss - rss < 48 * MiB


async def test_the_brokers_duty_sweeps_with_its_file_grace(store: Store, clock: FakeClock) -> None:
    broker: Any = SimpleNamespace(store=store, config=BrokerConfig(file_grace=60.0))
    loose = await stored(store, b"named by nobody", clock())
    assert await Duties(broker).sweep_blobs(clock.advance(30)) == 0
    assert await Duties(broker).sweep_blobs(clock.advance(31)) == 1
    assert await store.blob(loose.blob) is None


# -- SQLite: the bytes in files next to the database -----------------------------------


async def test_sqlite_keeps_the_bytes_next_to_the_database_and_recovers_after_a_crash(
    tmp_path: Path, clock: FakeClock
) -> None:
    url = f"sqlite:///{tmp_path / 'runq.db'}"
    files = tmp_path / "runq.db.files"
    data = b"checked bytes" * 1000
    info = blob_for(data, clock())
    store = open_store(StoreConfig(url=url))
    try:
        await store.create_blob(info)
        await upload(store, info, data, clock())
        assert (files / f"{info.id}.part").stat().st_size == len(data)
    finally:
        await store.close()
    # Given a finish cut short after its rename, and a file whose row's delete committed
    (files / f"{info.id}.part").rename(files / info.id)
    orphan = files / new_blob_id()
    orphan.write_bytes(b"left behind")
    store = open_store(StoreConfig(url=url))
    try:
        # When the store is opened again, the upload is whole and finishing completes it
        found = await store.blob(info.id)
        assert found is not None and (found.received, found.complete) == (len(data), False)
        assert (await store.finish_blob(info.id, clock())).complete
        assert await read_all(store, info.id) == data
        # and the first sweep removes the file without a row
        assert await store.sweep_blobs(clock(), GRACE) == 0
        assert not orphan.exists() and (files / info.id).exists()
    finally:
        await store.close()
