# Two commands do all set-up on a fresh machine with Python 3.11:
#   make run   — create .venv, install leadq, run the demo on the embedded MLflow store
#   make test  — create .venv if needed, install the dev extras, run the test suite
# Both install the exact versions in requirements/*.lock (what CI tested); `make lock`
# re-resolves them from pyproject.toml's ranges.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=
LOCK_RUN := requirements/run.lock
LOCK_CI  := requirements/ci.lock
COMPILE  := $(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links

.PHONY: run test lint bench lock mutants clean help

help:
	@echo "make run      install into .venv and run the demo (synth → train → score)"
	@echo "make test     install dev extras into .venv and run pytest"
	@echo "make lint     ruff"
	@echo "make bench    benchmarks (see benchmarks/README.md)"
	@echo "make lock     re-resolve requirements/*.lock from pyproject.toml"
	@echo "make mutants  break each tested promise in a scratch copy, report which the suite kills"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml $(LOCK_RUN) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r $(LOCK_RUN)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(LOCK_CI) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r $(LOCK_CI)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/leadq demo

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/run_all.py

lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet "pip-tools>=7.4,<8"
	$(COMPILE) --upgrade -o $(LOCK_RUN) pyproject.toml
	$(COMPILE) --upgrade --extra dev --extra spark --extra postgres -o $(LOCK_CI) pyproject.toml

mutants: $(VENV)/.installed-test
	$(BIN)/python tests/mutation/run_mutants.py

clean:
	rm -rf demo_output mlruns mlflow.db .pytest_cache benchmarks/out
