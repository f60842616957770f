"""Schemathesis against the broker's own OpenAPI document: generated requests (valid
and invalid) never get a server error, and every answer matches the document."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest

from runq.broker import BrokerConfig
from runq.model.token import make_token
from runq.testing import run_broker

ST = Path(sys.executable).with_name("st")
# The bodies are decoded strictly, as on the native port (so 0 is not false), and a few
# values the document calls valid are refused with 422 on purpose: integers beyond 64
# bits inside free-form args, kwargs and results (JSON Schema cannot bound them), and
# an integer written as 738.0 (JSON Schema counts it as an integer; msgspec does not).
# Every other check, and the refusal of schema-violating bodies, stays on.
CONFIG = """
# OPTIONS answers come from the framework, not from runq's document.
[checks.allow_header_conformance]
enabled = false

[[operations]]
include-name-regex = "^POST /api/v1/(jobs|work)"
checks.positive_data_acceptance.enabled = false
"""


@pytest.mark.parametrize("access", ["open", "tokens"])
async def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(
    tmp_path: Path, access: str
) -> None:
    assert ST.exists() or shutil.which("st"), "schemathesis is a test dependency"
    # Given: a broker with HTTP whose long-polling claims give up quickly; with
    # "tokens", its store holds an admin token that every request presents (and
    # schemathesis checks that requests without it are refused).
    config = BrokerConfig(max_claim_wait=0.1, auth_failures=1_000_000)
    async with run_broker(http=True, config=config) as rb:
        await rb.add_worker(concurrency=2)
        auth: list[str] = []
        if access == "tokens":
            made = make_token("schemathesis", ["admin"], rb.broker.clock(), None)
            await rb.broker.store.add_token(made.info, made.digest)
            auth = ["--header", f"Authorization: Bearer {made.text}"]
        # When: schemathesis sends examples, boundary cases and fuzzed requests.
        (tmp_path / "schemathesis.toml").write_text(CONFIG)
        proc = await asyncio.create_subprocess_exec(
            str(ST),
            "--config-file",
            str(tmp_path / "schemathesis.toml"),
            "run",
            f"{rb.http_url}/api/v1/openapi.json",
            *auth,
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "25",
            "--workers",  # one: on Python 3.11, ast.parse in two threads at once can fail
            "1",  # inside hypothesis ("AST constructor recursion depth mismatch")
            "--seed",
            "20261130",
            "--request-timeout",
            "10",
            cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 240)
        # Then: it found nothing, and the store is still readable.
        text = out.decode(errors="replace")
        assert proc.returncode == 0, text[-6000:]
        assert "Server error" not in text
        assert await rb.broker.store.get(0) is None
