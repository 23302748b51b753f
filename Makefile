# One entry point for people and CI. Everything installs into .venv; nothing global.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test run bench lint clean revision

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

## demo: set up and run the main job offline on embedded defaults (SQLite, bundled sample)
demo: $(STAMP)
	$(BIN)/clapper demo

## test: set up, lint, and run the whole test suite
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

## run: the long-running service (bot + scheduler + delivery)
run: $(STAMP)
	$(BIN)/clapper run

## bench: every benchmark, each printing ratios against a baseline measured in the same run
bench: $(STAMP)
	bash bench/ensure_postfix.sh
	$(BIN)/python bench/run_all.py

lint: $(STAMP)
	$(BIN)/ruff check .

## revision: new Alembic migration from models.py changes, e.g. make revision m="add x"
revision: $(STAMP)
	$(BIN)/python -m digests.db revision "$(m)"

clean:
	rm -rf $(VENV) out clapper.db
