# shellcheck shell=bash
# What the kit needs to know about the container engine, shared by the scripts that use one
# (sourced, not run). ENGINE names the engine: docker or podman, or a path to either.
# The modes differ where it matters to a user's files and builds (docs/images.md):
# - docker: a daemon; `--user UID:GID` is the host user, so workspace files are theirs.
# - podman (rootful): the same as docker.
# - rootless-podman: the container's ids are the user's subordinate ids, so `--user UID`
#   alone is not the host user; with `--userns=keep-id` the user's own uid is mapped in.

engine=${ENGINE:-docker}

is_podman() { [[ "$(basename "$engine")" == podman* ]]; }

engine_mode() {  # print docker, rootless-docker, podman or rootless-podman
  if is_podman; then
    if [[ "$("$engine" info --format '{{.Host.Security.Rootless}}' 2>/dev/null)" == true ]]; then
      echo rootless-podman
    else
      echo podman
    fi
  elif [[ "$("$engine" info --format '{{json .SecurityOptions}}' 2>/dev/null)" == *rootless* ]]; then
    echo rootless-docker
  else
    echo docker
  fi
}

# The run arguments that make the container's process the host user, so that files it
# writes in the workspace are theirs, with the group `users` that owns /opt/venv and a
# home (the image's, mode 1777) where any uid can keep its caches.
user_run_args() {  # print one argument a line
  # keep-id maps the user's own ids into the container; --user still picks them over the
  # image's USER.
  [[ "$(engine_mode)" == rootless-podman ]] && printf '%s\n' --userns=keep-id
  printf '%s\n' --user "$(id -u):$(id -g)" --group-add users --env HOME=/home/tfdock
}

# The reason this docker client cannot build the kit's images, or nothing. The Dockerfiles
# use RUN --mount (a BuildKit feature): a client of 23 or newer builds through its buildx
# plugin only; an older one (Debian bookworm's docker.io 20.10) uses the engine's BuildKit.
docker_build_problem() {
  local version
  is_podman && return 0
  "$engine" buildx version >/dev/null 2>&1 && return 0
  version=$("$engine" version --format '{{.Client.Version}}' 2>/dev/null) || return 0
  if [[ "${version%%.*}" =~ ^[0-9]+$ ]] && ((${version%%.*} >= 23)); then
    echo "this docker client ($version, $(command -v "$engine")) builds only through the buildx plugin, which is missing; install the buildx plugin (docker-buildx-plugin), or build with a client that has BuildKit built in, such as Debian's docker.io: ENGINE=/usr/bin/docker"
  fi
}
