"""TensorBoard over finished runs, from the venv and from the CPU image: a real browser sees the scalars."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
from pathlib import Path

import pytest

from tests.commands import start, tfdock
from tests.integration.containers import ARTIFACTS, run
from tests.integration.lab_helpers import free_port, get_json, open_in_chromium

# Slow: the module trains a real (small) MNIST run to look at.
pytestmark = pytest.mark.slow

# Inside the workspace, so the image (which mounts it at /workspace) sees the same runs.
RUNS = "test-artifacts/tensorboard-runs"


@pytest.fixture(scope="module")
def finished_run(repo_root, mnist_dir) -> dict:
    """One finished 2-epoch run under RUNS: its folder name and last training accuracy."""
    runs = repo_root / RUNS
    shutil.rmtree(runs, ignore_errors=True)
    command = ("train", "--epochs", "2", "--limit", "2000", "--data", str(mnist_dir))
    result = tfdock(*command, "--output-dir", RUNS, cwd=repo_root)
    assert result.returncode == 0, result.stderr[-3000:]
    (folder,) = runs.iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())
    return {"name": folder.name, "accuracy": metrics["epochs"][-1]["accuracy"]}


def _start(repo_root: Path, target: str, port: int, log: Path, **env: str) -> subprocess.Popen:
    """`make TARGET` in its own process group, as a terminal runs it, output to LOG."""
    return start(
        ["make", "-C", str(repo_root), target],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**env, "RUNS": RUNS, "TB_PORT": str(port)},
        start_new_session=True,
    )


def _wait_until_answering(process: subprocess.Popen, base: str, log: Path) -> list[str]:
    """Wait (240 s at most) until TensorBoard lists its runs; return them."""
    deadline = time.monotonic() + 240
    while True:
        try:
            return get_json(f"{base}/data/runs", timeout=5)
        except (urllib.error.URLError, OSError, ValueError):
            pass
        assert process.poll() is None, f"it exited with {process.returncode}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no answer within 240 s:\n{log.read_text()}"
        time.sleep(0.5)


def _browser_sees_the_scalars(base: str, finished: dict, name: str) -> None:
    """Debian's chromium renders the Time Series dashboard with the run, its tags and values."""
    dom, _ = open_in_chromium(f"{base}/#timeseries", ARTIFACTS / f"{name}-screenshot.png")
    assert dom.returncode == 0, dom.stderr[-2000:]
    (ARTIFACTS / f"{name}-dom.html").write_text(dom.stdout)
    assert f"{finished['name']}/tensorboard/train" in dom.stdout
    for tag in ("epoch_accuracy", "epoch_loss"):
        assert tag in dom.stdout, f"{tag} is not on the page"
    # The card's table shows the last value of each run's accuracy, as metrics.json has it.
    assert f"{finished['accuracy']:.3f}" in dom.stdout, "the run's last accuracy is not on the page"


def _stop(process: subprocess.Popen, log: Path) -> None:
    """Press Ctrl-C (SIGINT to the process group, as a terminal does); it ends within 60 s."""
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=60)
    assert "tfdock: TensorBoard stopped." in log.read_text()
    assert "Traceback" not in log.read_text()


def test_make_tensorboard_shows_a_finished_runs_scalars_in_a_browser(repo_root, finished_run):
    """`make tensorboard` prints its URL on 127.0.0.1; a browser there sees the run's scalars."""
    port = free_port()
    log = ARTIFACTS / "tensorboard-venv.log"
    process = _start(repo_root, "tensorboard", port, log)
    try:
        runs = _wait_until_answering(process, f"http://127.0.0.1:{port}", log)
        assert runs == [f"{finished_run['name']}/tensorboard/train"]
        assert f"tfdock: TensorBoard is starting; open http://127.0.0.1:{port}/" in log.read_text()
        _browser_sees_the_scalars(f"http://127.0.0.1:{port}", finished_run, "tensorboard-venv")
        _stop(process, log)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.container
def test_make_docker_tensorboard_publishes_the_runs_on_localhost(
    engine, repo_root, cpu_image, finished_run
):
    """`make docker-tensorboard` serves the workspace's runs from the image on 127.0.0.1 only."""
    port = free_port()
    log = ARTIFACTS / "tensorboard-container.log"
    process = _start(repo_root, "docker-tensorboard", port, log, ENGINE=engine)
    name = f"{cpu_image.split(':')[0].split('/')[-1]}-tensorboard-{port}"
    try:
        runs = _wait_until_answering(process, f"http://127.0.0.1:{port}", log)
        assert runs == [f"{finished_run['name']}/tensorboard/train"]
        assert f"open http://127.0.0.1:{port}/" in log.read_text()
        published = run(engine, "port", name).stdout
        assert published.split() == ["6006/tcp", "->", f"127.0.0.1:{port}"], published
        _browser_sees_the_scalars(f"http://127.0.0.1:{port}", finished_run, "tensorboard-image")
        _stop(process, log)
        left = run(engine, "ps", "-a", "--filter", f"name={name}", "--format", "{{.Names}}")
        assert left.stdout.strip() == "", "the container outlived Ctrl-C"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        run(engine, "rm", "-f", name, check=False)
