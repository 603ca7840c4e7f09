#!/usr/bin/env bash
# Build the kit's CPU or GPU image from docker/<variant>.Dockerfile and print how long it took.
# Usage: scripts/build-image.sh cpu|gpu
# Environment: ENGINE (docker|podman), IMAGE (name), CA_BUNDLE (proxy CA, passed as a
# build secret), USER_UID/USER_GID (the image user's ids), BUILD_FLAGS (extra flags).
set -euo pipefail

variant=${1:?usage: build-image.sh cpu|gpu}
engine=${ENGINE:-docker}
image=${IMAGE:-tfdock}
dockerfile="docker/${variant}.Dockerfile"

if [[ ! -f "$dockerfile" ]]; then
  echo "build-image: no $dockerfile; the variants are cpu and gpu." >&2
  exit 2
fi
if ! command -v "$engine" >/dev/null 2>&1; then
  echo "build-image: the container engine '$engine' is not installed; install Docker or Podman and name it with ENGINE=docker or ENGINE=podman (see 'make doctor')." >&2
  exit 1
fi

# --force-rm: a failed build leaves no working containers (each a full copy with vfs).
args=(build --force-rm --file "$dockerfile" --tag "$image:$variant"
      --build-arg "TFDOCK_UID=${USER_UID:-1000}" --build-arg "TFDOCK_GID=${USER_GID:-1000}")
if [[ -n "${CA_BUNDLE:-}" ]]; then
  if [[ ! -r "$CA_BUNDLE" ]]; then
    echo "build-image: CA_BUNDLE=$CA_BUNDLE is not a readable file; point it at your proxy's CA bundle (e.g. /etc/ssl/certs/ca-certificates.crt)." >&2
    exit 2
  fi
  args+=(--secret "id=ca_bundle,src=$CA_BUNDLE")
fi
if [[ "$(basename "$engine")" == podman* ]]; then
  # Docker's image format keeps the HEALTHCHECK; OCI has no field for it.
  args+=(--format docker)
fi
# shellcheck disable=SC2206  # BUILD_FLAGS is a list of flags, split on purpose
args+=(${BUILD_FLAGS:-})

started=$(date +%s)
DOCKER_BUILDKIT=1 "$engine" "${args[@]}" .
echo "build-image: built $image:$variant in $(( $(date +%s) - started )) s with $engine."
