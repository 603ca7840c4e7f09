"""`make doctor` checks the host for the container targets and says how to fix what fails."""

from __future__ import annotations

import platform
import re
import shutil

import pytest

from tests.commands import make
from tests.integration.containers import engine_or_skip


def _doctor(repo_root, *args, engine, **env):
    return make(repo_root, "-s", "doctor", *args, env={"ENGINE": engine, **env})


def test_missing_engine_fails_with_a_fix(repo_root):
    """An engine that is not installed is one FAIL line followed by its fix, and exit non-zero."""
    result = _doctor(repo_root, engine="no-such-engine")
    assert result.returncode != 0
    assert "FAIL  engine    'no-such-engine' is not installed" in result.stdout
    assert "fix: install Docker" in result.stdout
    # The architecture check passes (x86_64) or warns (aarch64); either way it names the machine.
    assert re.search(rf"^(ok  |warn)  cpu       {platform.machine()}", result.stdout, re.M)


def test_gpu_checks_without_a_driver_fail_with_a_fix(repo_root):
    """GPU=1 on a host without the NVIDIA driver fails the gpu check and says what to install."""
    if shutil.which("nvidia-smi"):
        pytest.skip("this host has an NVIDIA driver; the missing-driver message cannot be shown")
    result = _doctor(repo_root, "GPU=1", engine="no-such-engine")
    assert result.returncode != 0
    assert "FAIL  gpu       no NVIDIA driver found (nvidia-smi is missing)" in result.stdout
    assert "fix: install the NVIDIA driver" in result.stdout


def test_arm64_host_is_told_its_doors_and_why_no_gpu_image(repo_root):
    """On an aarch64 host doctor names the doors it has; GPU=1 fails saying the GPU image is amd64 only."""
    result = _doctor(repo_root, engine="no-such-engine", TFDOCK_HOST_ARCH="aarch64")
    assert (
        "ok    cpu       aarch64: the venv, the CPU image and the CPU dev container (built or "
        "pulled); no GPU image, as PyPI's aarch64 TensorFlow wheels are CPU-only"
    ) in result.stdout
    assert "FAIL  gpu" not in result.stdout
    gpu = _doctor(repo_root, "GPU=1", engine="no-such-engine", TFDOCK_HOST_ARCH="aarch64")
    assert gpu.returncode != 0
    assert "FAIL  gpu       the GPU image is linux/amd64 only" in gpu.stdout
    assert "fix: use the CPU targets here, and an x86_64 machine" in gpu.stdout


def test_x86_64_host_has_every_door(repo_root):
    """On an x86_64 host doctor says every door is open, the GPU image included."""
    result = _doctor(repo_root, engine="no-such-engine", TFDOCK_HOST_ARCH="x86_64")
    assert "ok    cpu       x86_64: every door (venv, CPU and GPU images" in result.stdout


@pytest.mark.container
def test_doctor_passes_with_a_working_engine(repo_root):
    """With an engine that answers and room on disk, doctor passes."""
    engine = engine_or_skip()
    result = _doctor(repo_root, engine=engine)
    assert result.returncode == 0, result.stdout
    assert f"ok    engine    {engine}" in result.stdout
    assert "doctor: the host is ready" in result.stdout
