#!/usr/bin/env bash
# Submit the kit's Slurm job: `make slurm-train` (MNIST, `tfdock train --strategy multi-worker`)
# and `make slurm-run` (CMD) call it. Usage: scripts/slurm-submit.sh train TRAIN_FLAGS... | run
# Environment: WORKERS (tasks), SLURM_IN (cpu, gpu or venv: where each task runs), SLURM_FLAGS
# (more sbatch flags), RUNS (the job's log and run folder), VENV, ENGINE, IMAGE, CMD.
# Checks the settings, then that sbatch is here, in one sentence each; scripts/slurm-job.sh is the job itself.
set -euo pipefail

what=${1:?usage: slurm-submit.sh train TRAIN_FLAGS... | run}
shift
where=${SLURM_IN:-cpu}
runs=${RUNS:-runs}
workers=${WORKERS:-2}

if [[ ! "$workers" =~ ^[1-9][0-9]*$ ]]; then
  echo "slurm-submit: WORKERS=$workers is not a number of tasks; e.g. 'make slurm-$what WORKERS=4'." >&2
  exit 2
fi
case "$where" in
  cpu | gpu) ;;
  venv)
    if [[ ! -x "${VENV:-.venv}/bin/tfdock" ]]; then
      echo "slurm-submit: SLURM_IN=venv runs each task in ${VENV:-.venv}, which has no tfdock yet; run 'make setup' first, on storage that every node shares." >&2
      exit 1
    fi
    ;;
  *)
    echo "slurm-submit: SLURM_IN=$where is not where tasks can run; choose cpu or gpu (the kit's image, through ENGINE) or venv (.venv), e.g. 'make slurm-$what SLURM_IN=venv'." >&2
    exit 2
    ;;
esac
if ! command -v sbatch >/dev/null 2>&1; then
  echo "slurm-submit: sbatch is not on PATH; run 'make slurm-$what' on a Slurm login node (docs/clusters.md)." >&2
  exit 1
fi
mkdir -p "$runs"
# SLURM_FLAGS is a list of flags, split as the shell splits words.
# shellcheck disable=SC2086
exec sbatch --ntasks="$workers" --output="$runs/slurm-%j.out" ${SLURM_FLAGS:-} \
  scripts/slurm-job.sh "$where" "$what" "$@"
