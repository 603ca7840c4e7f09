#!/usr/bin/env bash
# The dev container's postCreateCommand: check the workspace is writable, prove the
# container is the lock's environment (`make verify`), and say what to run next.
set -euo pipefail

if ! touch .tfdock-write-probe 2>/dev/null; then
  echo "tfdock: the workspace $PWD is not writable by $(id -un) (uid $(id -u)); it is owned by uid $(stat -c %u .): open the folder as a non-root user that owns it (the dev container then takes your uid), or give it to uid $(id -u) with 'chown -R $(id -u):$(id -g)' on the host." >&2
  exit 1
fi
rm -f .tfdock-write-probe

# An image older than the workspace's lock (a pulled one, say) cannot pass `make verify`:
# say so (the postStartCommand repeats it at every start) and let the container start.
if ! tfdock container-check; then
  exit 0
fi

make verify

cat <<'NEXT'

tfdock: the dev container is ready (the lock's environment is /opt/venv). Next:
  make train EPOCHS=1            train MNIST; the run lands in runs/ (TFDOCK_DATA=... for offline data)
  make lab                       JupyterLab on port 8888 (forwarded); open the URL it prints
  make tensorboard               TensorBoard over runs/ on port 6006 (forwarded)
  notebooks/quickstart.ipynb     the TensorFlow quickstart, step by step (open it here or in the lab)
  make run CMD='python my.py'    your own code in this environment (src/ edits count at once)
  make help                      every target
NEXT
