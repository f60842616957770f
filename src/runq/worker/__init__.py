"""The worker: one broker connection, capacity, heartbeats, executors and reports."""

from runq.worker.agent import Agent, WorkerConfig

__all__ = ["Agent", "WorkerConfig"]
