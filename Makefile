# Everything runs from .venv, made here from pyproject.toml: nothing to install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A second venv with every runtime dependency at the lowest version pyproject.toml allows.
LOWEST := .venv-lowest
LOWEST_STAMP := $(LOWEST)/.installed
ARGS ?=

.PHONY: test test-lowest lint typecheck unit run bench clean

# Reinstall whenever pyproject.toml changes, so a new dependency never goes missing.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(LOWEST_STAMP): pyproject.toml .ci/lowest_constraints.py
	test -x $(LOWEST)/bin/python || $(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet --upgrade pip
	$(PYTHON) .ci/lowest_constraints.py > $(LOWEST)/constraints.txt
	$(LOWEST)/bin/python -m pip install --quiet -c $(LOWEST)/constraints.txt -e '.[dev]'
	touch $(LOWEST_STAMP)

test: lint typecheck unit

# The suite again, against the lowest supported slack-bolt, slack-sdk, posthog, tinydb.
test-lowest: $(LOWEST_STAMP)
	$(LOWEST)/bin/python -m pip list 2>/dev/null | grep -i -E '^(slack|posthog|tinydb)'
	$(LOWEST)/bin/pytest -n 2 -q

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
	$(BIN)/python -m bench.run $(ARGS)

clean:
	rm -rf $(VENV) $(LOWEST) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
