"""TF_CONFIG from a Slurm step's variables (`tfdock task`, `tfdock train`), and the submit checks.

The variables are the ones srun sets (see the Slurm tests in tests/integration/test_slurm.py
for a real cluster); here they describe clusters this machine is not, to check the mapping
and each refusal.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.commands import make, tfdock
from tfdock import slurm
from tfdock.errors import TfdockError

SHOW_TF_CONFIG = ["python", "-c", "import os; print(os.environ['TF_CONFIG'])"]


def _step(**variables: str) -> dict[str, str | None]:
    """A task's environment in a 3-task step over two nodes (2 tasks on n01, 1 on n02)."""
    step = {
        "SLURM_JOB_ID": "4321",
        "SLURM_PROCID": "0",
        "SLURM_STEP_NUM_TASKS": "3",
        "SLURM_STEP_NODELIST": "n[01-02]",
        "SLURM_STEP_TASKS_PER_NODE": "2,1",
        "SLURMD_NODENAME": "n01",
        "TF_CONFIG": None,
        "TFDOCK_PORT_BASE": None,
    }
    return {**step, **variables}


def _in_step(monkeypatch, **variables: str) -> os._Environ:
    """This process's environment as a task of _step's sees it (TensorFlow's resolver reads
    os.environ itself)."""
    for name, value in _step(**variables).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    return os.environ


@pytest.mark.parametrize(
    ("procid", "node", "index", "address"),
    [("0", "n01", 0, "n01:23210"), ("1", "n01", 1, "n01:23211"), ("2", "n02", 2, "n02:23210")],
)
def test_each_task_gets_its_place_in_one_cluster(monkeypatch, procid, node, index, address):
    """Task 0 is worker 0 (the chief); ports count from 20000 + 10 x (job id mod 1000)."""
    config, line = slurm.tf_config(_in_step(monkeypatch, SLURM_PROCID=procid, SLURMD_NODENAME=node))
    assert line == (
        f"tfdock: Slurm job 4321, task {procid} of 3: TF_CONFIG from Slurm's step, this task "
        f"at {address}"
    )
    assert json.loads(config) == {
        "cluster": {"worker": ["n01:23210", "n01:23211", "n02:23210"]},
        "task": {"type": "worker", "index": index},
    }


def test_task_gives_its_command_the_tf_config_of_its_place():
    """`tfdock task COMMAND` says where its TF_CONFIG came from and runs COMMAND with it."""
    result = tfdock("task", *SHOW_TF_CONFIG, env=_step(SLURM_PROCID="2", SLURMD_NODENAME="n02"))
    assert result.returncode == 0, result.stderr
    line, config = result.stdout.splitlines()
    assert line.endswith("task 2 of 3: TF_CONFIG from Slurm's step, this task at n02:23210")
    assert json.loads(config)["task"] == {"type": "worker", "index": 2}


def test_a_tf_config_already_set_is_kept():
    mine = '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}'
    result = tfdock("task", *SHOW_TF_CONFIG, env=_step(TF_CONFIG=mine))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == mine


def test_the_port_base_can_be_chosen(monkeypatch):
    config, _ = slurm.tf_config(_in_step(monkeypatch, TFDOCK_PORT_BASE="23000"))
    assert json.loads(config)["cluster"]["worker"][2] == "n02:23000"


@pytest.mark.parametrize(
    ("variables", "sentence"),
    [
        (
            {"SLURM_PROCID": "3"},
            "Slurm's step variables do not describe a cluster (SLURM_PROCID=3 is not below "
            "SLURM_STEP_NUM_TASKS=3); start each task with srun inside the job, or set TF_CONFIG "
            "yourself (docs/clusters.md).",
        ),
        (
            {"SLURM_STEP_NODELIST": "n[01-"},
            'Slurm\'s step variables do not describe a cluster (Invalid hostlist format "n[01-": '
            "Invalid part: n[01-); start each task with srun inside the job, or set TF_CONFIG "
            "yourself (docs/clusters.md).",
        ),
        (
            {"SLURM_PROCID": "2", "SLURMD_NODENAME": "n01"},
            "Slurm placed task 2 on n01, but the cluster built from Slurm's step puts it on n02; "
            "submit with block distribution (the default; remove --distribution=cyclic) so that "
            "each node's tasks are numbered together.",
        ),
        (
            {"TFDOCK_PORT_BASE": "80"},
            "TFDOCK_PORT_BASE=80 is not a port from 1024 to 65000; set it to the first port of "
            "each node's tasks, open between the nodes, e.g. TFDOCK_PORT_BASE=23000.",
        ),
    ],
)
def test_a_malformed_step_is_one_sentence(monkeypatch, variables, sentence):
    with pytest.raises(TfdockError) as refused:
        slurm.tf_config(_in_step(monkeypatch, **variables))
    assert str(refused.value) == sentence


def test_train_in_a_malformed_step_stops_before_anything_is_written(tmp_path):
    """`tfdock train` reads the cluster from Slurm itself, and refuses a bad one at once:
    its one sentence, exit 2, no traceback (the sentences: the test above)."""
    result = tfdock("train", "--strategy", "multi-worker", "--output-dir", str(tmp_path),
                    env=_step(SLURM_PROCID="7"))  # fmt: skip
    assert result.returncode == 2
    assert "SLURM_PROCID=7 is not below SLURM_STEP_NUM_TASKS=3" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_task_outside_a_scheduled_job_says_so():
    step = {name: None for name in _step() if name.startswith("SLURM")}
    result = tfdock("task", "true", env={**step, "TFDOCK_K8S_WORKERS": None})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "tfdock: error: tfdock task runs as one task of a Slurm job step or of the Kubernetes "
        "Indexed Job that `tfdock k8s` renders, which this is not: submit it with "
        "`make slurm-run CMD=...` (docs/clusters.md)."
    )


def test_task_names_a_missing_command():
    result = tfdock("task", "no-such-program", env=_step())
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "tfdock: error: cannot run 'no-such-program' (not found, or not executable); name a "
        "command that exists in the task's environment."
    )


@pytest.mark.parametrize(
    ("variables", "sentence"),
    [
        (
            ["SLURM_IN=vnev"],
            "slurm-submit: SLURM_IN=vnev is not where tasks can run; choose cpu or gpu (the "
            "kit's image, through ENGINE) or venv (.venv), e.g. 'make slurm-train SLURM_IN=venv'.",
        ),
        (
            ["WORKERS=0"],
            "slurm-submit: WORKERS=0 is not a number of tasks; e.g. 'make slurm-train WORKERS=4'.",
        ),
        (
            ["SLURM_IN=venv", "VENV=no-such-venv"],
            "slurm-submit: SLURM_IN=venv runs each task in no-such-venv, which has no tfdock yet; "
            "run 'make setup' first, on storage that every node shares.",
        ),
    ],
)
def test_make_slurm_train_refuses_bad_settings_before_submitting(repo_root, variables, sentence):
    """Checked first, so that a machine without Slurm (a laptop, the dev container) says so too."""
    result = make(repo_root, "slurm-train", *variables)
    assert result.returncode != 0
    assert sentence in result.stderr


def test_make_slurm_run_without_sbatch_says_where_to_run_it(repo_root, tmp_path):
    """No sbatch on PATH (a laptop): one sentence naming the login node, nothing submitted."""
    (tmp_path / "bin").mkdir()
    for tool in ("bash", "env", "make", "mkdir", "dirname"):
        (tmp_path / "bin" / tool).symlink_to(f"/usr/bin/{tool}")
    result = make(repo_root, "slurm-run", "CMD=true", env={"PATH": str(tmp_path / "bin")})
    assert result.returncode != 0
    assert (
        "slurm-submit: sbatch is not on PATH; run 'make slurm-run' on a Slurm login node "
        "(docs/clusters.md)." in result.stderr
    )
