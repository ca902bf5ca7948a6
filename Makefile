# Two commands do all the set-up on a fresh machine with Python 3.11 and make:
#   make demo   - materialise every asset on the bundled sample data (local folder, no services)
#   make test   - the whole test suite (starts its own S3 server and browser)
# Both create the locked environment first when it is missing or stale.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
UV_VERSION := 0.13.9
UV_DIR := .uv-tool
UV := $(UV_DIR)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
SNOIQ_HOME ?= $(CURDIR)/.snoiq
DAGSTER_HOME ?= $(SNOIQ_HOME)/dagster_home
export SNOIQ_HOME DAGSTER_HOME

.PHONY: venv demo land test dev explore bench lock check-compose clean reproduce prune-snapshots

$(UV):
	$(PYTHON) -m venv $(UV_DIR)
	$(UV_DIR)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# uv installs exactly what uv.lock says (about 20 s from a warm cache, under a minute cold),
# and compiles the bytecode (~20 s): each Dagster run, the UI and the tests' subprocesses then
# import the stack in ~3 s instead of ~7.5 s, also where PYTHONDONTWRITEBYTECODE is set.
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	touch $@

# The project's own modules too (an editable install, so uv leaves them out): where
# PYTHONDONTWRITEBYTECODE is set (containers often do) Python never writes their .pyc, and every
# process that imports the code location (each run, `dg launch`, the UI, the tests' subprocesses)
# compiled its 19,000 lines again: 1.65 s instead of 1.48 s to import it. Only changed files are
# compiled (0.1 s when none is).
venv: $(VENV)/.synced
	@$(PY) -m compileall -q -j 0 snoiq_assets snoiq_assets_tests benchmarks

lock: | $(UV)
	$(UV) lock

demo: venv $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m snoiq_assets.demo

# Only land the bundled samples and register their partitions in the local instance: what the
# README's "From CI" commands need on a fresh clone.
land: venv $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m snoiq_assets.demo --land-only

# Two workers (pytest-xdist), each module's tests on one worker so module fixtures (the demo,
# the UI server) start once: much of the suite waits on subprocesses, servers and I/O. The 25
# slowest tests are listed at the end: where the developer loop's time goes.
# The tests' scratch folders (lakes, Dagster instances, SQLite, DuckDB: about 5 GB written a
# run) go to the RAM-backed /dev/shm when it has 12 GiB of room (a container's is often 64 MB)
# and 12 GiB of memory is free: no journal or fsync on every SQLite commit, no write-back of
# files a test reads once (13 min 42 s instead of 14 min 31 s for the suite, 1,336 instead of
# 1,395 CPU-seconds, on the machine of that round; the README has today's figure). TEST_TMP is the parent folder; the tests get a folder of their own in it
# (pytest empties it first; removed after a passing run, kept after a failing one until the
# next), so `make test TEST_TMP=/some/dir` never empties /some/dir itself. `make test TEST_TMP=`
# keeps pytest's own.
ifeq ($(origin TEST_TMP),undefined)
TEST_TMP := $(shell test -d /dev/shm -a -w /dev/shm \
	&& [ "$$(df -Pk /dev/shm | awk 'NR == 2 { print $$4 }')" -gt $$((12 * 1024 * 1024)) ] 2>/dev/null \
	&& awk '/^MemAvailable:/ { exit !($$2 > 12 * 1024 * 1024) }' /proc/meminfo 2>/dev/null \
	&& echo /dev/shm)
endif
TEST_BASETEMP := $(if $(TEST_TMP),$(TEST_TMP)/snoiq-tests-$(shell id -u)-$(shell printf %s "$(CURDIR)" | cksum | cut -d' ' -f1))

test: venv
	@status=0; $(PY) -m pytest -n 2 --dist loadscope --durations=25 $(if $(TEST_BASETEMP),--basetemp=$(TEST_BASETEMP)) \
		|| status=$$?; \
	if [ -n "$(TEST_BASETEMP)" ]; then \
		if [ $$status -eq 0 ]; then rm -rf "$(TEST_BASETEMP)"; \
		else echo "the tests' files are kept in $(TEST_BASETEMP) (the next make test removes them)"; fi; \
	fi; \
	exit $$status

# The UI and the daemon (sensors, schedules, run queue) on 127.0.0.1:3000, over the same folder
# `make demo` wrote. workspace.yaml is the compose stack's (gRPC code server); not used here.
$(DAGSTER_HOME)/dagster.yaml: dagster.local.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.local.yaml $@

# dg reads [tool.dg] in pyproject.toml (the project's root module and its .venv).
dev: venv $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dg dev -h 127.0.0.1 -p 3000

# The read-only analysis app (marimo + Altair) over the same folder or bucket, on 127.0.0.1:2718.
explore: venv
	$(VENV)/bin/marimo run snoiq_assets/apps/explore.py --host 127.0.0.1 --port 2718 --headless

bench: venv
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

# Retrain a past run from its snapshot and compare metrics: RUN = experiments run id, MLflow run
# id, or champion:<location>/<target>.
reproduce: venv
	@test -n "$(RUN)" || { echo "usage: make reproduce RUN=<run id | MLflow run id | champion:<location>/<target>>"; exit 2; }
	$(PY) -m snoiq_assets.reproduce "$(RUN)"

# Dry run unless APPLY=1: snapshots of runs that are neither champions, registered nor among the
# last KEEP per model spec.
prune-snapshots: venv
	@test -n "$(KEEP)" || { echo "usage: make prune-snapshots KEEP=<runs per spec> [APPLY=1]"; exit 2; }
	$(PY) -m snoiq_assets.snapshots prune --keep "$(KEEP)" $(if $(filter 1,$(APPLY)),--apply,)

clean:
	rm -rf $(SNOIQ_HOME) .pytest_cache
