# Mallard developer entry points. `make demo` and `make test` install what they need into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# The Terraform provider runs in its own virtualenv: the `tf` framework pins protobuf<6, Mallard needs >=7.
PROVIDER_VENV  := terraform/provider/.venv
PROVIDER_STAMP := $(PROVIDER_VENV)/.installed-$(shell cksum terraform/provider/requirements.txt | cut -d' ' -f1)
# `make images`: both Dockerfiles on the local engine, from a registry-free base image (see .ci/run).
DOCKER     ?= docker
BASE_IMAGE ?= mallard-base:bookworm
IMAGE_TAG  ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
WHEELS     := build/wheels
# redis needs async-timeout on Python < 3.11.3; the base image has 3.11.2 and pip resolves markers
# for the host's interpreter only, so the wheelhouse gets it explicitly.
IMAGE_EXTRA_WHEELS := async-timeout>=4.0.3

.PHONY: install demo test test-fast bench proto lint format clean dev-down provider images

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)  ## create .venv with Mallard and its dev tools

$(PROVIDER_STAMP): terraform/provider/requirements.txt
	test -x $(PROVIDER_VENV)/bin/python || $(PYTHON) -m venv $(PROVIDER_VENV)
	$(PROVIDER_VENV)/bin/python -m pip install -q -r terraform/provider/requirements.txt
	rm -f $(PROVIDER_VENV)/.installed-* && touch $(PROVIDER_STAMP)

provider: $(PROVIDER_STAMP)  ## the Terraform provider's virtualenv (terraform/provider/.venv)

demo: $(STAMP)  ## start the local stack (detached) and walk through what it can do
	$(BIN)/mallard dev up --detach
	$(BIN)/python -m mallard.dev.demo

dev-down: $(STAMP)  ## stop the stack `make demo` started
	$(BIN)/mallard dev down

test: $(STAMP) $(PROVIDER_STAMP)  ## the whole test suite (real servers where available; CI=true makes missing ones fail)
	$(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

test-fast: $(STAMP) $(PROVIDER_STAMP)  ## skip the slow end-to-end tests
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)  ## benchmarks (printed figures, not pass/fail)
	$(BIN)/python bench/agent_fleet.py $(BENCH_ARGS)
	$(BIN)/python bench/builds.py $(BUILDS_BENCH_ARGS)
	$(BIN)/python bench/serving.py $(SERVING_BENCH_ARGS)
	$(BIN)/python bench/features.py $(FEATURES_BENCH_ARGS)

proto: $(STAMP)  ## regenerate shared/protos from protos/mallard/v1/*.proto
	$(BIN)/python protos/generate.py

lint: $(STAMP)  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

images: $(STAMP)  ## build mallard-control-plane and mallard-agent:$(IMAGE_TAG) on the local Docker engine
	@$(DOCKER) image inspect $(BASE_IMAGE) >/dev/null 2>&1 || { \
	  echo "base image $(BASE_IMAGE) is missing: build it with debootstrap as .ci/run does (README, Provisioning)" >&2; exit 1; }
	rm -rf $(WHEELS) build/lib
	$(BIN)/python -m pip wheel -q --wheel-dir $(WHEELS) . "$(IMAGE_EXTRA_WHEELS)"
	$(DOCKER) build -q --network none --build-arg BASE_IMAGE=$(BASE_IMAGE) \
	  -f control_plane/Dockerfile -t mallard-control-plane:$(IMAGE_TAG) .
	$(DOCKER) build -q --network none --build-arg BASE_IMAGE=$(BASE_IMAGE) \
	  -f data_plane_agent/Dockerfile -t mallard-agent:$(IMAGE_TAG) .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) $(PROVIDER_VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
