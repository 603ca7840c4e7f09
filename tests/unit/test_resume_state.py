"""A run's backup (state.json and the weights it names) is untrusted input when a run resumes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.commands import one_error_line, tfdock

EPOCH = {"epoch": 1, "loss": 0.9, "accuracy": 0.7, "seconds": 1.5}


@pytest.fixture
def unfinished_run(tmp_path, mnist_dir):
    """A run of 2 epochs on the real MNIST that stopped after epoch 1."""
    from tfdock.data import load_mnist
    from tfdock.train import TrainConfig, run_record

    run_dir = tmp_path / "run"
    (run_dir / "backup").mkdir(parents=True)
    config = TrainConfig(epochs=2, limit=2000, data=str(mnist_dir))
    (run_dir / "config.json").write_text(json.dumps(run_record(config, load_mnist(mnist_dir))))
    (run_dir / "backup" / "epoch-0001.weights.npz").write_bytes(b"garbage")
    _write_state(run_dir, {"completed_epochs": 1, "weights": "epoch-0001.weights.npz"})
    return run_dir


def _write_state(run_dir, changes):
    state = {"completed_epochs": 1, "weights": "epoch-0001.weights.npz", "epochs": [EPOCH]}
    (run_dir / "backup" / "state.json").write_text(json.dumps({**state, **changes}))


def _snapshot(run_dir):
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


def _resume_refused(run_dir):
    """Resume ``run_dir``; assert one sentence and an unchanged folder; return the sentence."""
    before = _snapshot(run_dir)
    line = one_error_line(tfdock("train", "--resume", str(run_dir)))
    after = _snapshot(run_dir)
    after.pop(".tfdock.lock", None)  # the refused resume held the folder while it looked
    assert after == before, "a refused resume changes nothing"
    return line


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        ({"epochs": [{**EPOCH, "loss": "a"}]}, "has epoch 1's loss as 'a', not a number"),
        ({"epochs": [{**EPOCH, "epoch": "x"}]}, "has epoch entry 1 as"),
        ({"epochs": "all of them"}, 'is not a tfdock backup state (it has no "epochs" list)'),
        (
            {"epochs": [{**EPOCH, "epoch": n} for n in range(1, 7)]},
            "records 6 finished epochs, but the run has 2",
        ),
        (
            {"weights": "../../elsewhere/x.weights.npz"},
            "names weights "
            "'../../elsewhere/x.weights.npz', not this backup's epoch-0001.weights.npz",
        ),
    ],
    ids=[
        "loss-not-a-number",
        "epoch-not-a-number",
        "epochs-not-a-list",
        "more-than-configured",
        "weights-outside-the-backup",
    ],
)
def test_hand_edited_state_is_refused_in_one_sentence(unfinished_run, state, problem):
    """A state.json tfdock did not write this way is named and refused; nothing is written."""
    elsewhere = unfinished_run.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.weights.npz").write_bytes(b"not yours")
    _write_state(unfinished_run, state)
    line = _resume_refused(unfinished_run)
    assert f"{unfinished_run / 'backup' / 'state.json'} {problem}" in line
    assert line.endswith("it was edited or damaged: restore it, or start a new run.")


def test_garbage_weights_are_refused_in_one_sentence(unfinished_run):
    """A backup weights file that is not an npz is named as damaged, without a traceback."""
    line = _resume_refused(unfinished_run)
    weights = unfinished_run / "backup" / "epoch-0001.weights.npz"
    assert f"{weights} is not this run's backup (it is not a NumPy .npz archive)" in line


def test_weights_of_another_model_are_refused_in_one_sentence(unfinished_run):
    """An npz whose arrays do not fit the model names the first that does not fit."""
    weights = unfinished_run / "backup" / "epoch-0001.weights.npz"
    arrays = {f"weight_{i}": np.zeros(3, np.float32) for i in range(4)}
    arrays.update({f"optimizer_{i}": np.zeros(3, np.float32) for i in range(10)})
    with open(weights, "wb") as handle:
        np.savez(handle, **arrays)
    line = _resume_refused(unfinished_run)
    assert f"{weights} is not this run's backup (mnist_quickstart/dense/kernel is float32[3])" in (
        line
    )
