# The two entry points of the README: `make demo` and `make test`.
# Everything installs itself: system packages (when root and missing), the
# virtual environment, Kafka's jars. State lives under RUNSTREAM_HOME.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export RUNSTREAM_HOME ?= $(CURDIR)/.runstream

.PHONY: demo test down status system-deps install bench chaos fuzz lint lock

demo: install
	$(BIN)/runstream up
	$(BIN)/python examples/ridge_sweep.py
	@echo "The stack keeps running (logs in $$RUNSTREAM_HOME/logs): open the portal URL above and sign in with the token in $$RUNSTREAM_HOME/secrets/query-read.token; 'make down' stops it."

down:
	@if [ -x $(BIN)/runstream ]; then $(BIN)/runstream down; else echo "nothing installed"; fi

status: install
	$(BIN)/runstream status

# Two test processes (pytest-xdist), each with its own Kafka and PostgreSQL: much of the
# suite waits (on brokers, session timeouts, faults), so two cut its wall time here from
# 692 s to 500 s. A file's tests stay in one process (its module fixtures are set up once), and
# files are handed out in the order conftest.py sorts them: the chaos outcomes last.
TEST_PROCESSES ?= 2

test: install
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# The static checks pyproject.toml configures: ruff (lint and format) over
# everything, mypy --strict over the product packages. CI runs it before the tests.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

install: system-deps $(VENV)/.installed

# The container image's dependencies (Dockerfile): pyproject.toml's, resolved to exact versions
# with their SHA-256 hashes. Run after changing a dependency; commit the result.
lock: install
	$(BIN)/pip install --quiet 'pip-tools==7.*'
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links \
	  --output-file=deploy/requirements.lock pyproject.toml

# uv resolves and installs the same versions as pip in a quarter of the time (23 s
# against 96 s from an empty cache here): that is CI's budget, which must stay under 15 min.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check 'uv==0.13.9'
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[test,demo,lint]'
	touch $@

# Java, Maven, the PostgreSQL server binaries and Chromium (for the browser
# tests, driven by Playwright; never a browser download); installed from Debian's
# packages when we are root and they are missing, otherwise we say what to do.
system-deps:
	@missing=""; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || missing="$$missing postgresql"; \
	$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing:$$missing -- install them (e.g. sudo apt-get install$$missing) and run make again" >&2; exit 1; \
	  fi; \
	fi

# The chaos suite (tests/chaos): faults injected under load on a stack of its own
# (free ports, a temporary directory), every run's ledger checked, one table at the end.
# `make chaos QUICK=1` runs the reduced form that CI runs through tests/test_chaos.py.
chaos: install
	$(BIN)/python -m tests.chaos $(if $(filter 1 yes true,$(QUICK)),--quick)

# The benchmark suite (bench/README.md): its own stack on free ports, MLflow and
# W&B in an environment of their own (bench/.venv), one table at the end.
# `make bench QUICK=1` runs the reduced version (under 3 minutes).
BENCH_VENV := bench/.venv

bench: install $(BENCH_VENV)/.installed
	$(BIN)/python -m bench $(if $(filter 1 yes true,$(QUICK)),--quick)

$(BENCH_VENV)/.installed: bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet -r bench/requirements.txt
	touch $@

# The randomised tests (marked `fuzz`) with ten times the examples and a fresh
# seed, printed in pytest's header and beside each failure; SEED=N replays one.
fuzz: install
	@seed=$${SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; echo "make fuzz: seed $$seed (SEED=$$seed make fuzz replays it)"; \
	RUNSTREAM_FUZZ=1 RUNSTREAM_FUZZ_SEED=$$seed $(BIN)/pytest -m fuzz --hypothesis-seed=$$seed $(PYTEST_ARGS)
