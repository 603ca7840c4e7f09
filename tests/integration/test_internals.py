"""A Keras or TensorFlow that moved an internal tfdock uses gets Keras fit and one line, or one sentence.

Each test runs the real `tfdock train` in a child process that hides one
internal from tfdock's code while Keras and TensorFlow still find it
(hide_internals.py), as after an upgrade that renamed it.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.commands import run, start
from tfdock.launch import free_loopback_ports

# Real training (tiny, but TensorFlow's start-up in each child): the slow tier, not tests/unit.
pytestmark = pytest.mark.slow

HIDER = Path(__file__).with_name("hide_internals.py")
GRAPH_LOOP_INTERNALS = ["Adam._momentums", "Adam._velocities", "Dropout.seed_generator"]
TINY = ["--limit", "64", "--steps-per-execution", "1"]
TIMEOUT = 300


def _tfdock_hiding(args, hide=(), die_after_epoch=None):
    """Run ``tfdock ARGS`` with the internals ``hide`` hidden; return the finished process."""
    options = [word for name in hide for word in ("--hide", name)]
    if die_after_epoch is not None:
        options += ["--die-after-epoch", str(die_after_epoch)]
    return run([sys.executable, HIDER, *options, "--", *args], timeout=TIMEOUT)


def _start_worker(args, hide, ports, index):
    """Start task ``index`` of a multi-worker job on loopback ``ports``, ``hide`` hidden."""
    tf_config = {
        "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
        "task": {"type": "worker", "index": index},
    }
    env = {"TF_CONFIG": json.dumps(tf_config), "TFDOCK_STARTUP_TIMEOUT": "120"}
    command = [sys.executable, HIDER, "--hide", hide, "--", "train", *args]
    return start([*command, "--strategy", "multi-worker"], env=env)


def _run_job(args, hide, workers=2) -> list[subprocess.CompletedProcess]:
    """Run a local multi-worker job, every task with ``hide`` hidden; return each task's result."""
    ports = free_loopback_ports(workers)
    processes = [_start_worker(args, hide, ports, index) for index in range(workers)]
    try:
        return [_finished(process) for process in processes]
    finally:
        for process in processes:
            process.kill()
            process.wait()


def _finished(process) -> subprocess.CompletedProcess:
    """Wait up to TIMEOUT s for PROCESS to end; return it as subprocess.run would."""
    out, err = process.communicate(timeout=TIMEOUT)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _said_once(result, code: int, stream: str, start: str, pattern: str) -> str:
    """Assert RESULT exited CODE without a traceback and said PATTERN once; return that line.

    The line is the only one of its STREAM ("stdout" or "stderr") that starts with START,
    and PATTERN matches all of it.
    """
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    text = getattr(result, stream)
    lines = [line for line in text.splitlines() if line.startswith(start)]
    assert len(lines) == 1, text
    assert re.fullmatch(pattern, lines[0]), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def stopped_graph_run(tmp_path_factory, mnist_dir):
    """A 2-epoch run that trained epoch 1 in the graph loop and then died."""
    run_dir = tmp_path_factory.mktemp("stopped") / "run"
    args = ["train", "--data", str(mnist_dir), "--epochs", "2", *TINY, "--run-dir", str(run_dir)]
    result = _tfdock_hiding(args, die_after_epoch=1)
    assert result.returncode == 137, result.stdout + result.stderr
    assert json.loads((run_dir / "config.json").read_text())["training_loop"] == "graph"
    assert json.loads((run_dir / "backup" / "state.json").read_text())["completed_epochs"] == 1
    return run_dir


@pytest.mark.parametrize("hidden", GRAPH_LOOP_INTERNALS)
def test_a_new_run_without_what_the_graph_loop_needs_trains_with_keras_fit(
    hidden, tmp_path, mnist_dir
):
    """A new run whose Keras lacks a graph-loop internal trains with fit, saying why on one line."""
    run_dir = tmp_path / "run"
    args = ["train", "--data", str(mnist_dir), "--epochs", "1", *TINY, "--run-dir", str(run_dir)]
    result = _tfdock_hiding(args, hide=[hidden])

    _said_once(
        result, 0, "stdout", "tfdock: Keras ",
        rf"tfdock: Keras \S+ has no usable {re.escape(hidden)}, so the graph loop is off: "
        r"training with Keras fit, as --loop fit does \(a resumed run then comes close to "
        r"the uninterrupted one, not bit for bit\)\.",
    )  # fmt: skip
    assert json.loads((run_dir / "config.json").read_text())["training_loop"] == "keras-fit"
    assert (run_dir / "metrics.json").is_file()


@pytest.mark.parametrize("hidden", ["Adam._momentums", "Dropout.seed_generator"])
def test_resuming_a_graph_loop_run_without_what_it_needs_is_one_sentence(
    hidden, stopped_graph_run, tmp_path
):
    """Resuming a graph-loop run whose Keras lacks an internal is refused; the named command finishes it."""
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_graph_run, run_dir)
    state = (run_dir / "backup" / "state.json").read_bytes()

    refused = _tfdock_hiding(["train", "--resume", str(run_dir)], hide=[hidden])

    sentence = _said_once(
        refused, 2, "stderr", "tfdock: error: ",
        rf"tfdock: error: {re.escape(str(run_dir))} ran its first 1 epoch in tfdock's graph "
        rf"loop, and Keras \S+ has no usable {re.escape(hidden)}, which that loop needs, so the "
        r"run cannot resume bit for bit here; resume it with the Keras version that "
        r"requirements.txt pins, or finish it with Keras fit \(close, not bit for bit\): "
        r"`tfdock train --resume \S+ --loop fit`\.",
    )  # fmt: skip
    assert (run_dir / "backup" / "state.json").read_bytes() == state, "nothing trained"

    command = shlex.split(re.search(r"`tfdock (.+)`", sentence).group(1))
    finished = _tfdock_hiding(command, hide=[hidden])
    assert finished.returncode == 0, finished.stdout + finished.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [epoch["epoch"] for epoch in metrics["epochs"]] == [1, 2]
    assert metrics["resumed_after_epoch"] == 1


@pytest.mark.parametrize(
    ("hidden", "change"),
    [
        ("Adam._momentums", "copied"),
        ("Adam._velocities", "shorter"),
        ("Dropout.seed_generator", "float"),
    ],
)
def test_a_graph_loop_internal_of_another_shape_counts_as_missing(hidden, change):
    """Moments outside the backed-up variables, a list too short, a float seed: each is missing."""
    keras = pytest.importorskip("keras")
    from tfdock.graph_loop import missing_internal
    from tfdock.model import build_model, compile_model

    model = compile_model(build_model())
    assert missing_internal(model) is None
    optimizer = model.optimizer
    if change == "copied":  # trained, but not among optimizer.variables: not in the backup
        copies = [keras.Variable(v.numpy()) for v in optimizer._momentums]
        object.__setattr__(optimizer, "_momentums", copies)  # past Keras's variable tracking
    elif change == "shorter":
        optimizer._velocities = optimizer._velocities[:-1]
    else:
        (dropout,) = [layer for layer in model.layers if "seed" in layer.get_config()]
        dropout.seed_generator.state = keras.Variable([0.0, 0.0], trainable=False)

    assert missing_internal(model).name == hidden


def test_multi_worker_without_the_captured_strategy_is_one_sentence(tmp_path, mnist_dir):
    """A Keras without Model._distribute_strategy: every worker says so in one sentence, exit 2."""
    args = ["--data", str(mnist_dir), "--epochs", "1", *TINY, "--run-dir", str(tmp_path / "run")]
    for task in _run_job(args, "Model._distribute_strategy"):
        _said_once(
            task, 2, "stderr", "tfdock: error: ",
            r"tfdock: error: Keras \S+ has no usable Model._distribute_strategy, which tfdock "
            r"clears so that Keras fit can start under MultiWorkerMirroredStrategy "
            r"\(tensorflow/tensorflow#72388\); install the Keras version that requirements.txt "
            r"pins, or train in one process \(`tfdock train` without TF_CONFIG\)\.",
        )  # fmt: skip
    assert not (tmp_path / "run" / "backup").exists(), "nothing trained"


def test_multi_worker_without_the_coordination_config_trains_after_one_line(tmp_path, mnist_dir):
    """A TensorFlow whose coordination service cannot be configured: the job trains, each task says so."""
    run_dir = tmp_path / "run"
    args = ["--data", str(mnist_dir), "--epochs", "1", *TINY, "--run-dir", str(run_dir)]
    for index, task in enumerate(_run_job(args, "Context.configure_coordination_service")):
        _said_once(
            task, 0, "stdout", "tfdock: TensorFlow ",
            rf"tfdock: TensorFlow \S+ has no usable Context.configure_coordination_service, so "
            rf"worker {index} cannot limit its wait for a task that answers but never joins to "
            r"120 s \(TFDOCK_STARTUP_TIMEOUT\): TensorFlow's own limit applies, and Ctrl-C stops "
            r"the wait\.",
        )  # fmt: skip
    assert (run_dir / "metrics.json").is_file()
