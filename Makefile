# Everything runs from .venv, made here from pyproject.toml: nothing to install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A second venv with every runtime dependency at the lowest version pyproject.toml allows.
LOWEST := .venv-lowest
LOWEST_STAMP := $(LOWEST)/.installed
ARGS ?=
# Most tests wait on subprocesses, sockets and signals, not on the CPU: three workers
# keep two cores busy (measured: 170 s against 240 s with two).
WORKERS ?= 3

.PHONY: test test-lowest lint typecheck unit run bench dist-check clean

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
	$(LOWEST)/bin/pytest -n $(WORKERS) -q

lint: $(STAMP)
	$(BIN)/ruff check slackonos_telemetry tests bench .ci/dist-check
	$(BIN)/ruff format --check slackonos_telemetry tests bench .ci/dist-check

typecheck: $(STAMP)
	$(BIN)/mypy --strict slackonos_telemetry

unit: $(STAMP)
	$(BIN)/pytest -n $(WORKERS) -q

run: $(STAMP)
	$(BIN)/slackonos-telemetry run $(ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench.run $(ARGS)

# The release as its users meet it (.ci/dist-check): build the sdist and the wheel,
# `twine check --strict` them, install the wheel into a clean venv on every Python the
# classifiers name and run its CLI, then run the test suite from the unpacked sdist.
# Needs PyPI, and each declared Python (pyenv's, or pythonX.Y on PATH).
dist-check: $(STAMP)
	$(BIN)/python .ci/dist-check

clean:
	rm -rf $(VENV) $(LOWEST) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
