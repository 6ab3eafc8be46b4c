# The two entry points of the README: `make demo` and `make test`.
# Everything installs itself: system packages (when root and missing), the
# virtual environment, Kafka's jars. State lives under RUNSTREAM_HOME.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export RUNSTREAM_HOME ?= $(CURDIR)/.runstream

.PHONY: demo test down status system-deps install bench chaos fuzz

demo: install
	$(BIN)/runstream up
	$(BIN)/python examples/ridge_sweep.py
	@echo "The stack keeps running (logs in $$RUNSTREAM_HOME/logs): open the portal URL above; 'make down' stops it."

down:
	@if [ -x $(BIN)/runstream ]; then $(BIN)/runstream down; else echo "nothing installed"; fi

status: install
	$(BIN)/runstream status

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

install: system-deps $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,demo]'
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

# The fuzz suites (tests/test_fuzz_*.py) for longer, with fresh cases: `make test` draws the same
# cases every run, fewer of them. The seed is printed; `make fuzz SEED=N` draws the same cases again,
# FUZZ_SCALE=K draws K times more than `make test` (default 20).
fuzz: install
	@seed=$${SEED:-$$($(BIN)/python -c 'import random; print(random.randrange(2**32))')}; \
	echo "fuzz seed $$seed (replay: make fuzz SEED=$$seed)"; \
	RUNSTREAM_FUZZ=1 RUNSTREAM_FUZZ_SEED=$$seed RUNSTREAM_FUZZ_SCALE=$${FUZZ_SCALE:-20} \
	  $(BIN)/pytest tests/test_fuzz_decoder.py tests/test_fuzz_kafka.py tests/test_fuzz_sdk.py tests/test_fuzz_http.py \
	  -p no:cacheprovider --hypothesis-seed=$$seed --timeout=3600 -s $(PYTEST_ARGS) \
	  || { echo "fuzz FAILED with seed $$seed: replay with make fuzz SEED=$$seed"; exit 1; }

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
