"""What each scope allows, as one table over the native messages (the HTTP routes use
the same words: see http/guard). A refusal raises Forbidden and changes nothing.

- ``admin``: everything.
- ``read``: every read (jobs, logs, stats, workers, queues, schedules, limits, explain).
- ``submit:Q``: submit jobs to queue Q, and get, wait for and cancel jobs of Q.
- ``work:Q``: run jobs of queue Q on the worker port (or the HTTP work routes); nothing
  on the client port.

Files: uploading an input needs a submit scope (or admin); reading a file, a token that
may see its job (broker/files.py checks which job). On the worker port a worker uploads
the artifacts of the jobs it holds and reads their inputs (broker/files.py checks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from runq.broker import operations as ops
from runq.errors import Forbidden
from runq.model.token import Grant
from runq.protocol import messages as m

if TYPE_CHECKING:
    from runq.broker.server import Broker

Rule = Callable[[Grant, Any], bool]


def _admin(grant: Grant, msg: Any) -> bool:
    return grant.admin


def _read(grant: Grant, msg: Any) -> bool:
    return grant.read


def _own_jobs(grant: Grant, msg: Any) -> bool:
    """Reads and cancels of one job: read scope, or a submit scope (whose queue the
    handler checks against the job's, see ``check_job``)."""
    return grant.read or bool(grant.submit)


def _cancel(grant: Grant, msg: Any) -> bool:
    return grant.admin or bool(grant.submit)


def _submit(grant: Grant, msg: m.Submit) -> bool:
    for spec in msg.jobs:
        if not grant.may_submit(spec.queue):
            raise Forbidden(f"this token may not submit to queue {spec.queue!r}")
    return True


def _declare(grant: Grant, msg: m.TaskSchedules) -> bool:
    return all(grant.may_work(s.job.queue) for s in msg.schedules)


def _worker(grant: Grant, msg: Any) -> bool:
    return True  # its queues were checked at hello; its jobs are its own


def _upload(grant: Grant, msg: Any) -> bool:
    return grant.admin or bool(grant.submit)


RULES: Final[dict[type, tuple[Rule, str]]] = {
    m.Submit: (_submit, "submit to this queue"),
    m.Get: (_own_jobs, "read jobs"),
    m.Wait: (_own_jobs, "read jobs"),
    m.Cancel: (_cancel, "cancel jobs"),
    **{
        t: (_read, "read")
        for t in (
            *(m.ListJobs, m.GetStats, m.ListWorkers, m.ListQueues, m.ReadLogs),
            *(m.ListSchedules, m.ListRateLimits, m.Explain),
        )
    },
    **{
        t: (_upload, "upload files")
        for t in (m.OpenUpload, m.ResumeUpload, m.UploadChunk, m.FinishUpload)
    },
    m.ReadFile: (_own_jobs, "read files"),
    m.TaskSchedules: (_declare, "schedule jobs on this queue"),
    **{
        t: (_worker, "")
        for t in (m.Report, m.Heartbeat, m.Drain, m.Release, m.Status, m.Output, m.OpenArtifact)
    },
}
# Messages both ports take, as the worker port sees them (the handler checks the job).
WORKER_RULES: Final[dict[type, tuple[Rule, str]]] = {
    t: (_worker, "")
    for t in (m.OpenArtifact, m.ResumeUpload, m.UploadChunk, m.FinishUpload, m.ReadFile)
}


def check(grant: Grant, msg: Any, role: str = "client") -> None:
    """Forbidden unless ``grant`` allows ``msg`` on the ``role`` port (a type not in the
    table: admin only)."""
    found = WORKER_RULES.get(type(msg)) if role == "worker" else None
    rule, what = found or RULES.get(type(msg), (_admin, "administer this broker"))
    if not rule(grant, msg):
        raise Forbidden(f"this token may not {what}")


async def check_job(broker: Broker, grant: Grant, job_id: int) -> None:
    """A token without read scope sees only jobs of its submit queues."""
    if grant.read:
        return
    job = await ops.get(broker, job_id)
    if not grant.may_submit(job.queue):
        raise Forbidden(f"this token may not read or cancel jobs of queue {job.queue!r}")
