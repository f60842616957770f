"""`runq token` and RUNQ_TOKEN with the real commands: the first admin token made on
the store, later ones through a broker, scopes enforced for the CLI and workers, bad
input refused, secrets kept out of the logs, and the bind check."""

from __future__ import annotations

import sqlite3

import pytest

from .harness import Cli, Procs, job_id, wait_for_workers, wait_until

pytestmark = pytest.mark.system


def test_tokens_from_first_admin_to_revocation(procs: Procs, cli: Cli) -> None:
    store = procs.tmp_path / "runq.db"
    url = f"sqlite:///{store}"
    # Bad input: exit 2, a clear message, no token made.
    for args, message in [
        (("--scope", "root"), "unknown scope 'root'"),
        (("--scope", "submit:"), "needs a queue name"),
        (("--scope", "read:q1"), "takes no queue"),
        (("--scope", "admin", "--expires", "soon"), "is not a duration"),
        (("--scope", "admin", "--expires", "0"), "more than 0"),
        ((), "Missing option '--scope'"),
    ]:
        ran = cli("token", "create", *args, "--store", url, ok=False)
        assert ran.code == 2 and message in ran.err, str(ran)
    assert "no tokens" in cli("token", "list", "--store", url).out

    # The first admin token, made on the store with no broker.
    made = cli("token", "create", "--scope", "admin", "--name", "root", "--json", "--store", url)
    admin = made.json()["token"]
    assert admin.startswith("runq_") and made.json()["scopes"] == ["admin"]
    # only its hash is stored
    with sqlite3.connect(store) as db:
        stored = db.execute(
            "SELECT group_concat(digest) || group_concat(id) FROM tokens"
        ).fetchone()[0]
    assert admin.split("_", 2)[2] not in stored

    procs.env["RUNQ_TOKEN"] = admin
    server = procs.server()
    at = server.address
    # No token, or a wrong one: refused with a clear message and exit 1.
    for env in ({}, {"RUNQ_TOKEN": "runq_0123456789ab_wrong"}):
        ran = cli("submit", "echo", "x", server=at, ok=False, env=env)
        assert ran.code == 1 and "access token" in ran.err, str(ran)

    # Later tokens through the broker, with the admin token.
    env = {"RUNQ_TOKEN": admin}
    sub = cli(
        "token", "create", "--scope", "submit:q1", "--name", "app", "--json", server=at, env=env
    )
    work = cli(
        "token", "create", "--scope", "work:q1", "--expires", "1h", "--json", server=at, env=env
    )
    submit_token, work_token = sub.json()["token"], work.json()["token"]
    listed = cli("token", "list", server=at, env=env).out
    assert "app" in listed and "submit:q1" in listed and "work:q1" in listed
    assert submit_token not in listed and admin not in listed

    # The submit token submits to q1 only, and cannot administer.
    as_app = {"RUNQ_TOKEN": submit_token}
    job = job_id(cli("submit", "--queue", "q1", "echo", "hi", server=at, env=as_app).out)
    ran = cli("submit", "--queue", "q2", "echo", "no", server=at, env=as_app, ok=False)
    assert "may not submit to queue 'q2'" in ran.err
    ran = cli("token", "create", "--scope", "admin", server=at, env=as_app, ok=False)
    assert "may not administer" in ran.err

    # A worker with the work token runs q1's jobs; its task code never sees the token.
    (procs.tmp_path / "envcheck.py").write_text(
        "import os\n\nimport runq\n\n\n@runq.task(name='token_seen')\ndef token_seen() -> bool:\n"
        "    return 'RUNQ_TOKEN' in os.environ\n"
    )
    procs.env["RUNQ_TOKEN"] = work_token
    args = ["worker", "envcheck", "--server", server.worker_address, "--id", "w-q1"]
    worker = procs.spawn("worker-q1", [*args, "--queues", "q1", "--concurrency", 1])
    wait_for_workers(server, {"w-q1"}, worker)
    wait_until(
        lambda: "succeeded" in cli("status", job, server=at, env=env).out, 20, what="the job"
    )
    seen = job_id(cli("submit", "--queue", "q1", "token_seen", server=at, env=as_app).out)
    assert cli("result", seen, "--wait", server=at, env=as_app).out.strip() == "false"
    ran = cli("submit", "echo", "x", server=at, env={"RUNQ_TOKEN": work_token}, ok=False)
    assert "client port" in ran.err

    # Revoked: stops working at once.
    assert "revoked token" in cli("token", "revoke", "app", server=at, env=env).out
    ran = cli("submit", "--queue", "q1", "echo", "x", server=at, env=as_app, ok=False)
    assert "revoked" in ran.err
    ran = cli("token", "revoke", "nobody", server=at, env=env, ok=False)
    assert ran.code == 1 and "no token with id or name 'nobody'" in ran.err

    # No secret ever reaches a log.
    logs = "".join(p.text() for p in procs.started)
    for secret in (admin, submit_token, work_token, "runq_0123456789ab_wrong"):
        assert secret.split("_", 2)[2] not in logs


def test_broker_refuses_to_listen_beyond_loopback_without_tokens(procs: Procs, cli: Cli) -> None:
    store = procs.tmp_path / "runq.db"
    proc = procs.spawn("server", ["server", "--store", f"sqlite:///{store}", "--host", "0.0.0.0"])
    assert proc.wait_exit() == 2
    text = proc.text()
    assert "refusing to listen on 0.0.0.0 with no access token" in text and "--insecure" in text
    assert "Traceback" not in text
