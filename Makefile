# Mallard developer entry points. `make demo` and `make test` install what they need into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test test-fast bench proto lint format clean dev-down

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)  ## create .venv with Mallard and its dev tools

demo: $(STAMP)  ## start the local stack (detached) and walk through what it can do
	$(BIN)/mallard dev up --detach
	$(BIN)/python -m mallard.dev.demo

dev-down: $(STAMP)  ## stop the stack `make demo` started
	$(BIN)/mallard dev down

test: $(STAMP)  ## the whole test suite (real servers where available; CI=true makes missing ones fail)
	$(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

test-fast: $(STAMP)  ## skip the slow end-to-end tests
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)  ## benchmarks (printed figures, not pass/fail)
	$(BIN)/python bench/agent_fleet.py $(BENCH_ARGS)

proto: $(STAMP)  ## regenerate shared/protos from protos/mallard/v1/*.proto
	$(BIN)/python protos/generate.py

lint: $(STAMP)  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
