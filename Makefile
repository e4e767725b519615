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

# pytest exits 5 when a selection holds no test; that is not a failure.
unit: setup
	$(BIN)/python -m pytest --durations=30 $(PYTEST_ARGS) || [ $$? -eq 5 ]

test: lint typecheck unit

# The standard game day against the local sandbox (started and stopped for it when
# none runs), or: make gameday GAMEDAY_ARGS="--kube-context staging". Report in reports/.
GAMEDAY_ARGS ?=
gameday: setup
	$(BIN)/resilience gameday $(GAMEDAY_ARGS)
