"""Named SQL queries: a backend's ``queries.sql`` holds blocks that start with
``-- name: NAME``; comment lines inside a block are dropped."""

from __future__ import annotations

from importlib import resources


def load_queries(package: str, name: str = "queries.sql") -> dict[str, str]:
    text = resources.files(package).joinpath(name).read_text()
    queries: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        if line.startswith("-- name:"):
            name = line.split(":", 1)[1].strip()
            queries[name] = ""
        elif name and not line.startswith("--"):
            queries[name] += line + "\n"
    return {k: v.strip() for k, v in queries.items()}
