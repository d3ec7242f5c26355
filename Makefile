# Everything runs from .venv, made here from pyproject.toml: nothing to install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: test lint typecheck unit run bench clean

# Reinstall whenever pyproject.toml changes, so a new dependency never goes missing.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check slackonos_telemetry tests bench
	$(BIN)/ruff format --check slackonos_telemetry tests bench

typecheck: $(STAMP)
	$(BIN)/mypy --strict slackonos_telemetry

unit: $(STAMP)
	$(BIN)/pytest -n 2 -q

run: $(STAMP)
	$(BIN)/slackonos-telemetry run $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
