"""Nothing a peer sends becomes code: no unpickling, no eval, no import by a name from the
wire. Proved twice: (a) statically, by walking every module of runq for the tools that
could do it; (b) dynamically, with an audit hook that records the interpreter's own
events for them while a real broker decodes valid and mutated frames and HTTP bodies.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mutations import HELLO, frames_of, mutate, noise
from test_protocol import SAMPLES

import runq
from runq.protocol import messages as m
from runq.testing import RunningBroker, run_broker

SRC = Path(runq.__file__).resolve().parent

# -- (a) static ---------------------------------------------------------------------------

UNSAFE_MODULES = {
    *("pickle", "_pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle"),
    *("jsonpickle", "runpy", "code", "codeop"),
}
UNSAFE_BUILTINS = {"eval", "exec", "compile", "__import__"}
UNSAFE_ATTRIBUTES = {
    "import_module",  # importlib
    "exec_module",  # importlib loaders
    "spec_from_file_location",
    *("load", "load_all", "unsafe_load", "full_load", "full_load_all"),  # yaml.*
}
YAML_LOADERS = {"Loader", "UnsafeLoader", "FullLoader"}
# (module, what) -> why it is allowed. Each must still be found (no stale exceptions).
ALLOWED = {
    ("runq.tasks", "import_module"): (
        "tasks.load imports the task modules named on the worker's own command line"
        " (worker/executors/child.py argv); a job names a task, looked up in a dict"
    ),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unsafe_uses(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """(what, line) for every import or call that could turn data into code."""
    for node in ast.walk(tree):
        what = None
        if isinstance(node, ast.Import | ast.ImportFrom):
            what = _unsafe_import(node)
        elif isinstance(node, ast.Call):
            what = _unsafe_call(node.func)
        elif isinstance(node, ast.Name) and node.id in YAML_LOADERS:
            what = node.id
        if what is not None:
            yield what, getattr(node, "lineno", 0)


def _unsafe_import(node: ast.Import | ast.ImportFrom) -> str | None:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES | {"yaml"}]
        return names[0] if names else None
    top = (node.module or "").split(".")[0]
    yaml_loader = top == "yaml" and {a.name for a in node.names} & (YAML_LOADERS | {"load"})
    return node.module if top in UNSAFE_MODULES or yaml_loader else None


def _unsafe_call(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id if func.id in UNSAFE_BUILTINS else None
    if not isinstance(func, ast.Attribute):
        return None
    owner = func.value.id if isinstance(func.value, ast.Name) else None
    if owner == "builtins" and func.attr in UNSAFE_BUILTINS:
        return func.attr
    if func.attr in {"load", "load_all"}:  # json.load, tomllib.load are fine
        return func.attr if owner == "yaml" else None
    return func.attr if func.attr in UNSAFE_ATTRIBUTES else None


def findings() -> dict[tuple[str, str], list[int]]:
    found: dict[tuple[str, str], list[int]] = {}
    for path in sorted(SRC.rglob("*.py")):
        for what, line in unsafe_uses(ast.parse(path.read_text(), str(path))):
            found.setdefault((module_name(path), what), []).append(line)
    return found


def test_no_module_of_runq_can_turn_data_into_code() -> None:
    found = findings()
    unexpected = {k: v for k, v in found.items() if k not in ALLOWED}
    assert not unexpected, "\n".join(f"{m}:{lines} uses {w}" for (m, w), lines in found.items())
    assert set(ALLOWED) <= set(found), "an allowed exception is no longer needed: drop it"


@pytest.mark.parametrize(
    "source",
    [
        "import pickle",
        "from pickle import loads",
        "import marshal",
        "import cloudpickle as cp",
        "from yaml import load",
        "import yaml\nyaml.load(text, Loader=yaml.Loader)",
        "import yaml\nyaml.unsafe_load(text)",
        "eval(text)",
        "exec(text)",
        "compile(text, 'x', 'exec')",
        "__import__(name)",
        "import builtins\nbuiltins.eval(text)",
        "import importlib\nimportlib.import_module(name)",
    ],
)
def test_the_walk_catches_each_unsafe_use(source: str) -> None:
    assert list(unsafe_uses(ast.parse(source)))


@pytest.mark.parametrize(
    "source",
    ["import re\nre.compile('x')", "import json\njson.load(f)", "import tomllib\ntomllib.load(f)"],
)
def test_the_walk_lets_safe_look_alikes_pass(source: str) -> None:
    assert not list(unsafe_uses(ast.parse(source)))


# -- (b) dynamic --------------------------------------------------------------------------

EVENTS = frozenset(
    {
        *("exec", "compile", "marshal.loads", "marshal.load", "pickle.find_class"),
        *("builtins.input", "os.system", "subprocess.Popen", "os.exec", "os.posix_spawn"),
    }
)


class Recorder:
    """An audit hook cannot be removed: it records only while ``on`` is set."""

    def __init__(self) -> None:
        self.on = False
        self.seen: list[tuple[str, str]] = []

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if self.on and event in EVENTS:
            self.seen.append((event, repr(args)[:200]))

    @contextlib.contextmanager
    def window(self) -> Iterator[list[tuple[str, str]]]:
        self.seen = []
        self.on = True
        try:
            yield self.seen
        finally:
            self.on = False


RECORDER = Recorder()
sys.addaudithook(RECORDER)

JSON_BODIES = [
    b'{"task": "echo", "args": [1, "two", {"three": 3.0}], "queue": "default"}',
    b'{"jobs": [{"task": "echo"}, {"task": "sum", "args": [1, 2]}]}',
    b'{"worker": "h-1", "queues": ["default"], "limit": 2}',
    b'{"__reduce__": "os.system", "py/object": "os.system", "!!python/object": 1}',
]
HTTP_ROUTES = ["/api/v1/jobs", "/api/v1/jobs/batch", "/api/v1/work/claim"]


async def native_traffic(rb: RunningBroker, rng: random.Random, rounds: int) -> None:
    ports = {"client": rb.broker.client_port, "worker": rb.broker.worker_port}
    frames = {"client": frames_of(SAMPLES, m.TO_BROKER_CLIENT), "worker": frames_of(SAMPLES)}
    for n in range(rounds):
        role = "client" if n % 2 else "worker"
        reader, writer = await asyncio.open_connection("127.0.0.1", ports[role])
        batch = [mutate(rng.choice(frames[role]), rng) for _ in range(8)] + [noise(rng)]
        writer.write((HELLO[role] if rng.random() < 0.7 else b"") + b"".join(batch))
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(2):
                while await reader.read(65536):
                    pass
        writer.close()


async def http_traffic(rb: RunningBroker, rng: random.Random, rounds: int) -> None:
    async with httpx.AsyncClient(base_url=rb.http_url) as http:
        for n in range(rounds):
            body = rng.choice(JSON_BODIES)
            if n % 3:
                body = mutate(len(body).to_bytes(4, "big") + body, rng)[4:]
            await http.post(
                rng.choice(HTTP_ROUTES), content=body, headers={"content-type": "application/json"}
            )
        await http.get("/api/v1/jobs/1")


async def traffic(rb: RunningBroker, seed: int, rounds: int) -> None:
    rng = random.Random(seed)
    await asyncio.gather(native_traffic(rb, rng, rounds), http_traffic(rb, rng, rounds))


def test_the_recorder_hears_what_it_listens_for() -> None:
    with RECORDER.window() as seen:
        compile("1 + 1", "<test>", "eval")
    assert [event for event, _ in seen] == ["compile"]
    compile("1 + 1", "<test>", "eval")  # outside the window: not recorded
    assert len(seen) == 1


async def test_a_broker_decoding_hostile_bytes_runs_no_code_from_them() -> None:
    async with run_broker(http=True) as rb:
        for seed in range(3):  # warm up: every lazy import and template compile, now
            await traffic(rb, seed, 60)
        closed_before = rb.broker.quiet.total
        with RECORDER.window() as seen:
            await traffic(rb, 1234, 120)
        assert not seen, seen
        refused = rb.broker.quiet.total - closed_before  # connections closed for bad input
        assert refused > 50  # the bad frames reached the decoder and were refused
        async with rb.client() as client:  # still serving
            assert await client.stats()
