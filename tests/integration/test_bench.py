"""The bench runs both sides end to end, prints its table and writes its figures as JSON."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_on_a_tiny_slice_prints_table_and_writes_json(repo_root, mnist_dir, tmp_path):
    """One repeat of two epochs on 320 images gives the table, the ratios and a complete JSON file."""
    result = subprocess.run(
        [
            sys.executable,
            str(repo_root / "scripts" / "bench.py"),
            "--repeats=1",
            "--epochs=2",
            "--limit=320",
            f"--data={mnist_dir}",
            f"--output-dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (figures_file,) = tmp_path.glob("bench-*.json")
    figures = json.loads(figures_file.read_text())
    assert figures["config"]["train_samples"] == 320
    assert figures["config"]["steps_per_epoch"] == 10
    for side in ("baseline", "tfdock_train", "tfdock_train_fit_loop"):
        (run,) = figures[side]["runs"]
        assert run["fit_seconds"] > 0
        assert 0 <= run["test_accuracy"] <= 1
        assert run["epoch_lines"] == 2, f"{side} shows Keras's per-epoch progress"
    assert figures["tfdock_train"]["runs"][0]["training_loop"] == "graph"
    assert figures["tfdock_train_fit_loop"]["runs"][0]["training_loop"] == "keras-fit"
    assert figures["speed_ratio"] > 0 and figures["graph_loop_ratio"] > 0
    assert figures["verify"]["passed"] is True
    assert figures["import_tensorflow_seconds"]["median"] > 0
    assert figures["environment"]["tensorflow"].startswith("2.21")
    table = result.stdout
    assert "quickstart baseline" in table and "tfdock train" in table
    assert "speed ratio" in table and "import tensorflow" in table
    assert "tfdock train --loop fit" in table and "graph loop vs Keras fit loop" in table
    assert "tfdock verify" in table and "make setup (no-op)" in table
    assert str(figures_file) in table


def test_bench_refuses_missing_data_in_one_sentence(repo_root, tmp_path):
    """A wrong --data path stops the bench before any timing, with a one-line error."""
    result = subprocess.run(
        [
            sys.executable,
            str(repo_root / "scripts" / "bench.py"),
            f"--data={tmp_path / 'nowhere'}",
            f"--output-dir={tmp_path / 'out'}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("bench: error: MNIST data not found at ")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
