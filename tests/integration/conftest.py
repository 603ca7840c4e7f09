"""Fixtures shared by the container tests: the engine and the images, built once per test run
(once for all its processes: tests/workers.py)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests import commands
from tests.integration.containers import (
    COLD_BUILD,
    IMAGE,
    engine_or_skip,
    free_disk_gb,
    image_size_mb,
    install_step_cached,
    make,
    record_artifact,
)
from tests.workers import once

GPU_DISK_GB = 25


@pytest.fixture(scope="session")
def engine() -> str:
    return engine_or_skip()


@pytest.fixture(scope="session")
def cpu_image(engine, repo_root, tmp_path_factory) -> str:
    """Build IMAGE:cpu with `make image`, as a user would, once per test run."""
    built = once(tmp_path_factory, "cpu_image", lambda: _build_cpu_image(engine, repo_root))
    if built["cold_seconds"] is not None:
        COLD_BUILD["cpu"] = built["cold_seconds"]
    return built["image"]


def _build_cpu_image(engine: str, repo_root) -> dict:
    started = time.perf_counter()
    result = make(repo_root, "image", engine=engine, timeout=3600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    elapsed = time.perf_counter() - started
    cold_seconds = None
    if install_step_cached(result.stdout + result.stderr):
        record_artifact(
            "images.json", "cpu_build_seconds", f"{elapsed:.1f} (the lock layer was cached already)"
        )
    else:
        cold_seconds = elapsed
        record_artifact("images.json", "cpu_build_seconds", round(elapsed, 1))
    record_artifact("images.json", "cpu_image_mb", round(image_size_mb(engine, f"{IMAGE}:cpu")))
    return {"image": f"{IMAGE}:cpu", "cold_seconds": cold_seconds}


@pytest.fixture(scope="session")
def gpu_image(engine, repo_root, cpu_image, tmp_path_factory) -> str:
    """Build IMAGE:gpu with `make image-gpu`, when the disk can hold it, once per test run."""
    built = once(tmp_path_factory, "gpu_image", lambda: _build_gpu_image(engine, repo_root))
    if built["skip"]:
        pytest.skip(built["skip"])
    return built["image"]


def _build_gpu_image(engine: str, repo_root) -> dict:
    free = free_disk_gb(engine)
    if free < GPU_DISK_GB:
        return {
            "skip": f"only {free:.0f} GB free for the engine's storage; the GPU image needs "
            f"about {GPU_DISK_GB} GB, so it is not built here"
        }
    started = time.perf_counter()
    result = make(repo_root, "image-gpu", engine=engine, timeout=3600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    record_artifact("images.json", "gpu_build_seconds", round(time.perf_counter() - started, 1))
    record_artifact("images.json", "gpu_image_mb", round(image_size_mb(engine, f"{IMAGE}:gpu")))
    return {"image": f"{IMAGE}:gpu", "skip": None}


@pytest.fixture(scope="session")
def local_two_worker_run(mnist_dir, tmp_path_factory) -> dict:
    """`tfdock multiworker --workers 2 --deterministic` for 1 epoch of 20,000 examples in
    the venv, run once.

    The reference that the Slurm and Kubernetes jobs must match bit for bit: its run
    folder, its seconds, and the training flags to give them. A third of MNIST keeps
    the three trainings short (about 37 s each, against 100 s for the whole set on
    2 cores) and still reaches over 90% (MNIST's 97% is test_train_mnist's to prove).
    """
    flags = ["--deterministic", "--epochs", "1", "--seed", "7", "--batch-size", "32",
             "--limit", "20000"]  # fmt: skip

    def train() -> dict:
        output_dir = tmp_path_factory.mktemp("local-two-workers")
        started = time.perf_counter()
        result = commands.tfdock("multiworker", "--workers", "2", *flags, "--data",
                                 str(mnist_dir), "--output-dir", str(output_dir), timeout=1500)  # fmt: skip
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        (run_dir,) = (path for path in output_dir.iterdir() if path.is_dir())
        return {"run_dir": str(run_dir), "seconds": time.perf_counter() - started}

    trained = once(tmp_path_factory, "local_two_worker_run", train)
    return {"run_dir": Path(trained["run_dir"]), "seconds": trained["seconds"], "flags": flags}


@pytest.fixture(scope="session")
def slurm() -> None:
    """A Slurm cluster that answers, or skip saying how to make one."""
    answers = shutil.which("sbatch") and commands.run(["sinfo", "--noheader"], timeout=60)
    if not answers or answers.returncode != 0 or not answers.stdout.strip():
        pytest.skip("no Slurm cluster answers here; run scripts/slurm-host-setup.sh as root")
