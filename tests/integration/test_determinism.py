"""--deterministic: two runs on the same machine give the same numbers, bit for bit."""

from __future__ import annotations

import json

import pytest

from tests.commands import tfdock


def _train(mnist_dir, output_dir):
    result = tfdock("train", "--deterministic", "--seed", "7", "--epochs", "2", "--limit", "12000",
                    "--data", str(mnist_dir), "--output-dir", str(output_dir))  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run_dir,) = output_dir.iterdir()
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.slow
def test_deterministic_runs_give_identical_metrics(tmp_path, mnist_dir):
    """Per-epoch loss and accuracy and the test numbers are equal as floats, not just close."""
    first, second = (_train(mnist_dir, tmp_path / name) for name in ("a", "b"))
    numbers = lambda m: (  # noqa: E731
        [(e["loss"], e["accuracy"]) for e in m["epochs"]],
        (m["test"]["loss"], m["test"]["accuracy"]),
    )
    assert numbers(first) == numbers(second)
    assert first["config"]["deterministic"] is True
    assert first["test"]["accuracy"] >= 0.9
