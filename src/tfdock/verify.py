"""Prove that this environment is the one the lock describes, and that TensorFlow trains."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from tfdock._files import sha256_of
from tfdock.container import resync_hint, stale_container_message
from tfdock.errors import TfdockError
from tfdock.lock import (
    DEFAULT_LOCK,
    LOCK_ENV,
    PROJECT_NAME,
    environment_drift,
    installed_distributions,
    read_lock,
)

SMOKE_SAMPLES = 512
SMOKE_EPOCHS = 3
GPU_DEVICE = "GPU:0"
CUDNN_WHEEL = "nvidia-cudnn-cu12"
SMOKE_BATCH = 32
# As `make train` runs: many steps per call (here all 16 of an epoch in one).
SMOKE_STEPS_PER_EXECUTION = 100


@dataclass
class Check:
    """One line of the verify table."""

    name: str
    ok: bool
    detail: str
    seconds: float = 0.0


def default_lock_path() -> Path:
    """Return the lock this environment was made from: $TFDOCK_LOCK or ./requirements.txt."""
    return Path(os.environ.get(LOCK_ENV) or DEFAULT_LOCK)


def check_python() -> Check:
    """Check that the running Python is one the kit supports (its Requires-Python).

    The lock is compiled for that Python: `make lock` runs pip-compile with it,
    and `tfdock lock-check` recompiles with it when the package index answers.
    """
    from packaging.specifiers import SpecifierSet

    running = platform.python_version()
    try:
        supported = SpecifierSet(metadata.metadata(PROJECT_NAME)["Requires-Python"] or "")
    except metadata.PackageNotFoundError:
        return Check("python", False, f"the tfdock package is not installed: {resync_hint()}")
    if running not in supported:
        return Check(
            "python",
            False,
            f"running {running} ({sys.executable}), but tfdock and its lock need Python "
            f"{supported}: recreate the environment with such a Python",
        )
    return Check("python", True, f"{running} ({sys.executable})")


def check_packages(lock_path: Path) -> Check:
    """Check that installed distributions equal the lock's pins, name and version."""
    lock = read_lock(lock_path)
    drift = environment_drift(lock, installed_distributions())
    if drift.clean:
        here = sum(lock.applies(name) for name in lock.pins)  # markers may leave some out
        return Check("packages", True, f"{here} distributions match {lock_path}")
    lines = drift.lines()
    return Check("packages", False, "; ".join(lines) + f" -- {resync_hint()}")


def check_tensorflow() -> tuple[Check, dict[str, Any]]:
    """Import TensorFlow and report its versions, devices and CUDA build."""
    started = time.perf_counter()
    try:
        import keras
        import tensorflow as tf
    except Exception as exc:  # any import failure is the finding itself
        return Check("import tensorflow", False, f"{type(exc).__name__}: {exc}"), {}
    info = tensorflow_info(tf, keras)
    devices = ", ".join(info["devices"]) or "none"
    detail = f"tensorflow {tf.__version__}, keras {keras.__version__}; devices: {devices}"
    if info["cuda_build"]:
        detail += f"; built for CUDA {info['cuda_build']}, cuDNN {info['cudnn_build']}"
    return Check("import tensorflow", True, detail, time.perf_counter() - started), info


def tensorflow_info(tf: Any, keras: Any) -> dict[str, Any]:
    """Return TensorFlow's versions, visible devices and CUDA/cuDNN build numbers."""
    build = dict(tf.sysconfig.get_build_info())
    gpus = tf.config.list_physical_devices("GPU")
    gpu_names = []
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        gpu_names.append(f"{gpu.name} ({details.get('device_name', 'GPU')})")
    cpus = [d.name for d in tf.config.list_physical_devices("CPU")]
    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "devices": cpus + gpu_names,
        "gpus": gpu_names,
        "cuda_build": build.get("cuda_version"),
        "cudnn_build": build.get("cudnn_version"),
    }


def check_gpu(info: dict[str, Any], require_gpu: bool) -> Check:
    """Report the GPUs TensorFlow sees; fail only when one is required and none is visible."""
    if info.get("gpus"):
        return Check("gpu", True, ", ".join(info["gpus"]))
    if require_gpu:
        return Check(
            "gpu",
            False,
            "no GPU is visible to TensorFlow: on the host check "
            "`nvidia-smi`, and in a container run it with the GPU passed "
            "(`--gpus all`, or `--device nvidia.com/gpu=all` with podman)",
        )
    return Check("gpu", True, "none visible: CPU only")


def check_on_gpu(info: dict[str, Any], cudnn_pin: str | None) -> list[Check]:
    """Fit on GPU:0 in a child process; check where it ran and the CUDA libraries it loaded.

    The child (tfdock.gpu_probe) may die of a native abort; its last error line is
    reported then, so a broken GPU setup never fails silently.
    """
    from tfdock import gpu_probe

    started = time.perf_counter()
    command = [sys.executable, "-m", "tfdock.gpu_probe", "--device", GPU_DEVICE]
    outcome = gpu_probe.run_probe(command, gpu_probe.probe_timeout())
    seconds = time.perf_counter() - started
    if outcome.report is None:
        return [Check("gpu smoke fit", False, str(outcome.problem), seconds)]
    info["gpu_probe"] = outcome.report
    placement = outcome.report["placement"]
    misplaced = gpu_probe.placement_problem(placement, GPU_DEVICE)
    ran = (
        f"model and convolution on {GPU_DEVICE}, {gpu_probe.describe_peak(placement)}, "
        "loss " + " -> ".join(f"{loss:.3f}" for loss in placement["losses"])
    )
    build = {"cuda_version": info.get("cuda_build"), "cudnn_version": info.get("cudnn_build")}
    libraries = outcome.report["libraries"]
    mismatch = gpu_probe.libraries_problem(libraries, build, cudnn_pin)
    return [
        Check("gpu smoke fit", misplaced is None, misplaced or ran, seconds),
        Check(
            "cuda libraries",
            mismatch is None,
            mismatch or gpu_probe.describe_libraries(libraries, build),
        ),
    ]


def check_smoke_fits() -> list[Check]:
    """Train the kit's model briefly both ways it trains: Keras fit, and the graph loop.

    `make train` runs the graph loop, which drives the compiled Adam's own
    moment variables; a Keras upgrade that changes them breaks it and not fit.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, SMOKE_SAMPLES).astype(np.int32)
    # Each class gets its own bright pixel, so there is something to learn.
    images = rng.random((SMOKE_SAMPLES, 28, 28), dtype=np.float32) * 0.1
    images[np.arange(SMOKE_SAMPLES), labels, labels] = 1.0
    return [
        _smoke("smoke fit", "Keras fit", _fit_with_keras, images, labels),
        _smoke("smoke graph loop", "the graph loop", _fit_in_graph, images, labels),
    ]


def _smoke(name: str, loop: str, fit: Any, images: Any, labels: Any) -> Check:
    """Run one way of training; pass when it runs and the loss goes down."""
    import keras

    from tfdock.model import build_model, compile_model

    started = time.perf_counter()
    keras.utils.set_random_seed(0)
    model = compile_model(build_model(), steps_per_execution=SMOKE_STEPS_PER_EXECUTION)
    try:
        losses = fit(model, images, labels)
    except Exception as exc:  # a failure to train is the finding itself
        detail = f"{loop} failed: {type(exc).__name__}: {exc}".splitlines()[0]
        return Check(name, False, detail, time.perf_counter() - started)
    ok = losses[-1] < losses[0]
    detail = f"{loop}, {SMOKE_EPOCHS} epochs on {SMOKE_SAMPLES} synthetic images, loss " + (
        " -> ".join(f"{loss:.3f}" for loss in losses)
    )
    if not ok:
        detail += ": the loss did not go down"
    return Check(name, ok, detail, time.perf_counter() - started)


def _fit_with_keras(model: Any, images: Any, labels: Any) -> list[float]:
    history = model.fit(images, labels, epochs=SMOKE_EPOCHS, batch_size=SMOKE_BATCH, verbose=0)
    return history.history["loss"]


def _fit_in_graph(model: Any, images: Any, labels: Any) -> list[float]:
    from tfdock.graph_loop import fit_in_graph

    fit_in_graph(
        model,
        images,
        labels,
        epochs=SMOKE_EPOCHS,
        initial_epoch=0,
        batch_size=SMOKE_BATCH,
        seed=0,
        steps_per_execution=SMOKE_STEPS_PER_EXECUTION,
        callbacks=[],
        verbose=0,
    )
    return model.history.history["loss"]


def run_checks(lock_path: Path, require_gpu: bool = False) -> tuple[list[Check], dict[str, Any]]:
    """Run every check in order; a failed import skips the checks that need TensorFlow."""
    checks = [check_python(), check_packages(lock_path)]
    tf_check, info = check_tensorflow()
    checks.append(tf_check)
    if tf_check.ok:
        gpu = check_gpu(info, require_gpu)
        checks.append(gpu)
        if require_gpu and gpu.ok:
            checks += check_on_gpu(info, read_lock(lock_path).pins.get(CUDNN_WHEEL))
        checks += check_smoke_fits()
    return checks, info


def render_table(checks: list[Check]) -> str:
    """Format the checks as an aligned PASS/FAIL table."""
    width = max(len(c.name) for c in checks)
    rows = [f"{'PASS' if c.ok else 'FAIL'}  {c.name:<{width}}  {c.detail}" for c in checks]
    passed = sum(c.ok for c in checks)
    rows.append(f"{passed}/{len(checks)} checks passed")
    return "\n".join(rows)


def verify(lock_path: Path | None = None, require_gpu: bool = False, as_json: bool = False) -> int:
    """Run the checks, print the table (or JSON) and return the exit code."""
    if lock_path is None:
        stale = stale_container_message()
        if stale:
            raise TfdockError(stale)
    lock_path = lock_path or default_lock_path()
    if not lock_path.is_file():
        raise TfdockError(
            f"the lock {lock_path} does not exist; run from the repository root "
            f"or pass --lock (or set {LOCK_ENV}) to the requirements.txt this environment was made from."
        )
    started = time.perf_counter()
    checks, info = run_checks(lock_path, require_gpu)
    ok = all(c.ok for c in checks)
    if as_json:
        print(
            json.dumps(
                {
                    "ok": ok,
                    "lock": str(lock_path),
                    "lock_sha256": sha256_of(lock_path),
                    "seconds": time.perf_counter() - started,
                    "checks": [asdict(c) for c in checks],
                    "tensorflow": info,
                },
                indent=2,
            )
        )
    else:
        print(render_table(checks))
    return 0 if ok else 1


def environment_receipt(lock_path: Path | None = None) -> dict[str, Any]:
    """Describe the environment a result came from: versions, devices, lock hash, git commit."""
    import keras
    import numpy as np
    import tensorflow as tf

    lock_path = lock_path or default_lock_path()
    info = tensorflow_info(tf, keras)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "tensorflow": info["tensorflow"],
        "keras": info["keras"],
        "numpy": np.__version__,
        "devices": info["devices"],
        "cuda_build": info["cuda_build"],
        "cudnn_build": info["cudnn_build"],
        "lock": str(lock_path) if lock_path.is_file() else None,
        "lock_sha256": sha256_of(lock_path) if lock_path.is_file() else None,
        "git_commit": _git_commit(),
    }


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None
