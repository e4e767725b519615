# The README's commands. `make setup` is idempotent; `make test` is what CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-m conformance"`.
PYTEST_ARGS ?= -m "not slow"

.PHONY: setup system-packages test lint typecheck unit gameday

setup: system-packages $(STAMP)

system-packages:
	@bash sandbox/install-debian-packages.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy .

# Two pytest processes side by side: the full-sandbox tests (fixed addresses, one at a
# time) and the rest (tests/run_parts.py). pytest's 5 (no test selected) is no failure.
unit: setup
	$(BIN)/python tests/run_parts.py --durations=30 $(PYTEST_ARGS)

test: lint typecheck unit

# The standard game day against the local sandbox (started and stopped for it when
# none runs), or: make gameday GAMEDAY_ARGS="--kube-context staging". Report in reports/.
GAMEDAY_ARGS ?=
gameday: setup
	$(BIN)/resilience gameday $(GAMEDAY_ARGS)
