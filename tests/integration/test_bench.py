"""The bench runs both sides end to end, prints its table and writes its figures as JSON."""

from __future__ import annotations

import json
import re
import statistics
import sys

import pytest

from tests.commands import run
from tfdock.lock import read_lock

SIDES = (
    ("quickstart baseline", "baseline"),
    ("tfdock train", "tfdock_train"),
    ("tfdock train --loop fit", "tfdock_train_fit_loop"),
)


def test_bench_reports_medians_and_their_ratios_in_json_and_table(repo_root, mnist_dir, tmp_path):
    """Two repeats of two epochs on 320 images: each figure is the runs' median, each ratio the
    medians' quotient, and the printed table says the same numbers as the JSON file."""
    result = run([sys.executable, repo_root / "scripts" / "bench.py", "--repeats=2", "--epochs=2",
                  "--limit=320", f"--data={mnist_dir}", f"--output-dir={tmp_path}"],
                 timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (figures_file,) = tmp_path.glob("bench-*.json")
    figures = json.loads(figures_file.read_text())
    assert figures["config"]["train_samples"] == 320
    assert figures["config"]["steps_per_epoch"] == 10
    for _, key in SIDES:
        side = figures[key]
        assert len(side["runs"]) == 2
        assert all(run["epoch_lines"] == 2 for run in side["runs"]), "Keras's epoch lines show"
        for figure in ("fit_seconds", "samples_per_second", "test_accuracy"):
            assert side[figure] == statistics.median(run[figure] for run in side["runs"])
    sps = {key: figures[key]["samples_per_second"] for _, key in SIDES}
    assert figures["speed_ratio"] == pytest.approx(sps["tfdock_train"] / sps["baseline"])
    assert figures["graph_loop_ratio"] == pytest.approx(
        sps["tfdock_train"] / sps["tfdock_train_fit_loop"]
    )
    assert {run["training_loop"] for run in figures["tfdock_train"]["runs"]} == {"graph"}
    assert {run["training_loop"] for run in figures["tfdock_train_fit_loop"]["runs"]} == {
        "keras-fit"
    }
    assert figures["verify"]["passed"] is True
    assert (
        figures["environment"]["tensorflow"]
        == read_lock(repo_root / "requirements.txt").pins["tensorflow"]
    )
    _assert_table_says(result.stdout, figures, figures_file)


def _assert_table_says(table: str, figures: dict, figures_file) -> None:
    """Each number the table prints is the JSON's, as rounded for printing."""
    for label, key in SIDES:
        side = figures[key]
        row = re.search(rf"^{re.escape(label)} +([\d.]+) +([\d,]+) +([\d.]+)   (.*)$", table, re.M)
        assert row, f"no row for {label}:\n{table}"
        assert row.group(1) == f"{side['fit_seconds']:.2f}"
        assert row.group(2) == f"{side['samples_per_second']:,.0f}"
        assert row.group(3) == f"{side['test_accuracy']:.4f}"
        assert row.group(4) == ", ".join(f"{run['fit_seconds']:.2f}" for run in side["runs"])
    assert f"speed ratio {figures['speed_ratio']:.2f}x samples/s" in table
    assert f"graph loop vs Keras fit loop {figures['graph_loop_ratio']:.2f}x samples/s" in table
    assert f"test accuracy {figures['accuracy_difference_pp']:+.2f} pp" in table
    median_import = figures["import_tensorflow_seconds"]["median"]
    assert re.search(rf"^import tensorflow +{median_import:.2f} s$", table, re.M)
    assert re.search(
        rf"^tfdock verify +{figures['verify']['seconds']:.2f} s \(PASS\)$", table, re.M
    )
    assert f"figures: {figures_file}" in table


def test_bench_refuses_missing_data_in_one_sentence(repo_root, tmp_path):
    """A wrong --data path stops the bench before any timing, with a one-line error."""
    result = run([sys.executable, repo_root / "scripts" / "bench.py",
                  f"--data={tmp_path / 'nowhere'}", f"--output-dir={tmp_path / 'out'}"])  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("bench: error: MNIST data not found at ")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
