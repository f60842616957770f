"""Imports point one way (STYLE.md): walk the source with ``ast`` and fail on a wrong arrow.

Every import counts, including those inside functions and under ``TYPE_CHECKING``: an
arrow drawn only for the type checker is still an arrow a reader has to follow.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import runq

SRC = Path(runq.__file__).resolve().parent

# layer -> prefixes of runq modules it must not import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "runq.store": (
        "runq.protocol",
        "runq.broker",
        "runq.worker",
        "runq.client",
        "runq.cli",
        "runq.http",
    ),
    "runq.broker": ("runq.worker", "runq.client", "runq.cli", "runq.http"),
    "runq.worker": ("runq.store", "runq.broker", "runq.cli", "runq.http"),
    "runq.client": ("runq.store", "runq.broker", "runq.worker", "runq.cli", "runq.http"),
}
# layer -> the only runq modules it may import
ALLOWED_ONLY: dict[str, tuple[str, ...]] = {
    "runq.model": ("runq.errors", "runq.model"),
    "runq.protocol": ("runq.errors", "runq.model", "runq.protocol"),
}
# The edges: the command line, the HTTP API, and the task process's entry point (which
# sets RUNQ_JOB_ID and RUNQ_ATTEMPT for the task it runs).
MAY_READ_ENVIRONMENT = ("runq.cli", "runq.http", "runq.worker.executors.child")
ENV_READERS = {"environ", "getenv", "environb", "getenvb"}


@dataclass(frozen=True)
class Arrow:
    module: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def module_name(path: Path, root: Path = SRC) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def resolve(module: str, package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``import from`` names (relative imports included)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not package:
        base.pop()
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


@functools.cache
def parse(source: str) -> ast.Module:
    """Parsed once, at collection (see below): CPython 3.11 can fail building an AST
    after another test left its recursion accounting off (a RecursionError caught in C)."""
    return ast.parse(source)


def imports(source: str, module: str, package: bool = False) -> Iterator[Arrow]:
    for node in ast.walk(parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Arrow(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            target = resolve(module, package, node)
            if target == "runq":  # from runq import errors -> runq.errors
                for alias in node.names:
                    yield Arrow(module, f"runq.{alias.name}", node.lineno)
            else:
                yield Arrow(module, target, node.lineno)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield Arrow(module, node.args[0].value, node.lineno)


def is_env_read(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute):  # os.environ[...], os.getenv(...)
        value = node.value
        return node.attr in ENV_READERS and isinstance(value, ast.Name) and value.id == "os"
    if isinstance(node, ast.ImportFrom):  # from os import environ
        return node.module == "os" and any(a.name in ENV_READERS for a in node.names)
    return False


def env_reads(source: str) -> Iterator[int]:
    """Lines that read the process environment."""
    for node in ast.walk(parse(source)):
        if is_env_read(node):
            yield getattr(node, "lineno", 0)


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def wrong_arrows(arrow: Arrow) -> list[str]:
    if not under(arrow.target, "runq"):
        return []
    problems = []
    for layer, banned in FORBIDDEN.items():
        if under(arrow.module, layer) and any(under(arrow.target, b) for b in banned):
            problems.append(f"{arrow} but {layer} must not import {arrow.target}")
    for layer, allowed in ALLOWED_ONLY.items():
        if under(arrow.module, layer) and not any(under(arrow.target, a) for a in allowed):
            problems.append(f"{arrow} but {layer} may import only {', '.join(allowed)}")
    return problems


def sources() -> list[tuple[str, Path]]:
    return sorted((module_name(p), p) for p in SRC.rglob("*.py"))


MODULES = sources()
for _, _path in MODULES:
    parse(_path.read_text())


def test_the_walk_finds_every_layer() -> None:
    names = {name for name, _ in MODULES}
    for layer in ("runq.model", "runq.protocol", "runq.store", "runq.broker", "runq.worker"):
        assert any(under(n, layer) for n in names), layer
    assert "runq.store.sqlite.store" in names
    assert "runq.model" in names  # packages count as their __init__


@pytest.mark.parametrize("name,path", MODULES, ids=[n for n, _ in MODULES])
def test_imports_point_one_way(name: str, path: Path) -> None:
    arrows = imports(path.read_text(), name, is_package(path))
    problems = [p for arrow in arrows for p in wrong_arrows(arrow)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name,path", MODULES, ids=[n for n, _ in MODULES])
def test_only_the_edges_read_the_environment(name: str, path: Path) -> None:
    if any(under(name, edge) for edge in MAY_READ_ENVIRONMENT):
        return
    lines = list(env_reads(path.read_text()))
    assert not lines, f"{name} reads the environment at line(s) {lines}"


# -- the checker itself catches what it should --------------------------------------------


@pytest.mark.parametrize(
    ("module", "package", "source"),
    [
        ("runq.model.job", False, "from runq.protocol import codec"),
        ("runq.model.job", False, "import runq.store.base"),
        ("runq.model.job", False, "from runq import clock"),
        ("runq.model.job", False, "from ..broker import server"),
        ("runq.model", True, "from .. import broker"),
        ("runq.protocol.codec", False, "from runq.store.base import Store"),
        ("runq.store.sqlite.store", False, "from runq.protocol import messages"),
        ("runq.store.open", False, "def f():\n    from ..broker import Broker"),
        ("runq.worker.agent", False, "import importlib\nimportlib.import_module('runq.store')"),
        (
            "runq.worker.agent",
            False,
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from runq.broker.server import Broker",
        ),
        ("runq.client.aio", False, "from runq.broker import handlers"),
        ("runq.client.aio", False, "from runq.store.open import open_store"),
    ],
)
def test_the_checker_catches_a_wrong_arrow(module: str, package: bool, source: str) -> None:
    arrows = list(imports(source, module, package))
    assert [p for a in arrows for p in wrong_arrows(a)]


@pytest.mark.parametrize(
    ("module", "package", "source"),
    [
        ("runq.model.job", False, "from runq.errors import IllegalTransition\nimport msgspec"),
        ("runq.model.policy", False, "from .retry import RetryPolicy"),
        ("runq.protocol.codec", False, "from runq.model import Job\nfrom . import limits"),
        ("runq.store.base", False, "from runq.model import Job"),
        ("runq.worker.agent", False, "from runq.protocol import codec"),
        ("runq.broker.server", False, "from runq.store.base import Store"),
    ],
)
def test_the_checker_lets_right_arrows_pass(module: str, package: bool, source: str) -> None:
    arrows = list(imports(source, module, package))
    assert arrows
    assert not [p for a in arrows for p in wrong_arrows(a)]


@pytest.mark.parametrize(
    "source",
    [
        "import os\nos.environ['X']",
        "import os\nos.getenv('X')",
        "import os\nos.environ.get('X')",
        "from os import environ",
        "from os import getenv as g",
    ],
)
def test_the_checker_catches_environment_reads(source: str) -> None:
    assert list(env_reads(source))


def test_the_checker_ignores_other_os_use() -> None:
    assert not list(env_reads("import os\nos.getpid()\nos.cpu_count()"))
