# Ballast: `make demo` and `make test` are the two commands a newcomer needs.
# Every target installs first (idempotently, from the committed uv.lock).

SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
VENV := .venv
UV := $(shell command -v uv 2>/dev/null || echo $(VENV)-tools/bin/uv)
export BALLAST_HOME ?= $(CURDIR)/.ballast
export SODA_CORE_TELEMETRY_ENABLED := false
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DAGSTER_DISABLE_TELEMETRY := true

.PHONY: setup demo test test-fast lint audit dev ui-check bench bench-more clean

$(VENV)-tools/bin/uv:
	$(PYTHON) -m venv $(VENV)-tools
	$(VENV)-tools/bin/pip install --quiet "uv==$(UV_VERSION)"

# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set (containers, CI),
# every `ballast` and dbt process would otherwise compile dagster, dbt and Feast from source
# (about 15 s per `ballast run`, 3.5 s per dbt step).
$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/ballast demo

test: setup
	$(VENV)/bin/pytest

# The fast tier, for every edit (under 3 minutes): no whole-graph run, Spark, dev server or kill chain.
test-fast: setup
	$(VENV)/bin/pytest -m "not full"

# Style (ruff) and architecture (import-linter: each layer imports only those below it).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# Ballast's own debt scorecard, gated by BALLAST_AUDIT_MIN_INDEX and the four dimension targets.
audit: setup
	$(VENV)/bin/ballast audit

dev: setup
	$(VENV)/bin/ballast dev

# Screenshots of the UI's main pages on the demo's home (after `make demo`) into $(BALLAST_HOME)/ui-check,
# for review; installs Debian's chromium package when missing (apt-get, through sudo unless root).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
ui-check: setup
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }
	$(VENV)/bin/python tools/ui_check.py

# Issue 16's targets table (bench/results/targets.md); about 20-25 minutes on 2 quiet cores.
# BENCH_ARGS passes options, e.g. BENCH_ARGS="--only demo --repeats 3" or "--quick".
bench: setup
	$(VENV)/bin/python bench/targets.py $(BENCH_ARGS)

# The other benchmarks (generator, Feast, whylogs, the graph against the floor at three sizes).
bench-more: setup
	$(VENV)/bin/python bench/generator.py
	$(VENV)/bin/python bench/feature_store.py
	$(VENV)/bin/python bench/profiling.py
	$(VENV)/bin/python bench/e2e.py

clean:
	rm -rf $(VENV) $(VENV)-tools .ballast dbt_project/target
