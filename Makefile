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
LOCK_NB  := requirements/notebooks.lock
# `make notebooks NOTEBOOK_PARAMS=/path/params.yaml` runs them on your own export
NOTEBOOK_PARAMS ?= $(CURDIR)/params.yaml
COMPILE  := $(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links

.PHONY: run test test-fast docs notebooks notebooks-install lint bench lock mutants clean help

help:
	@echo "make run      install into .venv and run the demo (synth → train → score)"
	@echo "make test     install dev extras into .venv and run pytest"
	@echo "make test-fast  unit and data tests, no model training, 2 processes (< 2 min)"
	@echo "make docs     build the documentation site into site/ (strict)"
	@echo "make notebooks  install Jupyter + papermill, run both notebooks on the demo (after make run)"
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

# The contributor's lane: everything not marked slow (tests/conftest.py marks what trains a
# model or starts a browser, a JVM or a database), on two worker processes.
test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "not slow" -n 2 -q $(PYTEST_ARGS)

docs: $(VENV)/.installed-test
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

$(VENV)/.installed-notebooks: pyproject.toml $(LOCK_NB) | $(VENV)/.installed-run
	$(BIN)/python -m pip install --quiet -r $(LOCK_NB)
	@touch $@

notebooks-install: $(VENV)/.installed-notebooks

# Executed copies (with outputs) go to notebooks/out/; the committed notebooks stay clean.
notebooks: $(VENV)/.installed-notebooks
	@mkdir -p notebooks/out
	cd notebooks && for nb in 01-explore-leads 02-personas; do \
		MPLBACKEND=Agg ../$(BIN)/papermill --cwd . -k python3 $$nb.ipynb out/$$nb.ipynb \
			-p PARAMS "$(NOTEBOOK_PARAMS)" || exit 1; done

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/run_all.py

lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet "pip-tools>=7.4,<8"
	$(COMPILE) --upgrade -o $(LOCK_RUN) pyproject.toml
	$(COMPILE) --upgrade --extra dev --extra spark --extra postgres --extra docs -o $(LOCK_CI) pyproject.toml
	cp $(LOCK_CI) $(LOCK_NB)  # seeded from ci.lock so the packages both hold get the same pins
	$(COMPILE) --extra notebooks -o $(LOCK_NB) pyproject.toml

mutants: $(VENV)/.installed-test
	$(BIN)/python tests/mutation/run_mutants.py

clean:
	rm -rf demo_output mlruns mlflow.db .pytest_cache benchmarks/out site notebooks/out
