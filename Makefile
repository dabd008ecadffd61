# The two commands of the quick start: `make up` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv is the one installer; it is fetched from PyPI on a machine that lacks it.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
STAMP := .venv/.synced

.PHONY: help install up test lint bench prereqs clean

help:
	@echo "make up     run the broker and all five services (Ctrl-C stops everything)"
	@echo "make test   run the whole test suite against a real broker and PostgreSQL"
	@echo "make bench  run the benchmarks and print their figures"

$(STAMP): pyproject.toml uv.lock shared/pyproject.toml $(wildcard services/*/pyproject.toml)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --all-packages --locked
	@touch $@

install: $(STAMP)

# Java and Maven build the local broker; PostgreSQL backs the tests.
prereqs: install
	$(UV) run python -m cpu_platform.devstack.kafka fetch
	$(UV) run python -m cpu_platform.devstack.postgres install
	$(UV) run python -m cpu_platform.devstack.browser install
	deploy/tools/install-ops-tools

up: install
	$(UV) run python -m cpu_platform.devstack.kafka fetch
	$(UV) run cpu up

lint: install
	$(UV) run ruff check .
	$(UV) run mypy shared/src src
	$(UV) run cpu asyncapi --check

test: prereqs lint
	$(UV) run pytest

bench: prereqs
	$(UV) run python -m bench

clean:
	rm -rf .venv var
