SHELL := /bin/bash
# Everything builds its own virtual environment from nothing: a fresh clone needs only python3 (3.10 to 3.13).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip --quiet --disable-pip-version-check
CONFIG ?=
IMAGE ?= airbyte/source-lms-enrollments:dev
# Without a Docker engine `make image` uses shared/tools/container-check (rootful podman), found beside the checkout
# (CI) or beside its parent folder (a worktree).
CONTAINER_CHECK ?= $(firstword $(wildcard ../shared/tools/container-check ../../shared/tools/container-check))

.PHONY: help venv sync test unit integration bench image clean fake

help:
	@echo "make sync   sync into a local DuckDB file (the bundled fake TalentLMS unless CONFIG=path/to/config.json)"
	@echo "make test   every test: unit tests and the connector's real entrypoint against the fake LMS server"
	@echo "make fake   run the fake LMS server by hand (TalentLMS on 127.0.0.1:8080)"
	@echo "make image  build the Docker image $(IMAGE) and run \`spec\` in it"
	@echo "make bench  figures: the connector against a plain floor script and its peers on the same fake data (minutes; BENCH_ARGS=--help)"

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(PIP) install -e ".[tests,warehouse]" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
	touch $@

venv: $(VENV)/.installed

# Without CONFIG: integration_tests/sync_demo.py starts the fake LMS server and runs the same CLI with --demo (run from
# the repository root; the package itself never imports test code).
# More options (e.g. --cache postgres --pg-host ...): make sync ARGS="..."; see python -m source_lms_enrollments.sync -h
sync: venv
	$(BIN)/python -m $(if $(CONFIG),source_lms_enrollments.sync --config $(CONFIG),integration_tests.sync_demo) $(ARGS)

# Two runs: most tests in parallel workers (they mostly wait out backoffs), then Airbyte's standard suite in one
# process (its config files name its fakes' addresses and are shared by the whole suite).
test: venv
	$(BIN)/python -m pytest -q --ignore=integration_tests/standard_suite
	$(BIN)/python -m pytest -q -n 0 integration_tests/standard_suite

unit: venv
	$(BIN)/python -m pytest -q unit_tests

integration: venv
	$(BIN)/python -m pytest -q integration_tests

fake: venv
	$(BIN)/python -m integration_tests.fake_lms talentlms --port 8080

image:
	@if docker info >/dev/null 2>&1; then \
	  docker build -t $(IMAGE) . && docker run --rm $(IMAGE) spec >/dev/null && echo "built $(IMAGE); spec runs"; \
	elif [ -n "$(CONTAINER_CHECK)" ]; then \
	  CONTAINER_CHECK_IMAGE=$(IMAGE) $(CONTAINER_CHECK); \
	else \
	  echo "make image: needs a Docker engine (docker info fails) or container-check, the project's shared tool (not in this repository), at ../shared/tools/ or ../../shared/tools/, or CONTAINER_CHECK=/path/to/it" >&2; exit 1; \
	fi

# Not part of `make test`: it prints figures, it asserts nothing. Peers go into their own venvs under bench/.peers/.
BENCH_ARGS ?=
bench: venv
	$(BIN)/python bench/peers.py install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
