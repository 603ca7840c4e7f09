"""gpu-check's report: a stage whose run left something unusable fails in its own sentence, and the report is still written.

This machine has no GPU, so the stages' `tfdock` commands are stood in for: verify
passes, and `tfdock train` exits 0 leaving in its run folder what each test says.
The report-writing under test is gpu_acceptance's own.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tfdock import gpu_acceptance


def _metrics(epochs: int) -> dict:
    return {
        "config": {"training_loop": "graph", "strategy_used": "OneDeviceStrategy"},
        "test": {"loss": 0.1, "accuracy": 0.97},
        "epochs": [{"loss": 0.2, "accuracy": 0.95}] * epochs,
        "fit_seconds": 1.0,
        "samples_per_second": 60000.0,
        "environment": {"devices": ["/physical_device:GPU:0"]},
    }


@pytest.fixture
def gpu_host(monkeypatch):
    """Verify passes; `tfdock train` exits 0 and calls the test's writer on its run folder."""
    writers = {}

    def train(*arguments):
        run_dir = arguments[arguments.index("--run-dir") + 1]
        writers["train"](Path(run_dir))
        return subprocess.CompletedProcess(["tfdock", *arguments], 0, "", "")

    def verify(output, epochs):
        return gpu_acceptance._stage("verify", True, "all 9 checks passed on GPU:0")

    monkeypatch.setattr(gpu_acceptance, "_tfdock", train)
    monkeypatch.setattr(gpu_acceptance, "stage_verify", verify)
    return writers


def _run(output, capsys):
    code = gpu_acceptance.main(["--output", str(output)])
    printed = capsys.readouterr()
    report = json.loads((output / "report.json").read_text())
    return code, printed, report


def test_a_train_that_wrote_no_metrics_fails_its_stage_in_the_report(tmp_path, gpu_host, capsys):
    """`tfdock train` exiting 0 without metrics.json fails the train stage saying so, not "cannot write the report"."""
    gpu_host["train"] = lambda run_dir: run_dir.mkdir(parents=True)
    code, printed, report = _run(tmp_path / "check", capsys)
    assert code == 1
    assert "cannot write the report" not in printed.err
    assert [stage["name"] for stage in report["stages"]] == ["verify", "train"]
    assert report["stages"][1]["detail"] == (
        f"`tfdock train` exited 0 but {tmp_path / 'check' / 'train' / 'metrics.json'} "
        "cannot be read (No such file or directory)"
    )


def test_runs_of_different_lengths_fail_determinism_in_the_report(tmp_path, gpu_host, capsys):
    """Two deterministic runs with different epoch counts fail the determinism stage by name, and the report is written."""

    def write_metrics(run_dir):
        run_dir.mkdir(parents=True)
        epochs = 2 if run_dir.name == "deterministic-b" else 1
        (run_dir / "metrics.json").write_text(json.dumps(_metrics(epochs)))

    gpu_host["train"] = write_metrics
    code, printed, report = _run(tmp_path / "check", capsys)
    assert code == 1
    determinism = report["stages"][2]
    assert (determinism["name"], determinism["ok"]) == ("determinism", False)
    assert determinism["detail"] == "deterministic-a ran 1 epoch(s) but deterministic-b ran 2"
    assert "gpu-check: failed; report in" in printed.out


def test_runs_without_a_model_fail_determinism_in_the_report(tmp_path, gpu_host, capsys):
    """Two deterministic runs that exited 0 without model.keras fail determinism naming the file, and the report is written."""

    def write_metrics(run_dir):
        run_dir.mkdir(parents=True)
        (run_dir / "metrics.json").write_text(json.dumps(_metrics(1)))

    gpu_host["train"] = write_metrics
    code, _, report = _run(tmp_path / "check", capsys)
    assert code == 1
    assert report["stages"][2]["detail"] == (
        f"`tfdock train` exited 0 but wrote no {tmp_path / 'check' / 'deterministic-a' / 'model.keras'}"
    )
