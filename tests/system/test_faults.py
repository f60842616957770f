"""Faults with real processes: kill -9, SIGSTOP, broker crashes, retries, cancel, graceful
stops and bad reports. Each test proves a promise of docs/guarantees.md."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runq.client import Client
from runq.errors import ConnectionLost, Unavailable
from runq.model import JobSpec, Outcome
from runq.protocol import codec
from runq.protocol import limits as L
from runq.protocol import messages as m

from .fault_helpers import (
    Strays,
    attempt_started,
    gone,
    marked,
    running_on,
    start_worker,
    task_processes,
    write_tasks,
)
from .harness import Cli, Procs, Server, all_jobs, counts, wait_until, worker_ids

pytestmark = pytest.mark.system


@pytest.fixture
def strays(procs: Procs, tmp_path: Path) -> Iterator[Strays]:
    """Kills our workers' task processes in teardown (before ``procs`` kills the rest)."""
    owner = Strays(tmp_path)
    try:
        yield owner
    finally:
        owner.kill_all()


@pytest.fixture
def tasks(tmp_path: Path) -> str:
    return write_tasks(tmp_path)


def outcomes(job: Any) -> list[str | None]:
    return [a.outcome for a in job.history]


# -- 1. kill -9 of a worker mid-job -------------------------------------------------------


def test_worker_killed_mid_job_reruns_on_the_other_worker_at_once(
    procs: Procs, strays: Strays, tasks: str, tmp_path: Path
) -> None:
    server = procs.server()  # lease 30 s: only the closed connection can bring it back fast
    workers = {wid: start_worker(procs, strays, server, wid) for wid in ("w-a", "w-b")}
    mark = tmp_path / "killed"
    with server.client() as client:
        job = client.submit(f"{tasks}.nap", 2, str(mark))
        victim = running_on(client, job).worker
        (other,) = set(workers) - {victim}
        orphan = int(marked(mark, 1, "pid"))  # the task process is running it
        strays.remember_pid(orphan)

        killed_at = time.time()
        workers[victim].kill()
        second = attempt_started(client, job, 2, timeout=10).history[1]
        assert second.worker == other
        assert second.started_at - killed_at <= 2.0, second

        done = client.wait(job, timeout=20)
        assert done.state == "succeeded", done
        assert done.worker == other
        assert done.attempts == 2
        assert outcomes(done) == ["worker_lost", "succeeded"], done.history
        assert done.history[0].worker == victim
        assert done.history[0].error is not None
        assert done.history[0].error.code == "worker_lost"
        assert done.result == workers[other].pid
        assert done.error is None
        # The first attempt's task process dies with its worker (PR_SET_PDEATHSIG): the
        # job does not go on running with nobody to report it, and nothing is printed.
        wait_until(lambda: gone(orphan), 5, what=f"the orphaned task process {orphan} to exit")
        assert not Path(f"{mark}.1.done").exists(), "the orphaned attempt ran to its end"
        log = workers[victim].text()
        assert "Traceback" not in log, f"the orphaned task process crashed:\n{log}"
        again = client.get(job)
        assert outcomes(again) == ["worker_lost", "succeeded"]
        assert again.result == workers[other].pid
        assert client.stats()["jobs"]["succeeded"] == 1


# -- 2. SIGSTOP of a worker past its lease ----------------------------------------------

LEASE = 1.0


@pytest.mark.parametrize("room", [False, True], ids=["full-worker", "worker-with-room"])
def test_stopped_worker_loses_its_job_and_its_late_report_is_refused(
    procs: Procs, strays: Strays, tasks: str, tmp_path: Path, cli: Cli, room: bool
) -> None:
    """``room``: the workers take more jobs than the one they run (-c 1 with the default
    prefetch), so the stopped worker still has free credit when its lease runs out."""
    server = procs.server(lease=LEASE)
    prefetch = None if room else 0
    workers = {
        wid: start_worker(procs, strays, server, wid, prefetch=prefetch) for wid in ("w-a", "w-b")
    }
    mark = tmp_path / "stopped"
    with server.client() as client:
        job = client.submit(f"{tasks}.nap", 2, str(mark))
        victim = running_on(client, job).worker
        (other,) = set(workers) - {victim}
        marked(mark, 1, "pid")  # its task process runs (and goes on running: own session)
        assert client.stats()["stale_reports"] == 0

        stopped_at = time.time()
        workers[victim].popen.send_signal(signal.SIGSTOP)
        try:
            second = attempt_started(client, job, 2, timeout=10)
            # Not the silent worker, whose lease just ran out (and whose connection closes).
            assert second.history[1].worker == other, second.history
            assert second.history[1].started_at - stopped_at <= LEASE + 1.5, second.history
            assert second.history[0].outcome == "lease_expired"
            # The broker closed the silent worker's connection: it is no longer listed.
            wait_until(
                lambda: victim not in {w.id for w in client.workers()},
                5,
                what=f"the broker to drop {victim}",
            )
            # The frozen worker's task finishes; its report waits for SIGCONT.
            marked(mark, 1, "done", timeout=10)
        finally:
            workers[victim].popen.send_signal(signal.SIGCONT)

        wait_until(
            lambda: client.stats()["stale_reports"] >= 1,
            10,
            what="the late report to be refused",
        )
        done = client.wait(job, timeout=20)
        assert done.state == "succeeded", done
        assert done.worker == other
        assert done.result == workers[other].pid  # the other worker's result, not the late one
        assert outcomes(done) == ["lease_expired", "succeeded"], done.history
        assert done.attempts == 2

        # It reconnects on its own and shows in `runq workers` again.
        def listed() -> bool:
            return victim in {
                w["id"] for w in cli("workers", "--json", server=server.address).json()
            }

        wait_until(listed, 15, interval=0.2, what=f"{victim} to reconnect")
        assert client.stats()["stale_reports"] == 1
        assert client.get(job).result == workers[other].pid
    assert f"worker {victim} let its lease run out; closing its connection" in server.text()
    assert workers[victim].alive


# -- 3. kill -9 of the broker, three times, while 5,000 jobs flow ------------------------

JOBS = 5000
BATCH = 100


class Submitter(threading.Thread):
    """Submits JOBS ledger jobs in batches; a batch that gets no answer is sent again."""

    def __init__(self, address: str, task: str) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.task = task
        self.answered: list[int] = []
        self.refused = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            with Client(self.address) as client:
                for b in range(JOBS // BATCH):
                    specs = [
                        JobSpec(self.task, args=[b * BATCH + i], max_attempts=10, backoff=0.1)
                        for i in range(BATCH)
                    ]
                    while True:
                        try:
                            ids = client.submit_many(specs)
                        except (ConnectionLost, Unavailable):  # down: again once it is back
                            self.refused += 1
                            time.sleep(0.05)
                            continue
                        break
                    self.answered.extend(ids)
                    time.sleep(0.01)
        except BaseException as exc:  # reported by the test
            self.failure = exc


def read_ledger(path: Path) -> dict[int, list[tuple[int, float]]]:
    """job id -> [(attempt, start time)] of every run."""
    runs: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for line in path.read_text().splitlines():
        job, attempt, _pid, started = line.split()
        runs[int(job)].append((int(attempt), float(started)))
    return runs


def test_broker_killed_three_times_while_jobs_are_submitted_and_run(
    procs: Procs, strays: Strays, tasks: str, tmp_path: Path
) -> None:
    store = tmp_path / "kills.db"
    ledger = tmp_path / "ledger.txt"
    ledger.touch()
    broker = procs.server(store=store, lease=2, name="broker-0")
    port, worker_port = broker.port, broker.worker_port
    env = {"LEDGER": str(ledger)}
    for wid in ("w-1", "w-2"):
        start_worker(procs, strays, broker, wid, concurrency=2, env=env)

    submitter = Submitter(broker.address, f"{tasks}.ledger")
    submitter.start()

    def ledger_lines() -> int:
        return ledger.read_bytes().count(b"\n")

    # Two kills while batches are being submitted, one while the last jobs run.
    moments = [
        lambda: len(submitter.answered) >= 1500,
        lambda: len(submitter.answered) >= 3500,
        lambda: not submitter.is_alive() and ledger_lines() >= 1000,
    ]
    kill_points = []
    for n, moment in enumerate(moments, 1):
        wait_until(moment, 30, interval=0.01, what=f"the moment of kill {n}")
        broker.kill()
        kill_points.append((len(submitter.answered), ledger_lines()))
        time.sleep(0.2)
        broker = procs.server(
            store=store, port=port, worker_port=worker_port, lease=2, name=f"broker-{n}"
        )
    submitter.join(30)
    assert not submitter.is_alive()
    assert submitter.failure is None, submitter.failure
    assert submitter.refused >= 2, "the kills missed the submissions"
    assert len(submitter.answered) == JOBS

    def all_finished() -> bool:
        c = counts(broker)
        return c["succeeded"] >= JOBS and c["succeeded"] == sum(c.values())

    wait_until(all_finished, 60, interval=0.2, what="every stored job to succeed")
    runs = read_ledger(ledger)
    with broker.client() as client:
        stored = {j.id: j for j in all_jobs(client)}
        assert set(submitter.answered) <= set(stored)
        # A batch in flight at a kill may be stored without an answer: it was sent again.
        assert len(stored) - JOBS in range(0, 3 * BATCH + 1, BATCH)
        for job_id in sorted(stored):
            job = client.get(job_id)
            assert job.state == "succeeded", job
            assert job.result == job.args[0], job
            accepted = [a for a in job.history if a.outcome == "succeeded"]
            assert len(accepted) == 1, job.history  # exactly one accepted completion
            (won,) = accepted
            assert won.finished_at is not None
            assert job_id in runs, f"job {job_id} never ran"
            assert won.attempt in {a for a, _ in runs[job_id]}, (job.history, runs[job_id])
            late = [(a, t) for a, t in runs[job_id] if t > won.finished_at]
            assert not late, f"job {job_id} ran again after its completion: {late} {job.history}"
    assert set(runs) == set(stored)
    print("kills at (answered, ledger lines):", kill_points, "refused:", submitter.refused)


# -- 4. retries with back-off -------------------------------------------------------------


def test_failing_job_retries_with_backoff_then_fails(
    procs: Procs, strays: Strays, tasks: str
) -> None:
    server = procs.server()
    start_worker(procs, strays, server, "w-a")
    base = 0.2
    with server.client() as client:
        job = client.submit(f"{tasks}.broken", retries=3, backoff=base)
        done = client.wait(job, timeout=20)
        assert done.state == "failed", done
        assert done.attempts == 4
        assert outcomes(done) == ["failed"] * 4, done.history
        assert done.error is not None
        assert "RuntimeError: broken on purpose" in done.error.message
        assert done.error.traceback and "RuntimeError" in done.error.traceback
        time.sleep(0.5)  # nothing more happens to it
        assert client.get(job).attempts == 4

    history = done.history
    for n in range(1, 4):
        least = base * 2 ** (n - 1) / 2
        prev, nxt = history[n - 1], history[n]
        assert nxt.started_at - prev.started_at >= least, (n, history)
        assert prev.finished_at is not None
        assert nxt.started_at - prev.finished_at >= least, (n, history)
        # ... and not much more than the ceiling (plus a promotion tick and a loaded CPU).
        assert nxt.started_at - prev.finished_at <= base * 2 ** (n - 1) + 1.5, (n, history)


# -- 5. cancel of running jobs ----------------------------------------------------------


def test_cancel_stops_a_running_job_and_frees_its_slot(
    procs: Procs, strays: Strays, tasks: str, tmp_path: Path
) -> None:
    server = procs.server()
    worker = start_worker(procs, strays, server, "w-one", concurrency=1, prefetch=0)
    with server.client() as client:
        # A built-in job runs in the worker's event loop.
        sleeper = client.submit("sleep", "60")
        assert running_on(client, sleeper).worker == "w-one"
        assert client.cancel(sleeper).state == "cancelled"
        submitted_at = time.time()
        after = client.submit("echo", "after")
        first = attempt_started(client, after, 1, timeout=5).history[0]
        assert first.worker == "w-one"
        assert first.started_at - submitted_at <= 1.0, first
        assert client.wait(after, timeout=10).result == "after"
        wait_until(
            lambda: f"stopped job {sleeper} at the broker's request" in worker.text(),
            5,
            what="the worker to stop the sleep",
        )

        # A Python task runs in a task process, which is killed.
        mark = tmp_path / "cancelled"
        napper = client.submit(f"{tasks}.nap", 60, str(mark))
        pid = int(marked(mark, 1, "pid"))
        strays.remember_pid(pid)
        cancelled = client.cancel(napper)
        cancelled_at = time.time()
        assert cancelled.state == "cancelled"
        wait_until(lambda: gone(pid), 5, interval=0.01, what=f"task process {pid} to die")
        assert time.time() - cancelled_at <= 1.0
        submitted_at = time.time()
        quick = client.submit(f"{tasks}.nap", 0)
        first = attempt_started(client, quick, 1, timeout=5).history[0]
        assert first.worker == "w-one"
        assert first.started_at - submitted_at <= 1.0, first
        assert client.wait(quick, timeout=20).result == worker.pid

        for job_id in (sleeper, napper):
            job = client.get(job_id)
            assert job.state == "cancelled", job
            assert outcomes(job) == ["cancelled"], job.history
        assert client.stats()["stale_reports"] == 0


# -- 6. graceful worker stop --------------------------------------------------------------


def test_sigterm_finishes_short_jobs_and_hands_back_long_ones(
    procs: Procs, strays: Strays, tasks: str, tmp_path: Path
) -> None:
    server = procs.server()
    slow = {"LINGER_SECONDS": "60"}
    # grace 3 s: the short job's remaining half second, with room for a loaded machine
    first = start_worker(procs, strays, server, "w-a", concurrency=2, grace=3, env=slow)
    mark = tmp_path / "long"
    with server.client() as client:
        long_job = client.submit(f"{tasks}.linger", str(mark))
        pid = int(marked(mark, 1, "pid"))
        strays.remember_pid(pid)
        short_job = client.submit("sleep", "0.5")
        assert running_on(client, short_job).worker == "w-a"

        t0 = time.monotonic()
        first.popen.send_signal(signal.SIGTERM)
        code = first.wait_exit(10)
        took = time.monotonic() - t0
        assert code == 0, first.text()
        assert took <= 5.0, took  # the grace, then at once
        # It leaves no task process behind, and none of them crashed on the way out.
        wait_until(lambda: not task_processes(tmp_path), 5, what="w-a's task processes to end")
        assert "Traceback" not in first.text(), first.text()

        short = client.get(short_job)
        assert short.state == "succeeded", short
        assert short.worker == "w-a"
        assert short.result == "slept 0.5"
        handed = client.get(long_job)
        assert handed.state == "queued", handed
        assert handed.attempts == 0
        assert outcomes(handed) == ["released"], handed.history
        assert handed.history[0].worker == "w-a"
        assert gone(pid), f"the long job's task process {pid} outlived its worker"

        second = start_worker(procs, strays, server, "w-b", env={"LINGER_SECONDS": "0.1"})
        done = client.wait(long_job, timeout=20)
        assert done.state == "succeeded", done
        assert done.worker == "w-b"
        assert done.attempts == 1
        assert done.result == second.pid
        assert outcomes(done) == ["released", "succeeded"], done.history
        assert counts(server)["succeeded"] == 2
        assert sum(counts(server).values()) == 2


# -- 7. bad reports over the worker port, bad ids over the CLI -------------------------


class RawWorker:
    """A worker speaking the protocol by hand over a plain socket."""

    def __init__(
        self, port: int, worker_id: str, running: list[tuple[int, int]] | None = None
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.decoder = codec.worker_side()
        self.inbox: list[Any] = []
        hello = m.Hello(
            role="worker",
            version=L.PROTOCOL_VERSION,
            worker_id=worker_id,
            queues=["default"],
            concurrency=1,
            running=running or [],
        )
        self.send(hello)
        self.expect(m.Welcome)

    def send(self, msg: Any) -> None:
        self.sock.sendall(codec.encode(msg))

    def poll(self, kind: type, timeout: float) -> Any:
        """The next message of ``kind`` within ``timeout`` (others stay in ``inbox``), or
        None; fails if the broker closes the connection."""
        deadline = time.monotonic() + timeout
        while True:
            for n, msg in enumerate(self.inbox):
                if isinstance(msg, kind):
                    return self.inbox.pop(n)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            assert data, f"the broker closed the connection; got {self.inbox}"
            self.inbox += self.decoder.feed(data)

    def expect(self, kind: type, timeout: float = 10.0) -> Any:
        found = self.poll(kind, timeout)
        assert found is not None, f"no {kind.__name__} from the broker; got {self.inbox}"
        return found

    def close(self) -> None:
        self.sock.close()


def snapshot(client: Client, ids: list[int]) -> list[tuple[Any, ...]]:
    jobs = [client.get(i) for i in ids]
    return [(j.state, j.fence, j.attempts, j.worker, j.result, j.error, outcomes(j)) for j in jobs]


def test_stale_reports_over_the_worker_port_change_nothing(
    server: Server, procs: Procs, cli: Cli
) -> None:
    with server.client() as client:
        job = client.submit("echo", "real")
        parked = client.submit("echo", "parked", queue="parked")
        raw = RawWorker(server.worker_port, "w-raw")
        try:
            (assigned,) = raw.expect(m.Assign).jobs  # the real job now runs "on" w-raw
            assert assigned.id == job
            before = snapshot(client, [job, parked])
            assert before[0][:4] == ("running", assigned.fence, 1, "w-raw")
            stale = client.stats()["stale_reports"]

            raw.send(m.Report(7, [Outcome(987654, 1, True, "x")]))
            assert raw.expect(m.Reported).seq == 7
            raw.send(m.Report(8, [Outcome(job, assigned.fence + 1, True, "x")]))
            assert raw.expect(m.Reported).seq == 8

            assert client.stats()["stale_reports"] == stale + 2
            assert snapshot(client, [job, parked]) == before
            assert not [msg for msg in raw.inbox if isinstance(msg, m.Error)], raw.inbox
        finally:
            raw.close()

    for command in ("retry", "cancel"):
        ran = cli(command, 987654, server=server.address, ok=False)
        assert ran.code == 1, ran
        assert ran.out == ""
        assert ran.err == "error: no job with id 987654\n", ran


# -- 8. a broker restart while an assignment was on its way -----------------------------


def test_restarted_broker_requeues_a_lost_assignment_without_dropping_the_worker(
    procs: Procs, tmp_path: Path
) -> None:
    """The broker claims a job for a worker and dies before the worker gets it. The
    worker reconnects to the next broker without it and keeps heartbeating: when the
    lease runs out the job goes back to the queue, and the worker, which was never
    silent, keeps its connection (and gets the job again)."""
    store = tmp_path / "restart.db"
    first = procs.server(store=store, lease=1, name="broker-0")
    with first.client() as client:
        job = client.submit("echo", "lost on the way")
    raw = RawWorker(first.worker_port, "w-raw")
    (lost,) = raw.expect(m.Assign).jobs
    assert lost.id == job
    first.kill()
    raw.close()  # as if the assign had died with the broker

    second = procs.server(
        store=store, port=first.port, worker_port=first.worker_port, lease=1, name="broker-1"
    )
    raw = RawWorker(second.worker_port, "w-raw", running=[])
    try:
        deadline = time.monotonic() + 5
        again = None
        while again is None and time.monotonic() < deadline:
            raw.send(m.Heartbeat([]))  # alive, holding nothing
            again = raw.poll(m.Assign, 0.2)
        assert again is not None, "the job never came back"
        (retry,) = again.jobs
        assert retry.id == job
        assert retry.fence > lost.fence
        raw.send(m.Report(1, [Outcome(job, retry.fence, True, "done")]))
        assert raw.expect(m.Reported).seq == 1
    finally:
        raw.close()
    with second.client() as client:
        done = client.get(job)
        assert done.state == "succeeded", done
        assert done.result == "done"
        assert [a.worker for a in done.history] == ["w-raw", "w-raw"]
        assert done.history[0].outcome in ("lease_expired", "worker_lost"), done.history
        assert done.history[1].outcome == "succeeded"
    assert "w-raw let its lease run out" not in second.text()


# -- 9. a worker's reconnect back-off starts over after each outage ---------------------


def test_worker_reconnects_promptly_after_every_broker_restart(
    procs: Procs, tmp_path: Path
) -> None:
    store = tmp_path / "bounce.db"
    broker = procs.server(store=store, name="broker-0")
    port, worker_port = broker.port, broker.worker_port
    procs.worker(broker, "w-back", concurrency=1)
    for n in range(1, 7):
        killed = time.monotonic()
        broker.kill()
        broker = procs.server(store=store, port=port, worker_port=worker_port, name=f"broker-{n}")
        down = time.monotonic() - killed

        def back(at: Server = broker) -> bool:
            return "w-back" in worker_ids(at)

        wait_until(back, 15, interval=0.02, what="w-back to return")
        late = time.monotonic() - killed - down
        # A back-off that starts over at each outage tries again within about the time
        # the broker was down; one that keeps growing waits up to 5 s.
        assert late <= down + 0.5, f"outage {n}: down {down:.2f} s, reconnected {late:.2f} s later"
