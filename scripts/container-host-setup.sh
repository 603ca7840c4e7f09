#!/usr/bin/env bash
# Prepare a Debian host with no Docker daemon and no registry to build the kit's
# images with Podman: install the engine, configure it for this kernel, and make
# a local debian:bookworm-slim with debootstrap. Idempotent; needs root.
# Used by .ci/run; see ../shared/CONTAINERS.md for why each step is needed.
set -euo pipefail

base_image=${BASE_IMAGE:-docker.io/library/debian:bookworm-slim}

if [[ $(id -u) -ne 0 ]]; then
  echo "container-host-setup: run as root (it installs packages and writes /etc/containers)." >&2
  exit 1
fi

need=()
for tool in podman buildah runc debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    podman buildah runc debootstrap uidmap slirp4netns fuse-overlayfs iptables ca-certificates >/dev/null
fi
# Name resolution on user networks (CNI's dnsname plugin): the Kubernetes test runs the
# rendered Job's pods on one network, each found by its DNS name, as in a cluster.
if [[ ! -x /usr/lib/cni/dnsname ]]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    golang-github-containernetworking-plugin-dnsname >/dev/null
fi

mkdir -p /etc/containers
write_storage_conf() {  # write_storage_conf DRIVER GRAPHROOT RUNROOT
  cat >/etc/containers/storage.conf <<CONF
[storage]
driver = "$1"
graphroot = "$2"
runroot = "$3"
CONF
}
# overlay stores each layer once, as a diff; vfs copies the whole filesystem at
# every step (a 3 GB environment costs 3 GB per later instruction). Use overlay
# where the kernel allows it, in a store of its own (a store keeps its driver),
# else vfs.
if ! grep -q '^driver = "overlay"' /etc/containers/storage.conf 2>/dev/null; then
  write_storage_conf overlay /var/lib/containers/tfdock-overlay /run/containers/tfdock-overlay
  probe=$(mktemp -d)
  mkdir -p "$probe/lower" "$probe/upper" "$probe/work" "$probe/merged"
  if ! mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null; then
    write_storage_conf vfs /var/lib/containers/storage /run/containers/storage
  else
    umount "$probe/merged"
  fi
  rm -rf "$probe"
fi
# The sandbox refuses the default file limits; the process limit is counted per uid on the
# whole host, and rootful containers run as root: two multi-worker TensorFlow tasks (a Slurm
# job's, each with hundreds of threads) beside the host's own need more than 1000.
containers_conf='[containers]
default_ulimits = ["nofile=1024:1024", "nproc=32768:32768"]
[engine]
runtime = "runc"'
if [[ "$(cat /etc/containers/containers.conf 2>/dev/null)" != "$containers_conf" ]]; then
  echo "$containers_conf" >/etc/containers/containers.conf
fi

# A base whose / is not world-readable (mktemp -d makes it 0700) breaks every
# non-root user in images built on it: such a copy is made again.
if ! podman image exists "$base_image" \
   || ! podman run --rm --user 65534:65534 --network none "$base_image" /bin/true >/dev/null 2>&1; then
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  chmod 0755 "$rootfs"
  tar -C "$rootfs" -c . | podman import --quiet - "$base_image" >/dev/null
fi
echo "container-host-setup: podman $(podman version --format '{{.Client.Version}}') ready ($(podman info --format '{{.Store.GraphDriverName}}') storage), base image $base_image present."
