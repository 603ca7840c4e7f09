"""`make gpu-check` accepts a GPU host, and says in one sentence why it cannot on this one."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from tests.commands import make, run, tfdock
from tfdock import gpu_acceptance
from tfdock.gpu_acceptance import compare_runs

RECORDED_H100 = "tests/unit/fixtures/nvidia-smi/h100-80gb-hbm3_590.48.01.csv"


def _gpu_check(repo_root, env):
    return make(repo_root, "-s", "gpu-check", env=env)


def test_gpu_check_without_a_driver_fails_first_in_one_sentence(repo_root):
    """No nvidia-smi: one sentence naming the missing driver and where to run it; nothing written."""
    if shutil.which("nvidia-smi"):
        pytest.skip("this host has an NVIDIA driver; the missing-driver sentence cannot be shown")
    before = set(repo_root.iterdir())
    result = _gpu_check(repo_root, {"ENGINE": "podman", "IMAGE": "tfdock-no-such-image"})
    assert result.returncode != 0
    (sentence,) = [line for line in result.stderr.splitlines() if line.startswith("gpu-check:")]
    assert sentence.startswith(
        "gpu-check: this host has no NVIDIA driver (nvidia-smi is not installed)"
    )
    assert "make doctor GPU=1" in sentence
    assert result.stdout == ""
    assert set(repo_root.iterdir()) == before, "a refused gpu-check leaves nothing behind"


@pytest.mark.container
def test_gpu_check_without_the_image_says_how_to_build_it(repo_root, tmp_path):
    """With a driver (a recorded H100's nvidia-smi stands in) but no GPU image: build it first."""
    if shutil.which("nvidia-smi"):
        pytest.skip("this host has a real NVIDIA driver; it is not replaced by a recording")
    engine = shutil.which("podman") or shutil.which("docker")
    if engine is None:
        pytest.skip("no container engine")
    fake = tmp_path / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\ncat {repo_root / RECORDED_H100}\n")
    fake.chmod(0o755)
    env = {
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "ENGINE": os.path.basename(engine),
        "IMAGE": "tfdock-no-such-image",
    }
    result = _gpu_check(repo_root, env)
    assert result.returncode != 0
    (sentence,) = [line for line in result.stderr.splitlines() if line.startswith("gpu-check:")]
    assert sentence == (
        "gpu-check: the image tfdock-no-such-image:gpu does not exist yet; build it with "
        f"'make image-gpu ENGINE={env['ENGINE']} IMAGE=tfdock-no-such-image'."
    )


def test_acceptance_stops_at_verify_without_a_gpu_and_reports_why(tmp_path):
    """Run for real on a CPU-only machine: verify --require-gpu fails, training is not attempted."""
    doctor = tmp_path / "doctor.txt"
    doctor.write_text("FAIL  gpu       no NVIDIA driver found (nvidia-smi is missing)\n")
    output = tmp_path / "check"
    result = run([sys.executable, "-m", "tfdock.gpu_acceptance", "--output", output,
                  "--doctor", doctor])  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads((output / "report.json").read_text())
    assert report["ok"] is False
    assert report["doctor"] == [doctor.read_text().strip()]
    (verify,) = report["stages"]
    assert verify["name"] == "verify" and verify["ok"] is False
    assert verify["detail"].startswith("gpu: no GPU is visible to TensorFlow")
    assert not (output / "train").exists()
    assert f"report in {output / 'report.json'}" in result.stdout


def _deterministic_run(mnist_dir, run_dir, seed):
    result = tfdock(
        *("train", "--deterministic", "--seed", str(seed), "--epochs", "1", "--limit", "2000"),
        *("--data", str(mnist_dir), "--run-dir", str(run_dir)),
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return run_dir


@pytest.mark.slow
def test_runs_are_compared_bit_for_bit(tmp_path, mnist_dir):
    """Two seeded deterministic runs compare equal, metrics and weights; another seed differs."""
    first = _deterministic_run(mnist_dir, tmp_path / "a", 42)
    second = _deterministic_run(mnist_dir, tmp_path / "b", 42)
    other = _deterministic_run(mnist_dir, tmp_path / "c", 43)
    assert compare_runs(first, second) is None
    difference = compare_runs(first, other)
    assert difference is not None and difference.startswith("test loss differs: ")


def test_acceptance_that_cannot_write_its_report_says_so(tmp_path):
    """An output folder that cannot be made is one sentence and exit 2, not a traceback."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run([sys.executable, "-m", "tfdock.gpu_acceptance", "--output", blocker / "check"])
    assert result.returncode == 2
    assert result.stderr == (
        f"gpu-check: cannot write the report under {blocker / 'check'} (Not a directory); "
        "run it from a folder you can write to.\n"
    )


def test_a_stage_past_its_bound_is_stopped_and_reported(tmp_path, monkeypatch, mnist_dir):
    """A stage's `tfdock` that outlives STAGE_TIMEOUT_S is killed and fails its stage in one sentence.

    With real data, `tfdock train` spends far more than the 1 s bound importing TensorFlow.
    """
    monkeypatch.setenv("TFDOCK_DATA", str(mnist_dir))
    monkeypatch.setattr(gpu_acceptance, "STAGE_TIMEOUT_S", 1)
    result = gpu_acceptance.stage_train(tmp_path, 1)
    assert result["ok"] is False
    assert result["detail"] == (
        "tfdock train failed (exit 124): `tfdock train` did not finish within 1 s and was stopped"
    )
