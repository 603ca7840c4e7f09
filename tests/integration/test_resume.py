"""A run killed with SIGKILL mid-epoch resumes from its last completed epoch."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess

import pytest

from tests.child_output import wait_for_line
from tests.commands import TFDOCK, run, start, tfdock

EPOCHS = 3
UNBUFFERED = {"PYTHONUNBUFFERED": "1"}  # each line as it is printed, for wait_for_line


@pytest.mark.slow
def test_killed_run_resumes_without_repeating_epochs(tmp_path, mnist_dir):
    """kill -9 during epoch 2, then --resume: epochs 2..3 run once each, metrics cover 1..3.

    The resumed run ends exactly where the same run without the kill ends: every
    epoch's numbers and the test figures are equal, bit for bit.
    """
    # One step per call makes an epoch long enough (seconds) to be killed in the middle of.
    command = ["train", "--data", str(mnist_dir)]
    settings = ["--epochs", str(EPOCHS), "--limit", "30000", "--steps-per-execution", "1"]
    killed_dir, straight_dir = tmp_path / "killed", tmp_path / "straight"
    first = start([*TFDOCK, *command, *settings, "--output-dir", str(killed_dir)],
                  stderr=subprocess.STDOUT, env=UNBUFFERED)  # fmt: skip
    try:
        # Epoch 1's backup is written before epoch 2 starts: kill as soon as it has.
        wait_for_line(first, rf"^Epoch 2/{EPOCHS}$", timeout=300)
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    (run_dir,) = killed_dir.iterdir()
    assert not (run_dir / "metrics.json").exists()
    state = json.loads((run_dir / "backup" / "state.json").read_text())
    assert state["completed_epochs"] == 1, "the kill landed in the middle of epoch 2"

    resumed = tfdock(*command, "--resume", str(run_dir), env=UNBUFFERED)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"resuming after epoch 1 of {EPOCHS}" in resumed.stdout
    started = re.findall(rf"^Epoch (\d)/{EPOCHS}$", resumed.stdout, re.MULTILINE)
    assert started == ["2", "3"], "finished epochs are not repeated"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert metrics["epochs"][0] == state["epochs"][0], "epoch 1's numbers survive the kill"
    assert metrics["resumed_after_epoch"] == 1
    assert metrics["test"]["accuracy"] >= 0.95
    assert not list(run_dir.rglob(".*.tmp*")), "no temporary files are left behind"

    straight = tfdock(*command, *settings, "--output-dir", str(straight_dir), env=UNBUFFERED)
    assert straight.returncode == 0, straight.stdout[-3000:] + straight.stderr[-3000:]
    (straight_run,) = straight_dir.iterdir()
    uninterrupted = json.loads((straight_run / "metrics.json").read_text())
    numbers = [{k: e[k] for k in ("epoch", "loss", "accuracy")} for e in metrics["epochs"]]
    assert numbers == [
        {k: e[k] for k in ("epoch", "loss", "accuracy")} for e in uninterrupted["epochs"]
    ], "every epoch equals the uninterrupted run's"
    assert metrics["test"] == uninterrupted["test"]


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume_and_that_command_finishes_the_run(tmp_path, mnist_dir):
    """Ctrl-C during epoch 2 ends in one line naming the resume command; run as printed, it finishes."""
    settings = ["--epochs", "2", "--limit", "30000", "--steps-per-execution", "1"]
    first = start([*TFDOCK, "train", "--data", str(mnist_dir), *settings,
                   "--output-dir", str(tmp_path)], env=UNBUFFERED)  # fmt: skip
    try:
        wait_for_line(first, r"^Epoch 2/2$", timeout=300)
        first.send_signal(signal.SIGINT)
        stderr = first.communicate(timeout=120)[1]
    finally:
        first.kill()
        first.wait()
    (run_dir,) = tmp_path.iterdir()
    assert first.returncode == 130
    assert stderr.splitlines()[-1] == (
        f"tfdock: interrupted; resume with `tfdock train --resume {run_dir}`"
    )
    printed = shlex.split(stderr.splitlines()[-1].split("`")[1])
    assert printed[0] == "tfdock"
    resumed = tfdock(*printed[1:], env=UNBUFFERED)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming after epoch 1 of 2" in resumed.stdout
    assert (run_dir / "metrics.json").is_file()


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_a_second_run_into_a_busy_run_dir_is_refused_and_touches_nothing(
    tmp_path, mnist_dir, mnist, mnist_npz
):
    """Two runs into one --run-dir at once: the second is refused; the first finishes intact.

    The first run is stopped (SIGSTOP) once it has started, so that it holds its
    folder for as long as the second one takes, however slow the machine.
    """
    run_dir = tmp_path / "run"
    command = ["train", "--epochs", str(EPOCHS), "--limit", "2000", "--run-dir", str(run_dir)]
    first = start([*TFDOCK, *command, "--data", str(mnist_dir)], stderr=subprocess.STDOUT,
                  env=UNBUFFERED)  # fmt: skip
    try:
        wait_for_line(first, r"^tfdock: training on ", timeout=300)
        first.send_signal(signal.SIGSTOP)
        try:
            before = _snapshot(run_dir)
            for others, refusal in (
                (["--data", str(mnist_npz), "--loop", "fit"], "was trained on other data"),
                (["--data", str(mnist_dir), "--loop", "fit"], f"(pid {first.pid}) is writing"),
            ):
                second = tfdock(*command, *others)
                assert second.returncode == 2, second.stdout + second.stderr
                lines = second.stderr.strip().splitlines()
                assert len(lines) == 1 and refusal in lines[0], second.stderr
                assert _snapshot(run_dir) == before, (
                    "the refused run touched the first one's folder"
                )
        finally:
            first.send_signal(signal.SIGCONT)
        output, _ = first.communicate(timeout=600)
    finally:
        first.kill()
        first.wait()
    assert first.returncode == 0, output[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert config["training_loop"] == metrics["config"]["training_loop"] == "graph"
    assert config["data_source"] == metrics["config"]["data_source"] == str(mnist_dir)
    assert config["data_sha256"] == metrics["config"]["data_sha256"] == mnist.sha256
    assert f"artifacts in {run_dir}" in output


def interrupt_in_epoch_2(command: list[str], **popen) -> tuple[int, str]:
    """Start COMMAND (a make target) in its own session; Ctrl-C it in epoch 2; return (code, stderr)."""
    process = start(command, start_new_session=True, **popen)
    try:
        wait_for_line(process, r"Epoch 2/2", timeout=600)
        os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        stderr = process.communicate(timeout=180)[1]
    finally:
        process.kill()
        process.wait()
    return process.returncode, stderr


def resume_line(stderr: str) -> str:
    """The line tfdock printed when it was interrupted (make adds its own lines after it)."""
    return next(line for line in stderr.splitlines() if line.startswith("tfdock: interrupted"))


@pytest.mark.slow
def test_ctrl_c_in_make_train_names_the_make_command_that_finishes_the_run(
    repo_root, tmp_path, mnist_dir
):
    """Ctrl-C in `make train` names `make train RESUME=... TFDOCK_DATA=...`; run as printed, it finishes."""
    runs = tmp_path / "runs"
    code, stderr = interrupt_in_epoch_2(
        ["make", "-C", str(repo_root), "train", "EPOCHS=2", f"RUNS={runs}",
         f"TFDOCK_DATA={mnist_dir}", "TRAIN_FLAGS=--limit 30000 --steps-per-execution 1"],
        env=UNBUFFERED,
    )  # fmt: skip
    (run_dir,) = runs.iterdir()
    assert code != 0
    line = resume_line(stderr)
    assert line == (
        f"tfdock: interrupted; resume with `make train RESUME={run_dir} TFDOCK_DATA={mnist_dir}`"
    )
    resumed = run(["bash", "-c", line.split("`")[1]], cwd=repo_root, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming after epoch 1 of 2" in resumed.stdout
    assert (run_dir / "metrics.json").is_file()
