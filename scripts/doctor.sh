#!/usr/bin/env bash
# Check the host before the container targets: engine, GPU runtime and driver (when
# asked), free disk, CPU architecture. Each failed check prints its fix.
# Usage: scripts/doctor.sh [--gpu]   Environment: ENGINE (docker|podman).
set -euo pipefail
# shellcheck source=scripts/engine.sh
source "$(dirname "$0")/engine.sh"

want_gpu=0
[[ "${1:-}" == "--gpu" ]] && want_gpu=1
failures=0

report() {  # report ok|warn|FAIL NAME DETAIL [FIX]
  printf '%-4s  %-8s  %s\n' "$1" "$2" "$3"
  if [[ "$1" == FAIL ]]; then
    failures=$((failures + 1))
    printf '            fix: %s\n' "$4"
  fi
}

engine_silent() {  # engine_silent ENGINE_INFO_STDERR: why the installed engine does not answer
  if [[ "$1" == *"permission denied"*docker.sock* ]]; then
    report FAIL engine "this user ($(id -un)) may not use Docker's socket (${DOCKER_HOST:-/var/run/docker.sock})" \
      "add the user to the docker group (sudo usermod -aG docker $(id -un)) and log in again"
  elif ! is_podman; then
    report FAIL engine "'$engine' is installed but its daemon does not answer" \
      "start it (sudo systemctl start docker), then run 'docker info' to check"
  else
    report FAIL engine "'$engine' is installed but does not answer: $(tail -n 1 <<<"$1")" \
      "run 'podman info' to see why"
  fi
}

describe_mode() {  # describe_mode MODE: the mode and how the doors run there
  case "$1" in
    docker) echo "Docker Engine; containers run as your uid (--user), so workspace files stay yours" ;;
    rootless-docker) echo "rootless Docker, which the kit has not been tested with" ;;
    podman) echo "rootful Podman; containers run as your uid (--user), so workspace files stay yours" ;;
    rootless-podman) echo "rootless Podman; containers run as you (--userns=keep-id), so workspace files stay yours" ;;
  esac
}

check_mode() {  # check_mode MODE: what each door needs from this engine, one report each
  local problem me
  me=$(id -un)
  if [[ "$1" == rootless-podman ]]; then
    if grep -qs "^\($me\|$(id -u)\):" /etc/subuid && grep -qs "^\($me\|$(id -u)\):" /etc/subgid; then
      report ok ids "subordinate ids for $me in /etc/subuid and /etc/subgid"
    else
      report FAIL ids "$me has no subordinate ids, so images with several owners cannot be unpacked" \
        "ask root to add them: sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $me, then podman system migrate"
    fi
    if [[ -r /dev/net/tun && -w /dev/net/tun ]]; then
      report ok network "/dev/net/tun is open to $me (slirp4netns: make docker-lab's port)"
    else
      report FAIL network "/dev/net/tun is not open to $me, so rootless containers get no network (make docker-lab)" \
        "ask root to make it usable (sudo chmod 0666 /dev/net/tun, as most distributions ship it)"
    fi
    if [[ "$("$engine" info --format '{{.Store.GraphDriverName}}' 2>/dev/null)" == vfs ]]; then
      report warn storage "rootless Podman stores images with vfs: a full copy per layer, several GB per image; install fuse-overlayfs and run 'podman system reset'"
    fi
  fi
  if [[ "$1" == docker* ]]; then
    problem=$(docker_build_problem)
    if [[ -n "$problem" ]]; then
      report FAIL build "make image cannot build here: ${problem%%; *}" "${problem#*; }"
    elif ! "$engine" buildx version >/dev/null 2>&1; then
      report ok build "make image builds with the engine's BuildKit (no buildx plugin)"
      report warn devcontainer "without buildx the dev container CLI builds the built config with plain 'docker build', which needs BuildKit asked for: export DOCKER_BUILDKIT=1 before opening it (the pulled config needs nothing)"
    else
      report ok build "make image builds with BuildKit (buildx)"
    fi
  fi
}

if ! command -v "$engine" >/dev/null 2>&1; then
  report FAIL engine "'$engine' is not installed" \
    "install Docker (https://docs.docker.com/engine/install/) or Podman (apt-get install podman) and name it with ENGINE=docker or ENGINE=podman"
elif ! answer=$("$engine" info 2>&1); then
  engine_silent "$answer"
else
  version=$("$engine" version --format '{{.Client.Version}}' 2>/dev/null) || version="(version unknown)"
  mode=$(engine_mode)
  report ok engine "$engine $version answers: $(describe_mode "$mode")"
  check_mode "$mode"
fi

# TFDOCK_HOST_ARCH stands in for `uname -m`, so that an arm64 host's answer can be checked anywhere.
arch=${TFDOCK_HOST_ARCH:-$(uname -m)}
case "$arch" in
  x86_64|amd64)
    report ok cpu "$arch: every door (venv, CPU and GPU images, dev containers)"
    if [[ -z "${TFDOCK_HOST_ARCH:-}" && "$(head -n 1 /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null)" == enabled ]]; then
      report ok arm64 "QEMU runs linux/arm64 here: make image PLATFORM=linux/arm64, make image-multiarch"
    else
      report warn arm64 "no linux/arm64 emulation: for make image-multiarch install qemu-user-static and binfmt-support"
    fi
    ;;
  aarch64|arm64)
    report ok cpu "$arch: the venv, the CPU image and the CPU dev container (built or pulled); no GPU image, as PyPI's aarch64 TensorFlow wheels are CPU-only"
    if ((want_gpu)); then
      report FAIL gpu "the GPU image is linux/amd64 only: PyPI's aarch64 TensorFlow wheels have no CUDA" \
        "use the CPU targets here, and an x86_64 machine with an NVIDIA GPU for the GPU ones"
    fi
    ;;
  *) report FAIL cpu "$arch: TensorFlow publishes no wheels for it" "use an x86_64 or aarch64 machine" ;;
esac

storage=/var/lib/docker
is_podman && storage=$("$engine" info --format '{{.Store.GraphRoot}}' 2>/dev/null || echo /var/lib/containers)
[[ -d "$storage" ]] || storage=/
need_gb=12
((want_gpu)) && need_gb=25
free_gb=$(df -Pk "$storage" | awk 'NR == 2 {print int($4 / 1048576)}')
if ((free_gb < need_gb)); then
  report FAIL disk "${free_gb} GB free under $storage, the images need about ${need_gb} GB" \
    "free disk space (e.g. '$engine system prune') or move the engine's storage"
else
  report ok disk "${free_gb} GB free under $storage (need about ${need_gb} GB)"
fi

if ((want_gpu)); then
  # The driver against the lock's CUDA, each GPU against TensorFlow's build: decided by
  # src/tfdock/gpu_preflight.py (standard library only, so the host's python3 runs it).
  preflight="$(dirname "$0")/../src/tfdock/gpu_preflight.py"
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    report FAIL gpu "no NVIDIA driver found (nvidia-smi is missing)" \
      "install the NVIDIA driver (the CUDA libraries come with the image; only the driver is needed), or use the CPU targets"
  elif ! command -v python3 >/dev/null 2>&1; then
    report FAIL gpu "python3 is missing, and the driver and GPU checks need it" \
      "install python3 (Debian/Ubuntu: apt-get install python3)"
  elif ! findings=$(python3 "$preflight" --lock "$(dirname "$0")/../requirements-gpu.txt" 2>&1); then
    report FAIL gpu "the GPU preflight stopped: $(tail -n 1 <<<"$findings")" \
      "run 'python3 src/tfdock/gpu_preflight.py' to see the whole error"
  else
    while IFS=$'\t' read -r level name detail fix; do
      report "$level" "$name" "$detail" "$fix"
    done <<<"$findings"
  fi
  if is_podman; then
    if ls /etc/cdi/nvidia.yaml /var/run/cdi/nvidia*.yaml >/dev/null 2>&1; then
      report ok runtime "NVIDIA CDI spec present for podman"
    else
      report FAIL runtime "no NVIDIA CDI spec for podman" \
        "install the NVIDIA Container Toolkit and run 'nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml'"
    fi
  elif "$engine" info --format '{{json .Runtimes}}' 2>/dev/null | grep -q nvidia; then
    report ok runtime "NVIDIA container runtime registered with $engine"
  else
    report FAIL runtime "the NVIDIA container runtime is not registered with $engine" \
      "install the NVIDIA Container Toolkit, then 'nvidia-ctk runtime configure --runtime=docker' and restart docker"
  fi
fi

if ((failures)); then
  echo "doctor: $failures check(s) failed; fix them before the container targets."
  exit 1
fi
echo "doctor: the host is ready for the container targets."
