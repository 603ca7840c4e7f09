#!/usr/bin/env bash
# Run a command in the kit's image with the workspace mounted, so results land on the
# host owned by the host user. Usage: scripts/container-run.sh cpu|gpu [--lab|--tensorboard|--shell|--slurm-task] [COMMAND...]
# --slurm-task: COMMAND is one task of a Slurm step (scripts/slurm-job.sh), on the node's network.
# Refuses, in one sentence, an image older than the workspace's lock.
# Environment: ENGINE, IMAGE, TFDOCK_DATA (a host path, mounted read-only at /data/<its name>),
# XDG_CACHE_HOME and TFDOCK_CACHE (the host caches mounted into it),
# PORT (host port for --lab) and TB_PORT (for --tensorboard, over the workspace's RUNS), bound to 127.0.0.1.
set -euo pipefail

# shellcheck source=scripts/engine.sh
source "$(dirname "$0")/engine.sh"

variant=${1:?usage: container-run.sh cpu|gpu [--lab|--tensorboard|--shell|--slurm-task] [COMMAND...]}
shift
image=${IMAGE:-tfdock}
lab=0
board=0
shell=0
slurm=0
case "${1:-}" in
  --lab) lab=1 && shift ;;
  --tensorboard) board=1 && shift ;;
  --shell) shell=1 && shift && set -- bash ;;
  --slurm-task) slurm=1 && shift ;;
esac

if ! command -v "$engine" >/dev/null 2>&1; then
  echo "container-run: the container engine '$engine' is not installed; install Docker or Podman and name it with ENGINE=docker or ENGINE=podman (see 'make doctor')." >&2
  exit 1
fi
if ! "$engine" image inspect "$image:$variant" >/dev/null 2>&1; then
  target=image
  [[ "$variant" == gpu ]] && target="image-gpu"
  echo "container-run: the image $image:$variant does not exist yet; build it with 'make $target ENGINE=$engine IMAGE=$image'." >&2
  exit 1
fi

# You, so files written to the workspace are yours (engine.sh: --user, or --userns=keep-id
# under rootless Podman); the group `users` owns /opt/venv, so `pip install` works in the
# container (`tfdock verify` then names the extra package).
mapfile -t user_args < <(user_run_args)
args=(run --rm "${user_args[@]}" --volume "$PWD:/workspace" --workdir /workspace)
if [[ -t 0 && -t 1 ]]; then
  args+=(--interactive --tty)
elif ((shell)); then
  args+=(--interactive)  # a shell reads its commands from a pipe too
fi
# The kit's MNIST download and pip's cache live on the host (XDG_CACHE_HOME, else ~/.cache),
# so they outlive the --rm container: a second `make docker-train` downloads nothing, and the
# venv door and the images share one copy. TFDOCK_CACHE names another folder for the kit's.
host_cache=${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}
data_cache=${TFDOCK_CACHE:-$host_cache/tfdock}
mkdir -p "$data_cache" "$host_cache/pip" 2>/dev/null || {
  echo "container-run: cannot make the cache folders $data_cache and $host_cache/pip; set XDG_CACHE_HOME (or TFDOCK_CACHE) to a folder you can write to." >&2
  exit 1
}
# At /cache/, not under ~/.cache: a mount there would make ~/.cache root's, and other tools'
# caches (pip-tools') could not be made.
args+=(--volume "$data_cache:/cache/tfdock" --env TFDOCK_CACHE=/cache/tfdock)
args+=(--volume "$host_cache/pip:/cache/pip" --env PIP_CACHE_DIR=/cache/pip)
# How to resume a run in this door (the Makefile's train targets set it; tfdock prints it).
[[ -n "${TFDOCK_RESUME_COMMAND:-}" ]] && args+=(--env TFDOCK_RESUME_COMMAND)
if [[ -n "${TFDOCK_DATA:-}" ]]; then
  data=$(realpath -e "$TFDOCK_DATA" 2>/dev/null) || {
    echo "container-run: TFDOCK_DATA=$TFDOCK_DATA does not exist on this host; point it at mnist.npz or the folder of the four MNIST .gz files." >&2
    exit 2
  }
  args+=(--volume "$data:/data/$(basename "$data"):ro" --env "TFDOCK_DATA=/data/$(basename "$data")")
fi
if [[ "$variant" == gpu ]]; then
  if is_podman; then
    args+=(--device nvidia.com/gpu=all)
  else
    args+=(--gpus all)
  fi
  # On a GPU newer than TensorFlow's prebuilt kernels (sm_89) the driver JIT-compiles them
  # from PTX at first use, for minutes (docs/gpu.md). Its cache lives in the workspace so
  # the next --rm container reuses it; 2 GiB, as TensorFlow's 2.3.0 release notes advise.
  args+=(--env CUDA_CACHE_PATH=/workspace/.cache/nv-compute --env CUDA_CACHE_MAXSIZE=2147483648)
fi
# A server's host port: a TCP port number that is free on 127.0.0.1, else one sentence
# (the engine's own message for a taken port is a long wrapped error).
check_port() {  # VARIABLE PORT TARGET EXAMPLE PROGRAM
  local variable=$1 port=$2 target=$3 example=$4 program=$5
  if [[ ! "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    echo "container-run: $variable=$port is not a TCP port; choose one from 1 to 65535, e.g. 'make $target $variable=$example'." >&2
    exit 2
  fi
  if (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "container-run: port $port on 127.0.0.1 is already in use (another $program?): stop that program or choose another port, e.g. 'make $target $variable=$((port + 1))'." >&2
    exit 1
  fi
}

if ((lab)); then
  port=${PORT:-8888}
  check_port PORT "$port" docker-lab 8890 JupyterLab
  name="${image##*/}-lab-$port"
  # The token, if any, goes by name: its value stays out of every process's arguments.
  args+=(--name "$name" --publish "127.0.0.1:$port:8888")
  if [[ -n "${JUPYTER_TOKEN:-}" ]]; then
    export JUPYTER_TOKEN
    args+=(--env JUPYTER_TOKEN)
  fi
  set -- tfdock lab --ip 0.0.0.0 --port 8888 --url-port "$port" --root-dir /workspace
elif ((board)); then
  port=${TB_PORT:-6006}
  check_port TB_PORT "$port" docker-tensorboard 6007 TensorBoard
  name="${image##*/}-tensorboard-$port"
  args+=(--name "$name" --publish "127.0.0.1:$port:6006")
  set -- tfdock tensorboard --logdir "${RUNS:-runs}" --ip 0.0.0.0 --port 6006 --url-port "$port"
fi
if ((slurm)); then
  # The task listens on its node's address (TF_CONFIG names the node), so it shares the
  # node's network. Labelled by job: after the step, slurm-job.sh removes any container
  # that a killed engine client left running.
  task_name="tfdock-slurm-$SLURM_JOB_ID-$SLURM_STEP_ID-$SLURM_PROCID"
  args+=(--network host --name "$task_name" --label "tfdock.slurm-job=$SLURM_JOB_ID")
  for variable in SLURM_JOB_ID SLURM_STEP_ID SLURM_PROCID SLURM_LOCALID SLURM_STEP_NUM_TASKS \
    SLURM_STEP_NODELIST SLURM_STEP_TASKS_PER_NODE SLURMD_NODENAME CUDA_VISIBLE_DEVICES \
    TF_CONFIG TFDOCK_PORT_BASE TFDOCK_STARTUP_TIMEOUT; do
    [[ -n "${!variable:-}" ]] && args+=(--env "$variable")
  done
  set -- tfdock task "$@"
fi
if ((lab || board)); then
  echo "container-run: starting $name (stop it with Ctrl-C or '$engine stop $name')." >&2
fi
# The image's health check watches the lab; TensorBoard or a one-off command has none to watch.
((lab)) || args+=(--no-healthcheck)

# The command runs only when the image was built from the workspace's lock; otherwise
# `tfdock container-check` says in one sentence that the image is older and how to rebuild it.
command=("$image:$variant" sh -c 'tfdock container-check && exec "$@"' container-run "$@")
((slurm)) || exec "$engine" "${args[@]}" "${command[@]}"

# A Slurm task. scancel signals every process of the step, the helper that the engine
# client's signal proxy starts too, which can die before it passes the signal on: the task
# then trained on until Slurm's KillWait, and its container outlived the job. So the client
# proxies nothing, and this script hands TERM (or INT) to the container by name, then waits
# for it to end.
stop_task() {  # stop_task SIGNAL
  "$engine" kill --signal "$1" "$task_name" >/dev/null 2>&1 || true
  wait "$client" 2>/dev/null || true
  "$engine" wait "$task_name" >/dev/null 2>&1 || true
  exit $((128 + $(kill -l "$1")))
}
trap 'stop_task TERM' TERM
trap 'stop_task INT' INT
"$engine" "${args[@]}" --sig-proxy=false "${command[@]}" &
client=$!
status=0
wait "$client" || status=$?
# The same signal may end the client before this script's trap runs: stop the task anyway.
((status <= 128)) || stop_task "$(kill -l "$status")"
exit "$status"
