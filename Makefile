# candlecast — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCE ?= sample
SYMBOLS ?= BTC-USD ETH-USD
PORT ?= 3000
export CANDLECAST_HOME ?= $(CURDIR)/data
export BENTOML_HOME ?= $(CANDLECAST_HOME)/bentoml
export BENTOML_DO_NOT_TRACK := true
export TF_CPP_MIN_LOG_LEVEL ?= 2
export FEAST_USAGE := False
# One home per demo source: synthetic and live candles never share a symbol's store.
DEMO_HOME ?= $(CANDLECAST_HOME)/demo-$(SOURCE)

.DEFAULT_GOAL := help
.PHONY: help install demo serve live test test-slow bench lint format image base-image image-smoke image-e2e clean

help: ## Show this help
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,scale]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install candlecast with the dev and scale (Ray) extras

demo: $(STAMP) ## Run the whole pipeline offline for BTC-USD and ETH-USD (SOURCE=coinbase for live data), print their forecasts and the dashboard URL (SERVE=1 keeps serving)
	CANDLECAST_HOME=$(DEMO_HOME) BENTOML_HOME=$(DEMO_HOME)/bentoml \
		$(BIN)/candlecast demo --source $(SOURCE) $(foreach s,$(SYMBOLS),--symbol $(s)) $(if $(SERVE),--serve --port $(PORT),)

serve: $(STAMP) ## Serve the API on :3000 from CANDLECAST_HOME (train champions first; ARGS=--development for the fused layout)
	$(BIN)/candlecast serve $(ARGS)

live: $(STAMP) ## Run the live loop with the API and dashboard on :PORT (default 3000; Ctrl-C stops both)
	$(BIN)/candlecast live --serve $(PORT) $(ARGS)

test: $(STAMP) ## Run the default test suite (unit + integration, not slow)
	$(BIN)/python -m pytest -m "not slow and not docker"

test-slow: $(STAMP) ## Run the slow tests (load test, Feast CLI subprocesses, live kill -9, schemathesis on bentoml serve, real-market training CLI)
	$(BIN)/python -m pytest -m "slow and not docker"

bench: $(STAMP) ## Run the benchmarks in bench/ (results go in BENCHMARKS.md)
	$(BIN)/python -m bench

lint: $(STAMP) ## ruff check + ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

image: $(STAMP) ## Build the image for this machine (PLATFORMS=linux/amd64,linux/arm64 REGISTRY=host:port PUSH=1: one multi-arch tag; BASE_IMAGE=, OFFLINE=1, IMAGE=registry/name)
	$(BIN)/python -m deploy.image $(if $(PUSH),--push,) $(if $(IMAGE),--image $(IMAGE),) \
		$(if $(PLATFORMS),--platform $(PLATFORMS),) $(if $(REGISTRY),--registry $(REGISTRY),) \
		$(if $(BASE_IMAGE),--base-image $(BASE_IMAGE),) $(if $(OFFLINE),--offline,) $(ARGS)

base-image: $(STAMP) ## Build the local Debian bookworm base image from Debian's packages (mmdebstrap; PLATFORMS=, default amd64 and arm64)
	$(BIN)/python -m deploy.image --base-only $(if $(PLATFORMS),--platform $(PLATFORMS),)

image-smoke: $(STAMP) ## Run the image built by `make image` on the Docker engine: API, dashboard, hourly job (CANDLECAST_IMAGE_REF=, default the newest candlecast image)
	$(BIN)/python -m pytest -m "docker and not slow" tests/integration/image

image-e2e: $(STAMP) ## Compose + the signed webhook deployer end to end on the Docker engine: upgrade, rollback, reboot (CANDLECAST_IMAGE_REF=; ~10-15 min)
	$(BIN)/python -m pytest -m docker tests/integration/image/test_deploy_e2e.py

clean: ## Remove generated state under CANDLECAST_HOME
	rm -rf $(CANDLECAST_HOME)
