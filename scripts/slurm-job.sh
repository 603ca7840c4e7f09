#!/usr/bin/env bash
# The kit's Slurm batch script (submitted by scripts/slurm-submit.sh, which sets --ntasks and
# --output). Usage: sbatch ... scripts/slurm-job.sh cpu|gpu|venv train TRAIN_FLAGS... | run
# One srun step runs every task; each gets TF_CONFIG from Slurm's step (`tfdock task`),
# in the kit's image (one container per task, on its node's network) or in the workspace's
# venv. The workspace, and so RUNS, must be on storage that every node shares.
#SBATCH --job-name=tfdock
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:?run this with sbatch: make slurm-train or make slurm-run}"

where=$1 what=$2
shift 2
runs=${RUNS:-runs}
run_dir=
case "$what" in
  train)
    # A new run trains into runs/slurm-JOBID; RESUME's flags (--resume RUN) name their own.
    if [[ " $* " != *" --resume "* ]]; then
      run_dir="$runs/slurm-$SLURM_JOB_ID"
      set -- --run-dir "$run_dir" "$@"
    else
      run_dir=$(sed -n 's/.*--resume \([^ ]*\).*/\1/p' <<<"$*")
    fi
    set -- tfdock train --strategy multi-worker "$@"
    ;;
  run) set -- bash -c "${CMD:?make slurm-run needs CMD}" ;;
esac
case "$where" in
  cpu | gpu) task=(scripts/container-run.sh "$where" --slurm-task "$@") ;;
  venv)
    # As `make run` does: the venv first on PATH, so a task's `python` and `tfdock` are its.
    VIRTUAL_ENV=$(realpath "${VENV:-.venv}")
    export VIRTUAL_ENV PATH="$VIRTUAL_ENV/bin:$PATH"
    task=(tfdock task "$@")
    ;;
esac

# A task killed outright (SIGKILL, which container-run.sh cannot pass on) leaves its container
# running, as a killed engine client does: after the step, remove whatever containers of
# this job are left on each node (none when all ended).
remove_containers() {
  # shellcheck source=scripts/engine.sh
  source scripts/engine.sh
  srun --overlap --ntasks-per-node=1 --ntasks="$SLURM_JOB_NUM_NODES" bash -c \
    "$engine ps --all --quiet --filter label=tfdock.slurm-job=$SLURM_JOB_ID | xargs --no-run-if-empty $engine rm --force >/dev/null" || true
}

place="the image ${IMAGE:-tfdock}:$where"
[[ "$where" == venv ]] && place="the venv $VIRTUAL_ENV"
echo "tfdock: Slurm job $SLURM_JOB_ID: $SLURM_NTASKS task(s) on $SLURM_JOB_NODELIST, in $place: $*"
status=0
srun --kill-on-bad-exit=1 "${task[@]}" || status=$?
[[ "$where" == venv ]] || remove_containers
if ((status == 0)); then
  echo "tfdock: Slurm job $SLURM_JOB_ID: every task finished${run_dir:+; artifacts in $run_dir}"
  exit 0
fi
then="srun's lines above name the task, and its output says why"
if [[ -n "$run_dir" && -f "$run_dir/config.json" && ! -f "$run_dir/metrics.json" ]]; then
  resume=${TFDOCK_RESUME_COMMAND:-"make slurm-train RESUME={run_dir}"}
  then+="; resume with \`${resume//\{run_dir\}/$run_dir}\`"
fi
echo "tfdock: Slurm job $SLURM_JOB_ID failed (srun's status $status): $then." >&2
exit "$status"
