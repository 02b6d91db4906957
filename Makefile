# Firebreak: the two commands of the README are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install demo test test-unit lint docs chaos bench bench-quick up down status schemas clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Firebreak needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

## The local stack (Kafka + Redis), topics, ingest and a worker; posts examples/ and prints the incidents.
demo: install
	PYTHON=$(BIN)/python deploy/local/demo.sh

## Every test: unit tests (spread over the cores), then integration, e2e and chaos tests against a real Kafka
## and Redis they start themselves (one stack for the session, so one process).
test: install
	$(BIN)/pytest tests/unit -n auto
	$(BIN)/pytest tests/integration tests/e2e tests/chaos

test-unit: install
	$(BIN)/pytest tests/unit -n auto

## Structure and style: the import contracts (docs/architecture.md), mypy --strict on schemas/ and correlation/,
## ruff check and ruff format --check on everything (their settings are in pyproject.toml).
lint: install
	$(BIN)/pip install --quiet -e '.[lint]'
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## The documentation site from docs/ into site/ (MkDocs Material); --strict: a broken link or page fails.
## First the generated reference pages must match the code (`firebreak docs generate` rewrites them).
## No --quiet: with it, MkDocs 1.6 drops warnings before --strict counts them and the build passes anyway.
docs: install
	$(BIN)/pip install --quiet -e '.[docs]'
	$(BIN)/firebreak docs generate --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

## Benchmarks side by side with Alertmanager and a bare Kafka consumer; appends to BENCHMARKS.md (bench/run.py).
bench: install
	$(BIN)/pip install --quiet -e '.[bench]'
	deploy/local/peers.sh install
	$(BIN)/python bench/run.py

bench-quick: install
	$(BIN)/pip install --quiet -e '.[bench]'
	deploy/local/peers.sh install
	$(BIN)/python bench/run.py --quick

## The fault-injection suite at full length (about 10 minutes), then its ledger table into docs/operations/reliability.md.
chaos: install
	rm -rf .firebreak/chaos
	FIREBREAK_CHAOS_FULL=1 $(BIN)/pytest tests/chaos; status=$$?; $(BIN)/python -m tests.chaos.report --write; exit $$status

up: install
	PYTHON=$(BIN)/python deploy/local/stack.sh up

down:
	deploy/local/stack.sh down

status:
	deploy/local/stack.sh status

schemas: install
	$(BIN)/firebreak schemas export

clean: down
	rm -rf $(VENV) .firebreak
