# The README's commands. `make setup` is idempotent; `make test` is what CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every package the venv and the container hold, pinned with hashes (`make lock` writes it).
LOCK := requirements/lock.txt
LOCK_INPUTS := pyproject.toml requirements/build.in
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-m conformance"`.
PYTEST_ARGS ?= -m "not slow"

.PHONY: setup system-packages test lint typecheck unit gameday lock check-latest

setup: system-packages $(STAMP)

system-packages:
	@bash sandbox/install-debian-packages.sh

# Exactly the locked versions: a changed lock builds the venv anew, so that nothing the
# lock no longer names stays behind; the project itself adds no package (--no-deps).
$(STAMP): $(LOCK)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	@touch $(STAMP)

# Resolve the newest versions pyproject.toml allows, on the Python CI and the container
# run, into $(LOCK). An update is this target's diff, reviewed and committed on purpose.
lock: $(STAMP)
	$(BIN)/uv pip compile $(LOCK_INPUTS) --extra dev --python-version 3.11 \
	    --generate-hashes --upgrade --quiet --custom-compile-command "make lock" -o $(LOCK)

# Drift, caught before users meet it: the newest versions pyproject.toml allows, in a
# scratch venv, through ruff, mypy and the tests that need no full sandbox. Not in CI.
LATEST_VENV := .venv-latest
check-latest: system-packages
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[dev]'
	$(LATEST_VENV)/bin/python -m pip freeze --exclude-editable > $(LATEST_VENV)/freeze.txt
	$(LATEST_VENV)/bin/ruff check .
	$(LATEST_VENV)/bin/mypy .
	$(LATEST_VENV)/bin/python -m pytest --part rest -m "not slow" -q -p no:cacheprovider \
	    --deselect tests/test_lock.py::test_the_running_environment_is_the_lock

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
