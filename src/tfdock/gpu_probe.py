"""Prove that TensorFlow computes on the GPU with the CUDA it was built for, or say why not.

`tfdock verify --require-gpu` runs this module as a child process
(`python -m tfdock.gpu_probe --device GPU:0`). The child fits the kit's model and
runs one convolution (cuDNN) under tf.device, then reports where the variables and
outputs live, the device's peak memory (where its allocator keeps that statistic: a
GPU's does, a CPU's need not), and the CUDA runtime and cuDNN libraries the process
really loaded (read from /proc/self/maps and asked for their versions through
ctypes). The parent judges that report against TensorFlow's build.

Only the sonames TensorFlow's build asks for count (libcudart.so.12, libcudnn.so.9):
a host's own CUDA toolkit of another major (a libcudart.so.13 registered with
ldconfig, say) is not TensorFlow's. A library of TensorFlow's soname mapped from
outside the lock's wheels is reported apart, as "foreign", and judged a problem.

A child process, because a native abort (a CHECK failure, a cuDNN that does not
load) kills the process that hits it: the parent survives, reads the child's
standard error through a pipe that keeps every line written before the abort, and
reports the signal and the last error line in one sentence. Nothing stays silent.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfdock._native_logs import is_noise
from tfdock._signals import signal_name
from tfdock.errors import TfdockError

TIMEOUT_ENV = "TFDOCK_GPU_PROBE_TIMEOUT"
# A GPU covered only by PTX JIT-compiles TensorFlow's kernels on first use; TensorFlow's
# 2.3.0 release notes say that can take over 30 minutes. An hour bounds a hung probe.
DEFAULT_TIMEOUT_S = 3600
PROBE_SAMPLES = 256
PROBE_EPOCHS = 2
# Library key -> (version function, where TensorFlow's RUNPATH finds it in the wheels).
# The wheel file's name is the soname TensorFlow's build loads.
LIBRARIES = {
    "cuda_runtime": ("cudaRuntimeGetVersion", "nvidia/cuda_runtime/lib/libcudart.so.12"),
    "cudnn": ("cudnnGetVersion", "nvidia/cudnn/lib/libcudnn.so.9"),
}
_GLOG_PREFIX = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ ")
_ERROR_LINE = re.compile(r"^[EF]\d{4} |Check failed|Error|error:|Aborted|Segmentation")


# --- the child: compute on the device, report what happened -------------------------------


def fit_on_device(device: str) -> dict[str, Any]:
    """Fit the kit's model and run a convolution under tf.device; report where they ran."""
    import keras
    import numpy as np
    import tensorflow as tf

    from tfdock.model import build_model, compile_model

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, PROBE_SAMPLES)
    images = rng.random((PROBE_SAMPLES, 28, 28), dtype=np.float32) * 0.1
    images[np.arange(PROBE_SAMPLES), labels, labels] = 1.0  # one bright pixel per class
    with tf.device(device):
        model = compile_model(build_model())
        history = model.fit(images, labels, epochs=PROBE_EPOCHS, batch_size=32, verbose=0)
        logits = model(images[:8], training=False)
        kernel = tf.ones((3, 3, 1, 1))
        convolved = tf.nn.conv2d(images[:8, :, :, None], kernel, strides=1, padding="SAME")
    return {
        "variables": sorted({v.value.device for v in model.variables}),
        "outputs": [logits.device, convolved.device],
        "peak_bytes": peak_memory(device),
        "losses": [float(x) for x in history.history["loss"]],
    }


def peak_memory(device: str) -> int | None:
    """Return the device's peak allocated bytes, or None where its allocator keeps no such count.

    A GPU's allocator always counts; a CPU's may not (TensorFlow raises "Allocator stats
    not available" on some hosts), and that is a fact to report, not a failed probe.
    """
    import tensorflow as tf

    try:
        return int(tf.config.experimental.get_memory_info(device)["peak"])
    except ValueError:
        return None


def library_versions(site_packages: Path | None = None) -> dict[str, Any]:
    """Return the version and file of the lock's CUDA runtime and cuDNN, as this process uses them.

    A wheel's library TensorFlow has mapped into the process is asked directly; one it
    has not loaded is read from the wheel where TensorFlow's RUNPATH would find it; a
    venv without the wheels (the CPU lock) has none. Files of the same soname mapped
    from elsewhere are listed under "foreign".
    """
    site_packages = site_packages or _site_packages()
    wheels = (site_packages / "nvidia").resolve()
    found: dict[str, Any] = {"foreign": []}
    for key, (function, wheel_path) in LIBRARIES.items():
        mapped = mapped_libraries(Path(wheel_path).name)
        found["foreign"] += [str(path) for path in mapped if not path.is_relative_to(wheels)]
        path, source = site_packages / wheel_path, "not loaded by TensorFlow; read from the wheel"
        if path.resolve() in mapped:
            source = "loaded by TensorFlow"
        if not path.is_file():
            found[key] = None
            continue
        found[key] = {"version": _ask_version(path, function), "path": str(path), "source": source}
    found["cuda_driver"] = _driver_version(found.get("cuda_runtime"))
    return found


def mapped_libraries(soname: str) -> list[Path]:
    """Return the resolved files named SONAME (libcudart.so.12, say) mapped into this process."""
    pattern = re.compile(rf"(/\S*/{re.escape(soname)})$")
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    matches = filter(None, map(pattern.search, maps.splitlines()))
    return sorted({Path(match.group(1)).resolve() for match in matches})


def _ask_version(path: Path, function: str) -> int:
    library = ctypes.CDLL(str(path))
    if function == "cudnnGetVersion":
        library.cudnnGetVersion.restype = ctypes.c_size_t
        return int(library.cudnnGetVersion())
    value = ctypes.c_int()
    status = getattr(library, function)(ctypes.byref(value))
    if status != 0:
        raise RuntimeError(f"{function} in {path} returned error {status}")
    return value.value


def _driver_version(runtime: dict[str, Any] | None) -> int | None:
    if runtime is None:
        return None
    library = ctypes.CDLL(runtime["path"])
    value = ctypes.c_int()
    return value.value if library.cudaDriverGetVersion(ctypes.byref(value)) == 0 else None


def _site_packages() -> Path:
    import tensorflow

    return Path(tensorflow.__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Run the probe on one device and print its report as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m tfdock.gpu_probe")
    parser.add_argument("--device", default="GPU:0")
    args = parser.parse_args(argv)
    report = {"device": args.device, "placement": fit_on_device(args.device)}
    report["libraries"] = library_versions()
    print(json.dumps(report))
    return 0


# --- the parent: run the child, never lose what it said --------------------------------------


@dataclass
class ProbeOutcome:
    """The child's JSON report, or one sentence saying why there is none."""

    report: dict[str, Any] | None
    problem: str | None = None


def run_probe(command: list[str], timeout: float) -> ProbeOutcome:
    """Run the probe command; turn a crash, a signal or a timeout into one sentence."""
    environment = {**os.environ, "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=environment, check=False
        )
    except subprocess.TimeoutExpired:
        return ProbeOutcome(
            None,
            f"the GPU probe did not finish within {timeout:g} s; a first run that JIT-compiles "
            f"TensorFlow's kernels can be slow: run it again, or allow more with {TIMEOUT_ENV}",
        )
    last_error = last_error_line(done.stderr)
    if done.returncode < 0:
        return ProbeOutcome(
            None, f"the GPU probe died of {signal_name(-done.returncode)}: {last_error}"
        )
    if done.returncode != 0:
        return ProbeOutcome(None, f"the GPU probe failed (exit {done.returncode}): {last_error}")
    try:
        return ProbeOutcome(json.loads(done.stdout.strip().splitlines()[-1]))
    except (IndexError, ValueError):
        return ProbeOutcome(None, f"the GPU probe printed no report: {last_error}")


def last_error_line(stderr: str) -> str:
    """Return the line of a child's standard error that best says what went wrong."""
    lines = [
        line.strip()
        for line in stderr.splitlines()
        if line.strip() and not is_noise((line + "\n").encode())
    ]
    errors = [line for line in lines if _ERROR_LINE.search(line)]
    fatal = [line for line in errors if line.startswith("F")]
    chosen = (fatal or errors or lines or ["it wrote nothing to standard error"])[-1]
    return _GLOG_PREFIX.sub("", chosen)[:400]


def probe_timeout() -> float:
    """Return the probe's time limit: $TFDOCK_GPU_PROBE_TIMEOUT seconds, else an hour."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise TfdockError(
            f"{TIMEOUT_ENV}={text!r} is not a number of seconds; set it to e.g. 7200, or unset it."
        )
    return seconds


# --- the verdicts: pure functions of the report and the build ---------------------------------


def cuda_runtime_release(version: int) -> str:
    """Decode cudaRuntimeGetVersion's number: 12050 -> '12.5' (CUDART_VERSION's encoding)."""
    return f"{version // 1000}.{version % 1000 // 10}"


def cudnn_release(version: int) -> str:
    """Decode cudnnGetVersion's number: 90300 -> '9.3.0' (cuDNN 9), 8907 -> '8.9.7' (cuDNN 8)."""
    if version >= 10000:
        return f"{version // 10000}.{version % 10000 // 100}.{version % 100}"
    return f"{version // 1000}.{version % 1000 // 100}.{version % 100}"


_FIX = (
    "reinstall from the GPU lock ('make setup', or rebuild the image with 'make image-gpu'), "
    "and drop LD_LIBRARY_PATH entries that point at another CUDA or cuDNN"
)


def placement_problem(placement: dict[str, Any], device: str) -> str | None:
    """Say what ran off the device, or that the device did no work; None when all is well."""
    places = [where.split("device:")[-1] for where in placement["variables"] + placement["outputs"]]
    elsewhere = [where for where in places if where != device]
    if elsewhere:
        return f"the smoke fit was placed on {device} but ran on {elsewhere[0]}"
    if placement["peak_bytes"] is not None and placement["peak_bytes"] <= 0:
        return f"{device} allocated no memory during the smoke fit, so it did not compute it"
    losses = placement["losses"]
    if not losses[-1] < losses[0]:
        return f"the smoke fit on {device} did not learn (loss {losses[0]:.3f} -> {losses[-1]:.3f})"
    return None


def describe_peak(placement: dict[str, Any]) -> str:
    """Say the device's peak memory, or that its allocator keeps no such count."""
    if placement["peak_bytes"] is None:
        return "peak memory not counted by its allocator"
    return f"peak {placement['peak_bytes'] / 2**20:.1f} MiB"


def libraries_problem(
    libraries: dict[str, Any], build: dict[str, Any], cudnn_pin: str | None
) -> str | None:
    """Compare the loaded CUDA runtime and cuDNN with TensorFlow's build; None when they agree."""
    runtime, cudnn = libraries.get("cuda_runtime"), libraries.get("cudnn")
    built_cuda = ".".join(str(build.get("cuda_version")).split(".")[:2])
    if libraries.get("foreign"):
        return f"TensorFlow loaded {libraries['foreign'][0]}, not the lock's wheel: {_FIX}"
    if runtime is None:
        return f"no CUDA runtime (libcudart.so.12) was found: {_FIX}"
    loaded = cuda_runtime_release(runtime["version"])
    if loaded != built_cuda:
        return (
            f"TensorFlow uses CUDA runtime {loaded} ({runtime['path']}) but was built with "
            f"CUDA {build.get('cuda_version')}: {_FIX}"
        )
    if cudnn is None:
        return f"no cuDNN (libcudnn.so.9) was found: {_FIX}"
    loaded_cudnn = cudnn_release(cudnn["version"])
    major = loaded_cudnn.split(".")[0]
    if major != str(build.get("cudnn_version")).split(".")[0]:
        return (
            f"TensorFlow uses cuDNN {loaded_cudnn} ({cudnn['path']}) but was built with cuDNN "
            f"{build.get('cudnn_version')}: {_FIX}"
        )
    if cudnn_pin and _release_tuple(loaded_cudnn)[:2] < _release_tuple(cudnn_pin)[:2]:
        return (
            f"TensorFlow uses cuDNN {loaded_cudnn} ({cudnn['path']}), older than the {cudnn_pin} "
            f"it was built against: {_FIX}"
        )
    return None


def describe_libraries(libraries: dict[str, Any], build: dict[str, Any]) -> str:
    """One line: the loaded versions next to the build's, and the driver's CUDA."""
    parts = []
    if libraries.get("cuda_runtime"):
        parts.append(
            f"CUDA runtime {cuda_runtime_release(libraries['cuda_runtime']['version'])} "
            f"(built with {build.get('cuda_version')})"
        )
    if libraries.get("cudnn"):
        parts.append(
            f"cuDNN {cudnn_release(libraries['cudnn']['version'])} "
            f"(built with {build.get('cudnn_version')})"
        )
    unloaded = [
        key for key in LIBRARIES if (libraries.get(key) or {}).get("source", "").startswith("not")
    ]
    if unloaded:
        parts.append(f"{' and '.join(unloaded)} read from the wheel, not loaded by TensorFlow")
    if libraries.get("cuda_driver"):
        parts.append(f"driver supports CUDA {cuda_runtime_release(libraries['cuda_driver'])}")
    return ", ".join(parts)


def _release_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


if __name__ == "__main__":
    sys.exit(main())
