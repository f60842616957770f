"""System tests: the real `runq` command in subprocesses (pytest -m system)."""
