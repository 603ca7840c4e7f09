#!/usr/bin/env bash
# Install the client tools the dev container and JupyterLab tests drive, on a fresh
# Debian machine: Debian's chromium (the headless browser) and the reference
# devcontainers CLI from npm, pinned. Idempotent; needs root. Called by .ci/run.
set -euo pipefail

devcontainers_cli_version=${DEVCONTAINERS_CLI_VERSION:-0.89.0}

if [[ $(id -u) -ne 0 ]]; then
  echo "ci-tools-setup: run as root (it installs Debian and npm packages)." >&2
  exit 1
fi

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium fonts-dejavu-core)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

installed=$(devcontainer --version 2>/dev/null || true)
if [[ "$installed" != "$devcontainers_cli_version" ]]; then
  npm install --global --no-audit --no-fund --loglevel=error "@devcontainers/cli@${devcontainers_cli_version}"
fi

echo "ci-tools-setup: $(chromium --version 2>/dev/null | head -n 1), devcontainer CLI $(devcontainer --version)."
