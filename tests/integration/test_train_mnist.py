"""`make train` on the real MNIST reaches the quickstart's accuracy and leaves its artifacts."""

from __future__ import annotations

import hashlib
import json
import platform
import re

import pytest

from tests.commands import make
from tfdock.data import IDX_FILES
from tfdock.lock import read_lock


@pytest.mark.slow
def test_make_train_reaches_97_percent_and_writes_artifacts(repo_root, mnist_dir, tmp_path):
    """Five epochs on the 60,000 images give >= 97% test accuracy and a complete run folder."""
    result = make(repo_root, "train", f"RUNS={tmp_path}", env={"TFDOCK_DATA": str(mnist_dir)},
                  timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(re.findall(r"^Epoch \d/5$", result.stdout, re.MULTILINE)) == 5
    (run_dir,) = tmp_path.iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.97
    assert len(metrics["epochs"]) == 5
    assert metrics["epochs"][-1]["loss"] < metrics["epochs"][0]["loss"]
    receipt = metrics["environment"]
    assert receipt["tensorflow"] == read_lock(repo_root / "requirements.txt").pins["tensorflow"]
    assert receipt["python"] == platform.python_version()
    assert len(receipt["lock_sha256"]) == 64
    data = hashlib.sha256()
    for name, _ in IDX_FILES.values():
        data.update((mnist_dir / name).read_bytes())
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data_sha256"] == metrics["config"]["data_sha256"] == data.hexdigest()
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    import keras

    model = keras.saving.load_model(run_dir / "model.keras")
    assert model.count_params() == 101_770
    assert not list(run_dir.glob(".*")), "no temporary or lock files are left behind"
