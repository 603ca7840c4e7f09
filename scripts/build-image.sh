#!/usr/bin/env bash
# Build the kit's CPU or GPU image from docker/<variant>.Dockerfile and print how long it took.
# Usage: scripts/build-image.sh cpu|gpu
# Environment: ENGINE (docker|podman), IMAGE (name), CA_BUNDLE (proxy CA, passed as a
# build secret), USER_UID/USER_GID (the image user's ids), BUILD_FLAGS (extra flags),
# PLATFORM (empty: this machine's, tagged IMAGE:<variant>; linux/amd64 or linux/arm64:
# tagged IMAGE:<variant>-<arch>; both, comma-separated: one multi-arch IMAGE:<variant>,
# which Podman builds one by one and joins as a manifest list, and Docker builds in one
# step into its containerd image store), BASE_IMAGE (a base instead of the Dockerfile's
# pinned one: name@sha256:digest, or a local name whose digest the engine gives),
# BASE_IMAGE_ARM64 (the linux/arm64 base where BASE_IMAGE is single-arch, as CI's are).
# Every image is labelled with the sha256 of the lock it installs (LOCK_LABEL).
set -euo pipefail

LOCK_LABEL=com.github.tfdock.lock.sha256
# shellcheck source=scripts/engine.sh
source "$(dirname "$0")/engine.sh"

variant=${1:?usage: build-image.sh cpu|gpu}
image=${IMAGE:-tfdock}
dockerfile="docker/${variant}.Dockerfile"

die() {  # die CODE MESSAGE
  echo "build-image: $2" >&2
  exit "$1"
}

native_arch() {  # the engine's own architecture, as amd64 or arm64
  local arch format='{{.Architecture}}'
  is_podman && format='{{.Host.Arch}}'
  arch=$("$engine" info --format "$format" 2>/dev/null) \
    || die 1 "'$engine' is installed but does not answer; start it (systemctl start docker), or run 'make doctor' to see why."
  case "$arch" in
    x86_64 | amd64) echo amd64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) echo "$arch" ;;
  esac
}

read_arches() {  # set arches to the architectures PLATFORM asks for
  local platform
  local -a requested
  arches=()
  if [[ -z "${PLATFORM:-}" ]]; then
    arches=("$(native_arch)")
    return
  fi
  IFS=, read -ra requested <<<"$PLATFORM"
  for platform in "${requested[@]}"; do
    case "$platform" in
      linux/amd64 | linux/arm64) ;;
      *) die 2 "PLATFORM=$PLATFORM is not one the kit builds; use linux/amd64, linux/arm64, or both comma-separated (make image-multiarch)." ;;
    esac
    if [[ " ${arches[*]} " == *" ${platform#linux/} "* ]]; then
      die 2 "PLATFORM=$PLATFORM names $platform twice; name each platform once."
    fi
    arches+=("${platform#linux/}")
  done
}

read_base() {  # read_base ARCH: set base to the --build-arg pair naming ARCH's base (none: the pinned one)
  local arch=$1 name=${BASE_IMAGE:-} found
  [[ "$arch" == arm64 && -n "${BASE_IMAGE_ARM64:-}" ]] && name=$BASE_IMAGE_ARM64
  base=()
  [[ -z "$name" ]] && return
  if [[ "$name" == *@sha256:* ]]; then
    base=(--build-arg "BASE_NAME=${name%@*}" --build-arg "BASE_DIGEST=${name#*@}")
    return
  fi
  # A name without a digest: the image of that name in the engine's storage, by its digest.
  # Podman gives every image one; Docker only those pulled from a registry (RepoDigests), and
  # the Dockerfile's FROM name@digest resolves only such a digest, so a loaded base is refused.
  if is_podman; then
    found=$("$engine" image inspect --format '{{.Architecture}} {{.Digest}}' "$name" 2>/dev/null) || found=
  else
    found=$("$engine" image inspect --format '{{.Architecture}} {{range .RepoDigests}}{{.}} {{end}}' "$name" 2>/dev/null) || found=
  fi
  [[ -n "$found" ]] || die 2 "the base $name is not in $engine's storage; pull it first, or give it by digest (name@sha256:...)."
  [[ "${found%% *}" == "$arch" ]] || die 2 "the base $name is a linux/${found%% *} image, not linux/$arch; give a multi-arch base by digest, or the linux/arm64 one as BASE_IMAGE_ARM64."
  [[ "$found" == *sha256:* ]] || die 2 "the base $name was loaded, not pulled, so $engine knows no registry digest to pin it by; push it to a registry and pull it from there, or give it by digest (name@sha256:...)."
  if is_podman; then
    base=(--build-arg "BASE_NAME=$name" --build-arg "BASE_DIGEST=sha256:${found##*sha256:}")
  else
    # Docker's digest belongs to the repository it was pulled from: build FROM that one,
    # the named repository's where the image was pulled from several.
    local repository=$name digest
    [[ "${name##*/}" == *:* ]] && repository=${name%:*}
    digest=$(tr ' ' '\n' <<<"${found#* }" | grep -m 1 -F "$repository@") || digest=$(cut -d ' ' -f 2 <<<"$found")
    base=(--build-arg "BASE_NAME=${digest%@*}" --build-arg "BASE_DIGEST=${digest#*@}")
  fi
}

build_one() {  # build_one ARCH TAG [PLATFORMS]: one build, for --platform PLATFORMS when given
  local arch=$1 tag=$2 platforms=${3:-} started
  local -a args
  args=(build --force-rm --file "$dockerfile" --tag "$tag" --label "$LOCK_LABEL=$lock_sha256"
        --build-arg "TFDOCK_UID=${USER_UID:-1000}" --build-arg "TFDOCK_GID=${USER_GID:-1000}")
  [[ -n "$platforms" ]] && args+=(--platform "$platforms")
  read_base "$arch"
  args+=("${base[@]}")
  if [[ -n "${CA_BUNDLE:-}" ]]; then
    args+=(--secret "id=ca_bundle,src=$CA_BUNDLE")
  fi
  if is_podman; then
    # Docker's image format keeps the HEALTHCHECK; OCI has no field for it.
    args+=(--format docker)
  fi
  # shellcheck disable=SC2206  # BUILD_FLAGS is a list of flags, split on purpose
  args+=(${BUILD_FLAGS:-})
  started=$(date +%s)
  DOCKER_BUILDKIT=1 "$engine" "${args[@]}" .
  echo "build-image: built $tag (${platforms:-linux/$arch}) in $(( $(date +%s) - started )) s with $engine."
}

join_arches() {  # join_arches TAG PER_ARCH_TAG...: one multi-arch TAG (a Podman manifest list)
  local tag=$1 member
  shift
  if "$engine" manifest exists "$tag" 2>/dev/null; then
    "$engine" manifest rm "$tag" >/dev/null
  elif "$engine" image exists "$tag"; then
    "$engine" untag "$tag" "$tag"
  fi
  "$engine" manifest create "$tag" >/dev/null
  for member in "$@"; do
    # By id: containers-storage: would read a short name as docker.io/library/NAME.
    "$engine" manifest add "$tag" "containers-storage:$("$engine" image inspect --format '{{.Id}}' "$member")" >/dev/null
  done
  echo "build-image: $tag is multi-arch: ${*#"$image:$variant-"}."
}

if [[ ! -f "$dockerfile" ]]; then
  die 2 "no $dockerfile; the variants are cpu and gpu."
fi
if ! command -v "$engine" >/dev/null 2>&1; then
  die 1 "the container engine '$engine' is not installed; install Docker or Podman and name it with ENGINE=docker or ENGINE=podman (see 'make doctor')."
fi
problem=$(docker_build_problem)
[[ -z "$problem" ]] || die 1 "$problem."
if [[ -n "${CA_BUNDLE:-}" && ! -r "$CA_BUNDLE" ]]; then
  die 2 "CA_BUNDLE=$CA_BUNDLE is not a readable file; point it at your proxy's CA bundle (e.g. /etc/ssl/certs/ca-certificates.crt)."
fi
read_arches
if [[ "$variant" == gpu && " ${arches[*]} " == *" arm64 "* ]]; then
  die 2 "there is no GPU image for linux/arm64: PyPI's aarch64 TensorFlow wheels are CPU-only builds (no CUDA), so build the CPU image there (make image) and the GPU image on an x86_64 machine."
fi
lock=$(sed -n 's|^COPY \(requirements[^ ]*\.txt\) /opt/tfdock/requirements.txt$|\1|p' "$dockerfile")
[[ -f "$lock" ]] || die 2 "$dockerfile installs ${lock:-no lock} that is not here; run from the repository root."
lock_sha256=$(sha256sum "$lock" | cut -d ' ' -f 1)

for arch in "${arches[@]}"; do
  read_base "$arch"  # refuse a wrong base before any build starts
done

if [[ -z "${PLATFORM:-}" ]]; then
  build_one "${arches[0]}" "$image:$variant" ""
  exit 0
fi
if ((${#arches[@]} == 1)); then
  build_one "${arches[0]}" "$image:$variant-${arches[0]}" "linux/${arches[0]}"
elif is_podman; then
  members=()
  for arch in "${arches[@]}"; do
    build_one "$arch" "$image:$variant-$arch" "linux/$arch"
    members+=("$image:$variant-$arch")
  done
  join_arches "$image:$variant" "${members[@]}"
else
  # Docker builds and keeps a multi-platform image in one step (its containerd image store).
  [[ -z "${BASE_IMAGE_ARM64:-}" ]] || die 2 "Docker builds every platform from one base: give a multi-arch BASE_IMAGE by digest instead of BASE_IMAGE_ARM64."
  build_one "${arches[0]}" "$image:$variant" "$PLATFORM"
fi
