# Two entry points for a fresh machine: `make repro` (the pipeline) and `make test` (lint + tests).
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup repro gpu test test-fast lint

$(BIN)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

repro: setup
	dvc repro

# The GPU preset: the default params with training required on CUDA (bf16 autocast), as an experiment.
gpu: setup
	dvc exp run -n gpu -S train.device=cuda

lint: setup
	ruff check .

test: lint
	python -m pytest -q

# While developing: everything but the tests marked slow (they train a model or start processes or servers).
test-fast: lint
	python -m pytest -q -m "not slow"
