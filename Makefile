# Two entry points: `make demo` and `make test`. Both create and use .venv in this folder.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-unit lint docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/accounting-etl demo

# two worker processes, each taking whole test files (a file's fixtures are built once): 10 to 21 minutes on
# 2 cores in fresh clones here (by how busy the machine is)
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# the fast loop: tests/unit only (in-process: no sandbox server, process, dbt or database server), well under a
# minute on 2 cores; `pytest -m unit` selects the same tests (tests/integration/ is the rest)
test-unit: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -n 2 tests/unit

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# the documentation site into site/ (strict: a broken link or reference fails it)
docs: $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_scale.py

clean:
	rm -rf $(VENV) accounting.duckdb report site .pytest_cache
