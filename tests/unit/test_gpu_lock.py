"""The GPU lock installs the CUDA and cuDNN that the locked TensorFlow was built with.

TensorFlow's wheel records its build in tf.sysconfig.get_build_info(), on any machine,
GPU or not; so a `make upgrade` or `make lock` that drifts the CUDA wheels away from
the build fails here, in CI, without a GPU.
"""

from __future__ import annotations

import pytest

from tfdock import gpu_preflight
from tfdock.lock import read_lock


@pytest.fixture(scope="module")
def build_info() -> dict:
    tf = pytest.importorskip("tensorflow")
    info = dict(tf.sysconfig.get_build_info())
    if not info.get("is_cuda_build"):
        # PyPI's aarch64 TensorFlow is a CPU-only build (the arm64 image and dev container);
        # the GPU lock is linux/amd64's, and x86_64 machines (CI among them) check it.
        pytest.skip(
            "this TensorFlow wheel is a CPU-only build (aarch64); x86_64 checks the GPU lock"
        )
    return info


@pytest.fixture(scope="module")
def gpu_pins(repo_root) -> dict[str, str]:
    return read_lock(repo_root / "requirements-gpu.txt").pins


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def test_gpu_lock_cuda_runtime_is_the_builds_cuda(build_info, gpu_pins):
    """The locked CUDA runtime wheel has the major.minor TensorFlow was compiled with."""
    assert build_info["is_cuda_build"]
    assert _major_minor(gpu_pins["nvidia-cuda-runtime-cu12"]) == _major_minor(
        build_info["cuda_version"]
    ), "requirements-gpu.in must pin the CUDA wheels to tf.sysconfig.get_build_info()"


def test_gpu_lock_cudnn_major_is_the_builds_cudnn(build_info, gpu_pins):
    """The locked cuDNN wheel has the major version TensorFlow was compiled with."""
    assert gpu_pins["nvidia-cudnn-cu12"].split(".")[0] == build_info["cudnn_version"].split(".")[0]


@pytest.mark.parametrize(
    "wheel",
    [
        "nvidia-cublas-cu12",
        "nvidia-cuda-cupti-cu12",
        "nvidia-cuda-nvcc-cu12",
        "nvidia-cuda-nvrtc-cu12",
        "nvidia-nvjitlink-cu12",
    ],
)
def test_gpu_lock_cuda_toolkit_wheels_share_the_builds_release(build_info, gpu_pins, wheel):
    """The toolkit wheels versioned like CUDA itself (12.5.x) come from the same release."""
    assert _major_minor(gpu_pins[wheel]) == _major_minor(build_info["cuda_version"])


def test_doctor_knows_the_builds_kernels_and_the_locked_cuda(build_info, gpu_pins):
    """Doctor's idea of TensorFlow's kernels equals the wheel's, and its table has the lock's CUDA."""
    built = [f"sm_{cap.replace('.', '')}" for cap in gpu_preflight.SASS_TARGETS]
    built.append(f"compute_{gpu_preflight.PTX_TARGET.replace('.', '')}")
    assert built == list(build_info["cuda_compute_capabilities"])
    assert _major_minor(gpu_pins["nvidia-cuda-runtime-cu12"]) in gpu_preflight.TOOLKIT_DRIVER
