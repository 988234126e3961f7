# The README's commands. Everything runs inside .venv, created and filled on first use;
# exact versions come from constraints.txt (the one place where pins live).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 3000
# The Dagster instance (SQLite storage, run history) lives inside the project.
export DAGSTER_HOME := $(CURDIR)/.dagster_home
INSTANCE := $(DAGSTER_HOME)/dagster.yaml

.PHONY: demo test dev install lint format clean

demo: $(STAMP) $(INSTANCE)
	$(BIN)/python -m forecast_assets.demo

# One pytest-xdist worker per core, handed one test at a time, so that the tests that wait
# on a real daemon (started first) overlap with the rest.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n auto --maxschedchunk 1

dev: $(STAMP) $(INSTANCE)
	$(BIN)/dagster dev -h 127.0.0.1 -p $(PORT) -w workspace.yaml

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $(STAMP)

$(INSTANCE): dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(INSTANCE)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) $(DAGSTER_HOME) .forecast .pytest_cache .ruff_cache
