PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: up test check lint system-packages bench soak fuzz clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(STAMP)

up: $(STAMP)
	$(BIN)/runq up

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench fuzz
	$(BIN)/ruff format --check src tests bench fuzz
	$(BIN)/mypy --strict src/runq

# System packages the tests need: Debian's chromium for the browser tests (never a
# downloaded browser build), curl and jq for the bash HTTP worker of examples/.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get
system-packages:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v jq >/dev/null || missing="$$missing jq"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages the tests need:$$missing"; \
		$(APT) install -y -q $$missing || { $(APT) update -q && $(APT) install -y -q $$missing; }; \
	fi

check: lint system-packages
	$(BIN)/python -m pytest -m "not soak" -q -n 3

test: check

soak: $(TEST_STAMP)
	$(BIN)/python -m pytest -m soak -q

# Coverage-guided fuzzing of the frame decoder with atheris, for FUZZ_SECONDS; a crash
# leaves its input in fuzz/crashes/ (replay: $(BIN)/python fuzz/frame_decoder.py FILE).
FUZZ_SECONDS ?= 60
fuzz: $(TEST_STAMP)
	$(BIN)/python -m pip install -q -e '.[fuzz]'
	mkdir -p fuzz/crashes
	$(BIN)/python fuzz/frame_decoder.py -max_total_time=$(FUZZ_SECONDS) \
		-artifact_prefix=fuzz/crashes/ -max_len=4096

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
