"""runq: a durable, fast distributed task queue.

from runq import Client
with Client("127.0.0.1:1209") as client:
    job_id = client.submit("wordcount", "hello world")
    print(client.result(job_id, timeout=10))
"""

from runq.client import AsyncClient, Client, JobFailed
from runq.client.workflow import chain, group, step
from runq.current import progress
from runq.errors import Permanent, RunqError
from runq.files import Artifact, File
from runq.model import Job, JobSpec, JobState
from runq.tasks import Registry, task

__all__ = [
    "Artifact",
    "AsyncClient",
    "Client",
    "File",
    "Job",
    "JobFailed",
    "JobSpec",
    "JobState",
    "Permanent",
    "Registry",
    "RunqError",
    "chain",
    "group",
    "progress",
    "step",
    "task",
]
