"""`make doctor GPU=1` hands nvidia-smi's answer to the GPU preflight and prints its verdicts.

A recorded answer of a real H100 host stands in for the nvidia-smi this machine
lacks (tests/unit/fixtures/nvidia-smi/SOURCES.md); doctor.sh, the host's python3
and the preflight all run for real.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.commands import make

RECORDED = "tests/unit/fixtures/nvidia-smi"


def _doctor_with(repo_root, tmp_path, nvidia_smi: str):
    fake = tmp_path / "nvidia-smi"
    fake.write_text(nvidia_smi)
    fake.chmod(0o755)
    path = f"{tmp_path}:{os.environ['PATH']}"
    return make(repo_root, "-s", "doctor", "GPU=1", env={"ENGINE": "no-such-engine", "PATH": path})


@pytest.fixture(autouse=True)
def _no_real_driver():
    if shutil.which("nvidia-smi"):
        pytest.skip("this host has a real NVIDIA driver; it is not replaced by a recording")


def test_a_recorded_h100_passes_the_driver_and_warns_of_the_jit(repo_root, tmp_path):
    """590.48.01 is newer than CUDA 12.5's driver; Hopper runs TensorFlow's PTX, compiled at first use."""
    answer = repo_root / RECORDED / "h100-80gb-hbm3_590.48.01.csv"
    result = _doctor_with(repo_root, tmp_path, f"#!/bin/sh\ncat {answer}\n")
    lines = result.stdout.splitlines()
    assert (
        "ok    driver    NVIDIA driver 590.48.01, at least 555.42.06 (CUDA 12.5's own driver)"
        in lines
    )
    (gpu,) = [line for line in lines if line.startswith("warn  gpu0 ")]
    assert "NVIDIA H100 80GB HBM3, compute capability 9.0" in gpu
    assert "JIT-compiles them from compute_90 PTX" in gpu


def test_a_consumer_blackwell_fails_with_the_way_out(repo_root, tmp_path):
    """The issue's RTX 5090 (12.0) answer: the driver passes, the GPU fails and the fix is printed."""
    answer = "index, driver_version, name, compute_cap\n0, 580.95.05, NVIDIA GeForce RTX 5090, 12.0"
    result = _doctor_with(repo_root, tmp_path, f"#!/bin/sh\necho '{answer}'\n")
    assert result.returncode != 0
    lines = result.stdout.splitlines()
    assert any(line.startswith("ok    driver    NVIDIA driver 580.95.05") for line in lines)
    (index,) = [i for i, line in enumerate(lines) if line.startswith("FAIL  gpu0 ")]
    assert "TensorFlow 2.21's pip build does not run on compute capability 12.x" in lines[index]
    assert lines[index + 1].strip().startswith("fix: use the CPU targets (make docker-train")


def test_an_nvidia_smi_that_fails_is_one_fail_line_with_a_fix(repo_root, tmp_path):
    """An old nvidia-smi refuses compute_cap (recorded message), then fails outright: doctor says so."""
    refusal = repo_root / RECORDED / "compute-cap-not-a-valid-field.txt"
    script = (
        "#!/bin/sh\n"
        f'case "$*" in *compute_cap*) cat {refusal}; exit 2;; esac\n'
        "echo 'No devices were found'; exit 6\n"
    )
    result = _doctor_with(repo_root, tmp_path, script)
    assert result.returncode != 0
    lines = result.stdout.splitlines()
    index = lines.index("FAIL  gpu       nvidia-smi failed (exit 6): No devices were found")
    assert lines[index + 1].strip().startswith("fix: check that 'nvidia-smi' lists the GPU")
