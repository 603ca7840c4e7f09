#!/usr/bin/env bash
# Accept a GPU host in one command: doctor on the host, then in the GPU image with the GPU
# passed through `tfdock verify --require-gpu`, a 1-epoch train (the graph loop on the GPU)
# and two --deterministic runs compared bit for bit. One JSON report:
# gpu-check/<UTC time>/report.json, next to the runs and doctor's output.
# Usage: scripts/gpu-check.sh   Environment: ENGINE, IMAGE, TFDOCK_DATA (as for the docker-* targets).
set -euo pipefail

engine=${ENGINE:-docker}
image=${IMAGE:-tfdock}

fail() {
  echo "gpu-check: $1" >&2
  exit 1
}

# Without a GPU, a driver or the image there is nothing to check: one sentence, nothing written.
command -v nvidia-smi >/dev/null 2>&1 ||
  fail "this host has no NVIDIA driver (nvidia-smi is not installed), so there is no GPU to check; run 'make gpu-check' on a GPU host, once 'make doctor GPU=1' passes there."
nvidia-smi -L >/dev/null 2>&1 ||
  fail "nvidia-smi finds no GPU on this host ('nvidia-smi -L' fails); fix the driver until it lists the GPU, then run 'make gpu-check' again."
command -v "$engine" >/dev/null 2>&1 ||
  fail "the container engine '$engine' is not installed; install Docker or Podman and name it with ENGINE=docker or ENGINE=podman."
"$engine" image inspect "$image:gpu" >/dev/null 2>&1 ||
  fail "the image $image:gpu does not exist yet; build it with 'make image-gpu ENGINE=$engine IMAGE=$image'."

out="gpu-check/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
if ! scripts/doctor.sh --gpu | tee "$out/doctor.txt"; then
  fail "'make doctor GPU=1' failed (above, and in $out/doctor.txt); fix what it names, then run 'make gpu-check' again."
fi
exec scripts/container-run.sh gpu python -m tfdock.gpu_acceptance --output "$out" --doctor "$out/doctor.txt"
