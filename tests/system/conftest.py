"""Fixtures for system tests: see harness.py for what they start and how they clean up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Cli, Procs, Server


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    owner = Procs(tmp_path)
    try:
        yield owner
    finally:
        owner.teardown()
    broken = owner.tracebacks()
    assert not broken, f"tracebacks in the logs of {broken}"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture
def server(procs: Procs) -> Server:
    return procs.server()
