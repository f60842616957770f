"""Logging set-up for runq's long-running commands."""

from __future__ import annotations

import logging
import sys


def setup(level: str = "INFO", name: str = "runq") -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("runq")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # asyncpg logs its own reconnection attempts with tracebacks while the database is
    # away; the store says so in one line instead.
    logging.getLogger("asyncpg").setLevel(logging.ERROR)
    return logging.getLogger(name)
