"""The kit on a real Slurm cluster: `make slurm-train` and `make slurm-run`, submitted with sbatch.

CI makes this machine a one-node cluster (scripts/slurm-host-setup.sh: munge, slurmctld,
slurmd). Jobs run in the CPU image (rootful Podman here: one container a task, on the
node's network) or in the venv; their run folders lie in the workspace, which the image
door mounts, as a shared file system would on a real cluster.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests import commands
from tests.child_output import wait_for_line
from tests.integration.containers import record_artifact, weights

pytestmark = [pytest.mark.slow, pytest.mark.container, pytest.mark.slurm]


@pytest.fixture
def runs():
    """A folder for this test's jobs inside the workspace, which the image door mounts."""
    return f"test-artifacts/slurm-{uuid.uuid4().hex[:8]}"


def _job_output(repo_root: Path, runs: str, job: str) -> str:
    return (repo_root / runs / f"slurm-{job}.out").read_text()


def _submitted(result: subprocess.CompletedProcess[str]) -> str:
    match = re.search(r"Submitted batch job (\d+)", result.stdout)
    assert match, result.stdout[-3000:] + result.stderr[-3000:]
    return match.group(1)


def _slurm_make(repo_root, target, *variables, engine=None, timeout=1500):
    environment = {"ENGINE": engine} if engine else {}
    return commands.make(repo_root, target, *variables, env=environment, timeout=timeout)


def _containers_of(engine: str, job: str) -> list[str]:
    listed = commands.run([engine, "ps", "--all", "--quiet", "--filter",
                           f"label=tfdock.slurm-job={job}"], timeout=60)  # fmt: skip
    return listed.stdout.split()


def _wait_until_gone(job: str, engine: str, bound: float = 120) -> float:
    """Seconds until Slurm lists no job JOB and no container of it is left (bounded)."""
    started = time.monotonic()
    while time.monotonic() - started < bound:
        queued = commands.run(["squeue", "--noheader", "--jobs", job], timeout=60).stdout
        if not queued.strip() and not _containers_of(engine, job):
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"job {job} or its containers still there after {bound} s")


def test_a_two_task_job_in_the_image_trains_to_the_local_jobs_bits(
    repo_root, slurm, cpu_image, engine, mnist_dir, runs, local_two_worker_run
):
    """`make slurm-train` (2 tasks, the image) and `tfdock multiworker` (venv) give the same model."""
    flags = " ".join(local_two_worker_run["flags"])
    started = time.monotonic()
    result = _slurm_make(repo_root, "slurm-train", "WORKERS=2", f"RUNS={runs}",
                         f"TFDOCK_DATA={mnist_dir}", "SLURM_FLAGS=--wait",
                         f"TRAIN_FLAGS={flags}", engine=engine)  # fmt: skip
    slurm_seconds = time.monotonic() - started
    job = _submitted(result)
    output = _job_output(repo_root, runs, job)
    assert result.returncode == 0, output[-3000:]
    assert f"tfdock: Slurm job {job}, task 1 of 2: TF_CONFIG from Slurm's step" in output
    assert "strategy multi-worker as worker 0 of 2: 2 replica(s) x batch 32" in output
    assert f"tfdock: Slurm job {job}: every task finished" in output
    slurm_run = repo_root / runs / f"slurm-{job}"
    local_run = local_two_worker_run["run_dir"]

    on_slurm = json.loads((slurm_run / "metrics.json").read_text())
    on_host = json.loads((local_run / "metrics.json").read_text())
    assert on_slurm["test"] == on_host["test"]
    assert on_slurm["test"]["accuracy"] >= 0.9
    for ours, theirs in zip(weights(slurm_run), weights(local_run), strict=True):
        assert np.array_equal(ours, theirs)
    record_artifact("slurm.json", "two_task_job", {
        "sbatch_wait_seconds": round(slurm_seconds, 1),
        "local_multiworker_seconds": round(local_two_worker_run["seconds"], 1),
        "test_accuracy": on_slurm["test"]["accuracy"],
        "same_bits_as_local": True,
    })  # fmt: skip


def _start_job_and_wait_for(line: str, repo_root, engine, mnist_dir, runs) -> str:
    """Submit a 3-epoch 2-task job (no --wait); return its id once its output has LINE."""
    result = _slurm_make(repo_root, "slurm-train", "WORKERS=2", f"RUNS={runs}", "EPOCHS=3",
                         f"TFDOCK_DATA={mnist_dir}", "TRAIN_FLAGS=--limit 8000",
                         engine=engine)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    job = _submitted(result)
    log = repo_root / runs / f"slurm-{job}.out"
    with subprocess.Popen(["tail", "-F", "-n", "+1", str(log)], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True) as tail:  # fmt: skip
        try:
            wait_for_line(tail, rf"^{re.escape(line)}", timeout=600)
        finally:
            tail.kill()
    return job


def test_a_killed_task_fails_the_job_in_one_sentence_and_a_resubmitted_job_resumes(
    repo_root, slurm, cpu_image, engine, mnist_dir, runs
):
    """SIGKILL of task 1 (its container-run.sh) in epoch 2: the job fails naming the resume command; it resumes."""
    job = _start_job_and_wait_for("Epoch 2/3", repo_root, engine, mnist_dir, runs)
    pids = commands.run(["scontrol", "listpids", f"{job}.0"], timeout=60).stdout
    (task_1,) = [line.split()[0] for line in pids.splitlines()[1:] if line.split()[4] == "1"]
    commands.run(["kill", "-KILL", task_1], timeout=60)
    _wait_until_gone(job, engine)

    output = _job_output(repo_root, runs, job)
    run_dir = f"{runs}/slurm-{job}"
    resume = f"make slurm-train RESUME={run_dir} TFDOCK_DATA={mnist_dir}"
    assert (
        f"tfdock: Slurm job {job} failed (srun's status 137): srun's lines above name the task, "
        f"and its output says why; resume with `{resume}`." in output
    ), output[-3000:]
    resumed = commands.run(["bash", "-c", f"{resume} SLURM_FLAGS=--wait"], cwd=repo_root,
                           env={"ENGINE": engine}, timeout=1500)  # fmt: skip
    second = _submitted(resumed)
    assert resumed.returncode == 0, _job_output(repo_root, runs, second)[-3000:]
    metrics = json.loads((repo_root / run_dir / "metrics.json").read_text())
    assert metrics["resumed_after_epoch"] >= 1
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]


def test_scancel_ends_every_task_and_container_at_once(
    repo_root, slurm, cpu_image, engine, mnist_dir, runs
):
    """scancel's SIGTERM reaches each task's container (container-run.sh passes it by name); nothing is left running."""
    job = _start_job_and_wait_for("Epoch 1/3", repo_root, engine, mnist_dir, runs)
    commands.run(["scancel", job], timeout=60)
    seconds = _wait_until_gone(job, engine, bound=60)
    record_artifact("slurm.json", "scancel_to_gone_seconds", round(seconds, 1))


@pytest.mark.parametrize("where", ["venv", "cpu"])
def test_slurm_run_gives_any_command_its_tasks_tf_config(
    repo_root, slurm, engine, runs, where, request
):
    """`make slurm-run CMD=...`: each task's own program sees TF_CONFIG for its place in the job."""
    if where == "cpu":
        request.getfixturevalue("cpu_image")
    show = 'python -c \'import json, os; print("TASK", os.environ["TF_CONFIG"])\''
    result = _slurm_make(repo_root, "slurm-run", "WORKERS=2", f"SLURM_IN={where}", f"RUNS={runs}",
                         f"CMD={show}", "SLURM_FLAGS=--wait", engine=engine)  # fmt: skip
    job = _submitted(result)
    output = _job_output(repo_root, runs, job)
    assert result.returncode == 0, output[-3000:]
    configs = [json.loads(line[5:]) for line in output.splitlines() if line.startswith("TASK ")]
    assert sorted(c["task"]["index"] for c in configs) == [0, 1]
    (cluster,) = {json.dumps(c["cluster"]) for c in configs}
    workers = json.loads(cluster)["worker"]
    assert len(workers) == 2 and len(set(workers)) == 2
