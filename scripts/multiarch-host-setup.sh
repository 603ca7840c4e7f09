#!/usr/bin/env bash
# Prepare a Debian amd64 host (after container-host-setup.sh) for the multi-arch tests:
# QEMU user emulation for linux/arm64, a local arm64 debian:bookworm-slim made with
# debootstrap, and Debian's docker-registry (a real OCI registry the tests start on
# 127.0.0.1). Idempotent; needs root. Used by .ci/run; see ../shared/CONTAINERS.md.
set -euo pipefail

arm64_base=${BASE_IMAGE_ARM64:-localhost/debian-arm64:bookworm-slim}

if [[ $(id -u) -ne 0 ]]; then
  echo "multiarch-host-setup: run as root (it installs packages and registers QEMU with the kernel)." >&2
  exit 1
fi

need=()
command -v qemu-aarch64-static >/dev/null 2>&1 || need+=(qemu-user-static)
command -v update-binfmts >/dev/null 2>&1 || need+=(binfmt-support)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
if ((${#need[@]})); then
  apt-get update -qq
  # docker-registry ships a systemd unit that does not run here: the tests start it themselves.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
if [[ "$(head -n 1 /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null)" != enabled ]]; then
  echo "multiarch-host-setup: the kernel did not register qemu-aarch64 (binfmt_misc); arm64 containers cannot run on this host." >&2
  exit 1
fi

# As for the amd64 base: / must be world-readable, or non-root users break in images built on it.
if ! podman image exists "$arm64_base" \
   || [[ "$(podman run --rm --arch arm64 --user 65534:65534 --network none "$arm64_base" uname -m 2>/dev/null)" != aarch64 ]]; then
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --arch=arm64 --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  chmod 0755 "$rootfs"
  tar -C "$rootfs" -c . | podman import --quiet --arch arm64 - "$arm64_base" >/dev/null
fi
echo "multiarch-host-setup: QEMU runs linux/arm64 ($(qemu-aarch64-static --version | head -n 1)), base image $arm64_base present, $(docker-registry --version 2>/dev/null | head -n 1)."
