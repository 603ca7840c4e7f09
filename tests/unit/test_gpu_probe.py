"""`tfdock verify --require-gpu` judges where the smoke fit ran and which CUDA it loaded.

The version numbers are the libraries' own answers: cudaRuntimeGetVersion() of the
locked nvidia-cuda-runtime-cu12 12.5.82 returns 12050 and cudnnGetVersion() of
nvidia-cudnn-cu12 9.3.0.75 returns 90300 (asked through ctypes on this machine; the
GPU image test asks them again). 12090 is CUDART_VERSION of CUDA 12.9, the runtime of
the first GPU lock; 9.1.0 is the cuDNN of a real mismatch report ("Loaded runtime
CuDNN library: 9.1.0 but source was compiled with: 9.8.0").
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tfdock import gpu_probe
from tfdock.errors import TfdockError

BUILD = {"cuda_version": "12.5.1", "cudnn_version": "9"}  # tf.sysconfig.get_build_info()
PIN = "9.3.0.75"  # requirements-gpu.txt's nvidia-cudnn-cu12


def _libraries(runtime: int | None, cudnn: int | None) -> dict:
    def entry(version, path):
        return (
            None
            if version is None
            else {"version": version, "path": path, "source": "loaded by TensorFlow"}
        )

    return {
        "cuda_runtime": entry(
            runtime,
            "/opt/venv/lib/python3.11/site-packages/nvidia/cuda_runtime/lib/libcudart.so.12",
        ),
        "cudnn": entry(
            cudnn, "/opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib/libcudnn.so.9"
        ),
        "cuda_driver": 12080,
        "foreign": [],
    }


@pytest.mark.parametrize(
    ("version", "release"), [(12050, "12.5"), (12090, "12.9"), (11080, "11.8")]
)
def test_cuda_runtime_versions_decode_like_cudart_version(version, release):
    """cudaRuntimeGetVersion's number is major * 1000 + minor * 10."""
    assert gpu_probe.cuda_runtime_release(version) == release


@pytest.mark.parametrize(
    ("version", "release"), [(90300, "9.3.0"), (92800, "9.28.0"), (8907, "8.9.7")]
)
def test_cudnn_versions_decode_for_both_encodings(version, release):
    """cuDNN 9 encodes major * 10000 + minor * 100 + patch; cuDNN 8 major * 1000 + minor * 100 + patch."""
    assert gpu_probe.cudnn_release(version) == release


def test_the_locked_libraries_agree_with_the_build():
    """CUDA 12.5 and cuDNN 9.3.0 against a 12.5.1 / cuDNN 9 build: no problem, both versions shown."""
    libraries = _libraries(12050, 90300)
    assert gpu_probe.libraries_problem(libraries, BUILD, PIN) is None
    assert gpu_probe.describe_libraries(libraries, BUILD) == (
        "CUDA runtime 12.5 (built with 12.5.1), cuDNN 9.3.0 (built with 9), "
        "driver supports CUDA 12.8"
    )


@pytest.mark.parametrize(
    ("runtime", "cudnn", "words"),
    [
        (12090, 90300, "uses CUDA runtime 12.9 "),
        (None, 90300, "no CUDA runtime (libcudart.so.12) was found"),
        (12050, 8907, "uses cuDNN 8.9.7 "),
        (
            12050,
            90100,
            "cuDNN 9.1.0 (/opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib/libcudnn.so.9), "
            "older than the 9.3.0.75",
        ),
        (12050, None, "no cuDNN (libcudnn.so.9) was found"),
    ],
)
def test_a_library_that_disagrees_is_one_sentence_with_the_fix(runtime, cudnn, words):
    """Each mismatch names the loaded library and ends with how to get the locked ones back."""
    problem = gpu_probe.libraries_problem(_libraries(runtime, cudnn), BUILD, PIN)
    assert words in problem
    assert problem.endswith("drop LD_LIBRARY_PATH entries that point at another CUDA or cuDNN")
    assert "\n" not in problem


# Where the probe's CPU run put its variables and outputs (tests/integration/test_gpu_probe.py).
ON_CPU = {
    "variables": ["/job:localhost/replica:0/task:0/device:CPU:0"],
    "outputs": ["/job:localhost/replica:0/task:0/device:CPU:0"] * 2,
    "peak_bytes": 2097152,
    "losses": [2.25567889213562, 2.15244722366333],
}


def test_work_that_fell_back_to_the_cpu_is_caught():
    """Asked for GPU:0, a fit whose variables live on the CPU fails, naming where it ran."""
    assert gpu_probe.placement_problem(ON_CPU, "CPU:0") is None
    assert gpu_probe.placement_problem(ON_CPU, "GPU:0") == (
        "the smoke fit was placed on GPU:0 but ran on CPU:0"
    )


def test_a_library_of_tensorflows_soname_from_outside_the_wheels_is_a_problem():
    """A system libcudnn.so.9 that TensorFlow mapped in place of the wheel's is named, with the fix."""
    libraries = {**_libraries(12050, 90300), "foreign": ["/usr/lib/x86_64-linux-gnu/libcudnn.so.9"]}
    problem = gpu_probe.libraries_problem(libraries, BUILD, PIN)
    assert problem.startswith(
        "TensorFlow loaded /usr/lib/x86_64-linux-gnu/libcudnn.so.9, not the lock's wheel: "
    )
    assert problem.endswith("drop LD_LIBRARY_PATH entries that point at another CUDA or cuDNN")


# A child process maps real shared objects (copies of libz) under the names of a host's
# CUDA toolkit, then asks library_versions about a venv without the nvidia wheels.
MAPPED_ELSEWHERE = """
import ctypes, ctypes.util, json, shutil, sys
from pathlib import Path
from tfdock import gpu_probe
root = Path(sys.argv[1])
libz = ctypes.util.find_library("z")
source = next(p for p in map(Path, ["/lib/x86_64-linux-gnu", "/usr/lib", "/lib", "/usr/lib64",
    "/lib/aarch64-linux-gnu"]) if (p / libz).exists()) / libz
for name in sys.argv[2:]:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, root / name)
    ctypes.CDLL(str(root / name))
print(json.dumps(gpu_probe.library_versions(root / "site-packages")))
"""


def _libraries_with_mapped(tmp_path, *names: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", MAPPED_ELSEWHERE, str(tmp_path), *names],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(done.stdout)


def test_a_hosts_other_cuda_major_is_not_reported_as_tensorflows(tmp_path):
    """A mapped libcudart.so.13 (a host toolkit) is not TensorFlow's: a CPU venv reports no CUDA runtime."""
    libraries = _libraries_with_mapped(tmp_path, "cuda-13.0/lib/libcudart.so.13")
    assert libraries == {"cuda_runtime": None, "cudnn": None, "cuda_driver": None, "foreign": []}


def test_tensorflows_soname_mapped_from_a_host_toolkit_is_foreign(tmp_path):
    """A libcudart.so.12 mapped from outside the venv's nvidia wheels is listed as foreign, not as the lock's."""
    libraries = _libraries_with_mapped(tmp_path, "cuda-12.4/lib/libcudart.so.12")
    assert libraries["cuda_runtime"] is None
    assert libraries["foreign"] == [str((tmp_path / "cuda-12.4/lib/libcudart.so.12").resolve())]


def test_a_device_whose_allocator_keeps_no_count_is_said_and_not_failed():
    """A CPU allocator without statistics reports no peak; the fit is judged on placement and loss."""
    uncounted = {**ON_CPU, "peak_bytes": None}
    assert gpu_probe.placement_problem(uncounted, "CPU:0") is None
    assert gpu_probe.describe_peak(uncounted) == "peak memory not counted by its allocator"
    assert gpu_probe.describe_peak(ON_CPU) == "peak 2.0 MiB"


def test_a_device_that_did_no_work_or_did_not_learn_fails():
    """No memory used, or a loss that did not go down, is a failure too."""
    idle = {**ON_CPU, "peak_bytes": 0}
    assert "allocated no memory" in gpu_probe.placement_problem(idle, "CPU:0")
    stuck = {**ON_CPU, "losses": [2.3, 2.3]}
    assert "did not learn (loss 2.300 -> 2.300)" in gpu_probe.placement_problem(stuck, "CPU:0")


def test_the_last_fatal_line_is_chosen_and_its_log_prefix_dropped():
    """From a real TensorFlow abort's standard error, the CHECK failure is the line reported."""
    stderr = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1795790431.287635    6986 cudart_stub.cc:31] Could not find cuda drivers on "
        "your machine, GPU will not be used.\n"
        "E0000 00:00:1795790431.926763    6986 cuda_platform.cc:52] failed call to cuInit: "
        "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n"
        "F0000 00:00:1795790431.927030    6986 threadpool.cc:127] Check failed: num_threads >= 1 "
        "(-3 vs. 1) \n"
        "*** Check failure stack trace: ***\n"
        "    @     0x7f2da9f1d314  absl::lts_20250814::log_internal::LogMessage::SendToLog()\n"
    )
    assert gpu_probe.last_error_line(stderr) == (
        "threadpool.cc:127] Check failed: num_threads >= 1 (-3 vs. 1)"
    )
    assert gpu_probe.last_error_line("") == "it wrote nothing to standard error"


def test_probe_timeout_comes_from_the_environment(monkeypatch):
    """An hour by default; TFDOCK_GPU_PROBE_TIMEOUT changes it; a bad value is one sentence."""
    monkeypatch.delenv(gpu_probe.TIMEOUT_ENV, raising=False)
    assert gpu_probe.probe_timeout() == 3600
    monkeypatch.setenv(gpu_probe.TIMEOUT_ENV, "7200")
    assert gpu_probe.probe_timeout() == 7200
    for bad in ("abc", "-5", "0", "inf", "nan"):
        monkeypatch.setenv(gpu_probe.TIMEOUT_ENV, bad)
        with pytest.raises(TfdockError, match="is not a number of seconds"):
            gpu_probe.probe_timeout()
