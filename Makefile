# `make run` and `make test` are each complete on a fresh machine with Python 3.11+:
# they create .venv on first use and reuse it afterwards.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch 2.13.0 is the CPU build on the project's machines; only tests and benchmarks need it (extra `compare`).
TORCH  ?= torch==2.13.0

.PHONY: run test test-slow bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q '$(TORCH)'
	$(BIN)/python -m pip install -q -e '.[test,compare,audio,docs]'
	touch $@ $(VENV)/.core $(VENV)/.docs

$(VENV)/.docs: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[docs]'
	touch $@ $(VENV)/.core

run: $(VENV)/.core
	$(BIN)/python -m chaosjax run-default

test: $(VENV)/.test
	$(BIN)/python -m pytest -n 2 -q

test-slow: $(VENV)/.test
	$(BIN)/python -m pytest -q -m slow

bench: $(VENV)/.test
	$(BIN)/python benchmarks/attribution.py

# The documentation site (mkdocs-material + mkdocstrings) into site/; warnings are errors.
docs: $(VENV)/.docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

clean:
	rm -rf $(VENV) .pytest_cache site
