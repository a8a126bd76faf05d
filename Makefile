# Two commands do all set-up on a fresh machine with Python 3.11:
#   make run   — create .venv, install leadq, run the demo on the embedded MLflow store
#   make test  — create .venv if needed, install the dev extras, run the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test lint bench clean help

help:
	@echo "make run    install into .venv and run the demo (synth → train → score)"
	@echo "make test   install dev extras into .venv and run pytest"
	@echo "make lint   ruff"
	@echo "make bench  benchmarks (see benchmarks/README.md)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,spark,postgres]"
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/leadq demo

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf demo_output mlruns mlflow.db .pytest_cache benchmarks/out
