#!/usr/bin/env bash
# Publish the kit's images: the multi-arch IMAGE:cpu and, where it was built, IMAGE:gpu, each
# as REGISTRY/NAME:<variant>-<lock> (the first 12 hex digits of the sha256 of the lock the
# image was built from, read from its own label) and as the moving REGISTRY/NAME:<variant>.
# Prints each pushed tag with its digest.
# Usage: scripts/push-images.sh   Environment: ENGINE (docker|podman), IMAGE (local name),
# REGISTRY (host[:port]/namespace), PUSH_FLAGS (extra flags, e.g. --tls-verify=false).
set -euo pipefail

LOCK_LABEL=com.github.tfdock.lock.sha256  # set by scripts/build-image.sh
# shellcheck source=scripts/engine.sh
source "$(dirname "$0")/engine.sh"

image=${IMAGE:-tfdock}
registry=${REGISTRY:-}
# shellcheck disable=SC2206  # PUSH_FLAGS is a list of flags, split on purpose
push_flags=(${PUSH_FLAGS:-})

die() {  # die CODE MESSAGE
  echo "push: $2" >&2
  exit "$1"
}

lock_of() {  # lock_of IMAGE_REF: the lock sha256 the image was built from
  local sha
  sha=$("$engine" image inspect --format "{{index .Config.Labels \"$LOCK_LABEL\"}}" "$1" 2>/dev/null) || sha=
  [[ "$sha" =~ ^[0-9a-f]{64}$ ]] \
    || die 1 "$1 carries no lock label ($LOCK_LABEL); build it with the kit's targets (make image-multiarch, make image-gpu), which add it."
  echo "$sha"
}

cpu_lock() {  # the lock of the multi-arch IMAGE:cpu, the same for both architectures
  local amd64 arm64 list arch digest
  "$engine" image inspect "$image:cpu" >/dev/null 2>&1 || "$engine" manifest exists "$image:cpu" 2>/dev/null \
    || die 1 "there is no $image:cpu here; build it with 'make image-multiarch' first."
  if is_podman && ! "$engine" manifest exists "$image:cpu" 2>/dev/null; then
    die 1 "$image:cpu is not a multi-arch image; build it with 'make image-multiarch' first."
  fi
  if ! is_podman; then
    # Docker's classic image store keeps one architecture per tag; its containerd store
    # (Docker 24 and newer, opt-in) keeps them all, which the kit has not been tested with.
    [[ "$("$engine" info --format '{{json .DriverStatus}}' 2>/dev/null)" == *io.containerd.snapshotter* ]] \
      || die 1 "$image:cpu is linux/$("$engine" image inspect --format '{{.Architecture}}' "$image:cpu" 2>/dev/null || echo unknown) only: docker's image store keeps one architecture per tag, so build and push the multi-arch image with Podman (make image-multiarch push ENGINE=podman)."
    lock_of "$image:cpu"
    return
  fi
  list=$("$engine" manifest inspect "$image:cpu")
  for arch in amd64 arm64; do
    digest=$("$engine" image inspect --format '{{.Digest}}' "$image:cpu-$arch" 2>/dev/null) || digest=none
    [[ "$list" == *"\"$digest\""* ]] \
      || die 1 "$image:cpu does not hold $image:cpu-$arch as built; join them again with 'make image-multiarch'."
  done
  amd64=$(lock_of "$image:cpu-amd64")
  arm64=$(lock_of "$image:cpu-arm64")
  [[ "$amd64" == "$arm64" ]] \
    || die 1 "$image:cpu-amd64 and $image:cpu-arm64 were built from different locks; rebuild both with 'make image-multiarch'."
  echo "$amd64"
}

push_to() {  # push_to LOCAL_REF REMOTE_REF PLATFORMS DIGEST_FILE
  if is_podman && [[ "$3" == *,* ]]; then
    "$engine" manifest push --all --quiet "${push_flags[@]}" --digestfile "$4" "$1" "docker://$2" >/dev/null
  elif is_podman; then
    "$engine" push --quiet "${push_flags[@]}" --digestfile "$4" "$1" "docker://$2" >/dev/null
  else
    "$engine" tag "$1" "$2" \
      && "$engine" push "${push_flags[@]}" "$2" | sed -n 's/.*digest: \(sha256:[0-9a-f]*\).*/\1/p' >"$4"
  fi
}

push_one() {  # push_one LOCAL_REF REMOTE_REF PLATFORMS
  local local_ref=$1 remote=$2 platforms=$3 digest_file digest
  digest_file=$(mktemp)
  trap 'rm -f "$digest_file"' RETURN
  if ! push_to "$local_ref" "$remote" "$platforms" "$digest_file"; then
    die 1 "$engine could not push $remote (its message is above): check REGISTRY, log in ($engine login ${registry%%/*}), and for a plain-HTTP registry add PUSH_FLAGS=--tls-verify=false."
  fi
  digest=$(cat "$digest_file")
  [[ -n "$digest" ]] || die 1 "$engine pushed $remote but reported no digest."
  printf 'push: %-60s %s (%s)\n' "$remote" "$digest" "$platforms"
}

note_stale() {  # note_stale VARIANT LOCK_FILE SHA: say when the workspace's lock has moved on
  local workspace
  [[ -f "$2" ]] || return 0
  workspace=$(sha256sum "$2" | cut -d ' ' -f 1)
  if [[ "$workspace" != "$3" ]]; then
    echo "push: note: $image:$1 was built from a lock other than today's $2 (${workspace:0:12}); it is pushed as built, under ${3:0:12}." >&2
  fi
}

if [[ -z "$registry" ]]; then
  die 2 "name the registry to push to: make push REGISTRY=host[:port]/namespace (e.g. REGISTRY=ghcr.io/your-team)."
fi
if [[ "$registry" == *@* ]]; then
  # Never echoed: it may hold a password or token.
  die 2 "REGISTRY holds credentials (user:password@ or token@); name only host[:port]/namespace, and log in once with '$engine login HOST' instead."
fi
if [[ ! "$registry" =~ ^[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+$ ]]; then
  die 2 "REGISTRY=$registry is not host[:port]/namespace in lower case (e.g. REGISTRY=ghcr.io/your-team or REGISTRY=127.0.0.1:5000/team)."
fi
if ! command -v "$engine" >/dev/null 2>&1; then
  die 1 "the container engine '$engine' is not installed; install Docker or Podman and name it with ENGINE=docker or ENGINE=podman (see 'make doctor')."
fi
repository="$registry/${image##*/}"

sha=$(cpu_lock)
note_stale cpu requirements.txt "$sha"
for tag in "cpu-${sha:0:12}" cpu; do
  push_one "$image:cpu" "$repository:$tag" "linux/amd64,linux/arm64"
done
if "$engine" image inspect "$image:gpu" >/dev/null 2>&1; then
  sha_gpu=$(lock_of "$image:gpu")
  note_stale gpu requirements-gpu.txt "$sha_gpu"
  for tag in "gpu-${sha_gpu:0:12}" gpu; do
    push_one "$image:gpu" "$repository:$tag" "linux/amd64"
  done
else
  echo "push: no $image:gpu here, so only the CPU image was pushed; build it with 'make image-gpu' to publish it too."
fi
echo "push: to open the dev container from it, set \"image\": \"$repository:cpu-${sha:0:12}\" in .devcontainer/pulled/devcontainer.json (docs/dev-container.md)."
