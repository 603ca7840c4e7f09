# tfdock: `make` alone lists the targets. Variables marked below can be set on
# the command line: `make train EPOCHS=1`.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
MAKEFLAGS += --no-print-directory

PYTHON ?= python3.11## the Python that makes .venv (must match the lock's)
VENV ?= .venv## where the virtual environment lives
EPOCHS ?= 5## epochs for `make train` and `make bench`
BATCH_SIZE ?= 32## batch size for `make train`
SEED ?= 42## random seed for `make train`
RUNS ?= runs## where `make train` puts each run's folder
TFDOCK_DATA ?=## local MNIST (mnist.npz or folder of the 4 .gz files); empty = download
PYTEST_ARGS ?=## extra arguments for pytest, e.g. -m "not slow"
BENCH_REPEATS ?= 3## runs of each side in `make bench` (the median is reported)

export TFDOCK_DATA
BIN := $(VENV)/bin
STAMP := $(VENV)/.tfdock-installed
LOCK_FLAGS := --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links

.PHONY: help setup lock lock-check train verify bench test lint clean clean-venv

help: ## show this help
	@echo "Usage: make TARGET [VARIABLE=value ...]"
	@echo
	@echo "Targets:"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "Variables:"
	@sed -n 's/^\([A-Z_]*\) ?= *\([^#]*\)## \(.*\)/\1|\2|\3/p' $(MAKEFILE_LIST) | awk -F'|' '{printf "  %-16s %s (default: %s)\n", $$1, $$3, ($$2 == "" ? "empty" : $$2)}'

setup: $(STAMP) ## create .venv from the lock; a no-op when it is up to date

$(STAMP): requirements.txt pyproject.toml scripts/setup-venv.sh
	@scripts/setup-venv.sh "$(PYTHON)" "$(VENV)" requirements.txt

lock: $(STAMP) ## recompile requirements.txt from requirements.in (needs the package index)
	PIP_CONFIG_FILE=/dev/null $(BIN)/pip-compile --quiet $(LOCK_FLAGS) --output-file requirements.txt requirements.in

lock-check: $(STAMP) ## fail when requirements.txt no longer matches requirements.in
	@$(BIN)/tfdock lock-check requirements.in requirements.txt

train: $(STAMP) ## train the MNIST model; artifacts land in runs/
	$(BIN)/tfdock train --epochs $(EPOCHS) --batch-size $(BATCH_SIZE) --seed $(SEED) --output-dir $(RUNS)

verify: $(STAMP) ## prove the environment matches the lock and TensorFlow trains
	@$(BIN)/tfdock verify

bench: $(STAMP) ## time the plain quickstart vs `tfdock train` side by side; JSON in bench-results/
	$(BIN)/python scripts/bench.py --repeats $(BENCH_REPEATS) --epochs $(EPOCHS) --output-dir bench-results

test: $(STAMP) ## run the whole test suite
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff, hadolint and shellcheck, all from the lock
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/shellcheck scripts/*.sh .ci/run

clean: ## remove caches and build leftovers (keeps .venv and runs/)
	rm -rf build dist src/*.egg-info .pytest_cache .ruff_cache test-artifacts
	find src tests -name __pycache__ -type d -prune -exec rm -rf {} +

clean-venv: ## remove .venv (the next target recreates it)
	rm -rf $(VENV)
