#!/usr/bin/env bash
# Prepare the two engines beside rootful Podman (scripts/container-host-setup.sh) that the
# kit's engine matrix runs on, on a fresh Debian machine with no systemd:
# - Docker Engine from Debian's docker.io, its daemon started here;
# - a non-root user (TFDOCK_TEST_USER, uid TFDOCK_TEST_UID: not 1000, so that no test can
#   pass only because the host user happens to be the image's) with subordinate ids for
#   rootless Podman, in the docker group for Docker.
# Idempotent; needs root. Used by .ci/run; ../shared/CONTAINERS.md says why each step is here.
set -euo pipefail

user=${TFDOCK_TEST_USER:-tfdock-ci}
uid=${TFDOCK_TEST_UID:-1234}
dockerd_log=/var/log/tfdock-dockerd.log

if [[ $(id -u) -ne 0 ]]; then
  echo "engines-host-setup: run as root (it installs packages, adds a user and starts dockerd)." >&2
  exit 1
fi

if [[ ! -x /usr/sbin/dockerd ]] || ! command -v newuidmap >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    docker.io uidmap slirp4netns fuse-overlayfs iptables >/dev/null
fi

# Docker's own client (20.10) builds with the engine's BuildKit; a newer client earlier on
# PATH wants a buildx plugin that bookworm does not package (docs/images.md).
docker=/usr/bin/docker
if ! "$docker" info >/dev/null 2>&1; then
  setsid /usr/sbin/dockerd >"$dockerd_log" 2>&1 </dev/null &
  for _ in $(seq 60); do
    "$docker" info >/dev/null 2>&1 && break
    sleep 1
  done
  "$docker" info >/dev/null 2>&1 || {
    echo "engines-host-setup: dockerd did not answer within 60 s; see $dockerd_log." >&2
    exit 1
  }
fi
# dockerd sets the FORWARD policy to DROP, which would cut Podman's bridged containers
# off the network (image builds download the lock): both engines must work side by side.
iptables -P FORWARD ACCEPT

if ! id "$user" >/dev/null 2>&1; then
  useradd --create-home --uid "$uid" --shell /bin/bash "$user"
fi
usermod -aG docker "$user"
for file in /etc/subuid /etc/subgid; do
  grep -q "^$user:" "$file" 2>/dev/null || echo "$user:300000:65536" >>"$file"
done
# Rootless Podman's network (slirp4netns) opens /dev/net/tun, root-only on these machines
# and 0666 on a normal host.
chmod 0666 /dev/net/tun
loginctl enable-linger "$user" >/dev/null 2>&1 || true

as_user() { runuser -u "$user" -- env -C "$(getent passwd "$user" | cut -d: -f6)" XDG_RUNTIME_DIR="/run/user/$(id -u "$user")" "$@"; }
install -d -m 0700 -o "$user" -g "$user" "/run/user/$(id -u "$user")"
rootless=$(as_user podman info --format '{{.Host.Security.Rootless}} {{.Store.GraphDriverName}}')
echo "engines-host-setup: docker $("$docker" version --format '{{.Server.Version}}') answers; $user (uid $(id -u "$user")) runs rootless podman ($rootless) and docker."
