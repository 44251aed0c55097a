# Entry points: `make run` (the agent), `make test` (the whole suite), `make check` (lint, types,
# import contracts and the unit tests: the quick loop), `make soak` (minutes of real-use traffic,
# SOAK_SECONDS=600 by default), `make lint`, `make bench`, `make flame`, `make bench-store`,
# `make sched-trace`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: run test check soak lint format bench flame bench-store sched-trace clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

# The agent with its embedded defaults (SQLite, in-memory channel layer): make run ARGS="http 8080"
run: $(VENV)/.runtime
	$(PY) -u manage.py agent $(ARGS)

test: $(VENV)/.dev
	scripts/ensure-test-deps
	$(PY) -m pytest

# The quick loop before a commit: no agent processes, no browser.
check: lint
	$(PY) -m pytest -q tests/unit

# Not part of `test`: ten minutes by default. SOAK_SECONDS=60 make soak for a quick one.
soak: $(VENV)/.dev
	$(PY) -m pytest -m soak -s tests/soak

lint: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy .
	$(VENV)/bin/lint-imports --no-cache --no-logo

format: $(VENV)/.dev
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: $(VENV)/.dev
	$(PY) bench/real_traffic.py $(ARGS)

# py-spy flame graphs of the agent under wrk load, into docs/perf/ (make flame ARGS="on-c32")
flame: $(VENV)/.dev
	$(PY) bench/flame.py $(ARGS)

# The capture store's own CPU per stored capture and per stored MiB (SQLite, the agent's schema).
bench-store: $(VENV)/.dev
	$(PY) bench/store_bench.py $(ARGS)

# The event-loop thread's waits for its CPU under wrk, and who held it (perf sched; root).
sched-trace: $(VENV)/.dev
	$(PY) bench/sched_trace.py $(ARGS)

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache tests/compat/node_modules
