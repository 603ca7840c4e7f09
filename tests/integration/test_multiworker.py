"""A real two-worker MultiWorkerMirroredStrategy job on this machine, a worker that dies, a launcher that dies."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import pytest

from tests.child_output import wait_for_line
from tests.commands import TFDOCK, make, run, start, tfdock
from tests.run_folders import FINISHED_RUN


@pytest.mark.slow
def test_two_workers_train_mnist_and_only_the_chief_writes(repo_root, mnist_dir, tmp_path):
    """`make train-multiworker WORKERS=2` finishes on both workers; the chief's model learned.

    A third of MNIST (over 90% in one epoch) keeps it short; the 97% is test_train_mnist's.
    """
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    runs = tmp_path / "runs"
    env = {"TFDOCK_DATA": str(mnist_dir), "TMPDIR": str(scratch)}
    result = make(repo_root, "train-multiworker", "WORKERS=2", "EPOCHS=1", f"RUNS={runs}",
                  "TRAIN_FLAGS=--limit 20000", env=env, timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "[worker 1] tfdock: worker 1 finished; the chief writes the artifacts." in out
    assert "2 replica(s) x batch 32 = global batch 64" in out
    assert "tfdock: all 2 workers finished" in out
    (run_dir,) = runs.iterdir()
    assert sorted(p.name for p in run_dir.iterdir()) == FINISHED_RUN
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["config"]["strategy_used"] == "multi-worker"
    assert metrics["config"]["global_batch_size"] == 64
    assert [e["epoch"] for e in metrics["epochs"]] == [1]
    model = keras.saving.load_model(run_dir / "model.keras")
    from tfdock.data import load_mnist

    data = load_mnist(mnist_dir)
    _, accuracy = model.evaluate(data.x_test / 255.0, data.y_test, batch_size=512, verbose=0)
    assert accuracy >= 0.9
    assert abs(accuracy - metrics["test"]["accuracy"]) < 1e-3
    assert not list(scratch.iterdir()), "workers leave no scratch files behind"


MULTIWORKER = [*TFDOCK, "multiworker"]


def _start_job(mnist_dir, output_dir, *settings, epochs=50, **options):
    """Start a two-worker job, of 50 epochs unless told (long enough to be interrupted)."""
    return start(
        [*MULTIWORKER, "--workers", "2", "--epochs", str(epochs), *settings,
         "--data", str(mnist_dir), "--output-dir", str(output_dir)],
        env={"PYTHONUNBUFFERED": "1"},
        **options,
    )  # fmt: skip


def _worker_pids_until(process, line_start: str) -> dict[int, int]:
    """Read the launcher's output up to a line starting ``line_start``; return each worker's pid."""
    seen = wait_for_line(process, rf"^{re.escape(line_start)}", timeout=600)
    pids = re.findall(r"^tfdock: worker (\d+) has pid (\d+)", seen, re.M)
    assert sorted(int(index) for index, _ in pids) == [0, 1], seen
    return {int(index): int(pid) for index, pid in pids}


def _signal_worker_1(process, line_start: str, signal_number: int) -> tuple[str, str]:
    """Send SIGNAL_NUMBER to worker 1 once the launcher prints LINE_START; return the job's output.

    The job is always ended: when it has not stopped within the bound, it is killed.
    """
    try:
        pid = _worker_pids_until(process, line_start)[1]
        os.kill(pid, signal_number)
        # A generous bound: the launcher's own grace for the others is 30 s.
        return process.communicate(timeout=180)
    finally:
        process.kill()
        process.wait()


@pytest.mark.slow
def test_killed_worker_fails_the_job_within_bounded_time(mnist_dir, tmp_path):
    """kill -9 one worker mid-training: the chief notices on its own and the job exits 2, named."""
    process = _start_job(mnist_dir, tmp_path, "--limit", "6000", stderr=subprocess.PIPE)
    out, err = _signal_worker_1(process, "[worker 1] Epoch 2/50", signal.SIGKILL)
    assert process.returncode == 2
    assert "Traceback" not in err
    assert "[worker 0] tfdock: error: worker 0 lost contact with another task" in out
    (run_dir,) = tmp_path.iterdir()
    assert err.strip().splitlines()[-1] == (
        "tfdock: error: worker 1 was killed by SIGKILL; the job failed: resume with "
        f"`tfdock multiworker --resume {run_dir}`."
    )
    assert not (run_dir / "metrics.json").exists()
    assert json.loads((run_dir / "backup" / "state.json").read_text())["completed_epochs"] >= 1


@pytest.mark.slow
@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_a_training_worker(mnist_dir, tmp_path, signal_number):
    """SIGTERM or SIGINT to one worker mid-training ends it (TensorFlow's SIGTERM handler is gone)."""
    process = _start_job(mnist_dir, tmp_path, "--limit", "6000", stderr=subprocess.PIPE)
    out, err = _signal_worker_1(process, "[worker 1] Epoch 2/50", signal_number)
    assert process.returncode == 2
    how = "was killed by SIGTERM" if signal_number == signal.SIGTERM else "exited with code 130"
    assert f"tfdock: worker 1 {how}; waiting for the others to stop" in out
    (run_dir,) = tmp_path.iterdir()
    assert err.strip().splitlines()[-1] == (
        f"tfdock: error: worker 1 {how}; the job failed: resume with "
        f"`tfdock multiworker --resume {run_dir}`."
    )


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie left for init to reap is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="the workers' parent-death signal is Linux's")
def test_killing_the_launcher_kills_its_workers(mnist_dir, tmp_path):
    """kill -9 the launcher mid-training: its workers die too instead of training on alone."""
    # Small batches make an epoch long: a worker prints only at the end of one,
    # so a worker that outlives its launcher is not stopped by a write to the
    # closed pipe within the few seconds allowed below.
    process = _start_job(mnist_dir, tmp_path, "--batch-size", "8", stderr=subprocess.STDOUT)
    pids: list[int] = []
    try:
        pids = list(_worker_pids_until(process, "[worker 1] Epoch 1/50").values())
        assert all(_running(pid) for pid in pids)
        process.send_signal(signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + 3
        while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_running(pid) for pid in pids), "a worker outlived its launcher"
    finally:
        process.kill()
        process.wait()
        for pid in pids:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def test_launcher_refuses_bad_data_before_making_a_run_folder(tmp_path):
    """A wrong --data stops `tfdock multiworker` in one sentence, with no workers and no folder."""
    result = tfdock("multiworker", "--data", str(tmp_path / "nowhere"),
                    "--output-dir", str(tmp_path / "runs"))  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("tfdock: error: MNIST data not found at ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "starting" not in result.stdout
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_port_taken_before_its_worker_listens_restarts_the_job(
    mnist_dir, tmp_path, monkeypatch, capsys
):
    """Another program takes worker 0's port after the launcher picked it: new ports, job done."""
    from tfdock import launch

    pick_ports = launch.free_loopback_ports
    taken: list[int] = []

    def first_pick_taken(count):
        ports = pick_ports(count)
        if not taken:
            taker.bind(("127.0.0.1", ports[0]))
            taker.listen()
            taken.append(ports[0])
        return ports

    with socket.socket() as taker:
        monkeypatch.setattr(launch, "free_loopback_ports", first_pick_taken)
        run_dir = tmp_path / "run"
        arguments = ["--run-dir", str(run_dir), "--epochs", "1", "--limit", "256"]
        arguments += ["--data", str(mnist_dir), "--output-dir", str(tmp_path)]
        assert launch.launch_local(2, arguments, run_dir) == 0
    out = capsys.readouterr().out
    assert f"[worker 0] tfdock: error: port {taken[0]} of worker 0 " in out
    assert "tfdock: another program took worker 0's port; starting again on new ports" in out
    assert out.count("tfdock: starting 2 workers on ") == 2
    assert "tfdock: all 2 workers finished" in out
    assert (run_dir / "metrics.json").is_file()


def test_a_worker_whose_launcher_is_gone_stops_at_once():
    """A worker that finds another parent than its launcher exits before doing anything."""
    result = run([sys.executable, "-m", "tfdock._worker", "--version"],
                 env={"TFDOCK_LAUNCHER_PID": "1"})  # fmt: skip
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "tfdock: error: the launcher (pid 1) that started this worker is gone; start the job "
        "again with `tfdock multiworker`.\n"
    )


@pytest.mark.slow
def test_tasks_started_by_hand_without_run_dir_make_one_folder(mnist_dir, tmp_path):
    """Two tasks of one TF_CONFIG, without --run-dir: only the chief makes a run folder."""
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    runs = tmp_path / "runs"
    tasks = [_start_task(cluster, index, mnist_dir, runs) for index in range(2)]
    try:
        outputs = [task.communicate(timeout=900)[0] for task in tasks]
    finally:
        for task in tasks:
            task.kill()
    assert [task.returncode for task in tasks] == [0, 0], outputs
    (run_dir,) = runs.iterdir()
    assert (run_dir / "metrics.json").is_file()
    assert "run directory made by the chief" in outputs[1]


def _start_task(cluster: dict, index: int, mnist_dir: Path, runs: Path) -> subprocess.Popen:
    """Start task INDEX of CLUSTER by hand, as docs/distribution.md says, without --run-dir."""
    task = {"cluster": cluster, "task": {"type": "worker", "index": index}}
    return start(
        [*TFDOCK, "train", "--strategy", "multi-worker", "--epochs", "1", "--limit", "2000",
         "--data", str(mnist_dir), "--output-dir", str(runs)],
        env={"TF_CONFIG": json.dumps(task)}, stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.mark.slow
def test_a_job_that_fails_before_its_first_epoch_says_start_again_and_leaves_no_folder(
    mnist_dir, tmp_path
):
    """A worker killed before the chief records the run: 'start the run again', no empty folder left."""
    process = _start_job(mnist_dir, tmp_path, "--limit", "2000", stderr=subprocess.PIPE)
    out, err = _signal_worker_1(process, "tfdock: worker 1 has pid", signal.SIGKILL)
    assert process.returncode == 2, out + err
    assert err.strip().splitlines()[-1] == (
        "tfdock: error: worker 1 was killed by SIGKILL; the job failed: start the run again."
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_ctrl_c_on_a_job_says_how_to_resume_and_that_command_finishes_it(mnist_dir, tmp_path):
    """Ctrl-C in epoch 2 of `tfdock multiworker` names its --resume command; run as printed, it finishes."""
    process = _start_job(mnist_dir, tmp_path, "--limit", "8000", epochs=2, start_new_session=True)
    try:
        _worker_pids_until(process, "[worker 0] Epoch 2/2")
        os.killpg(process.pid, signal.SIGINT)
        err = process.communicate(timeout=180)[1]
    finally:
        process.kill()
        process.wait()
    (run_dir,) = tmp_path.iterdir()
    assert process.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last == f"tfdock: interrupted; resume with `tfdock multiworker --resume {run_dir}`"
    printed = shlex.split(last.split("`")[1])
    resumed = tfdock(*printed[1:], timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert (run_dir / "metrics.json").is_file()
