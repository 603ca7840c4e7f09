"""The GPU probe behind `verify --require-gpu`, exercised for real on a machine without a GPU.

The probe takes its device as an argument: on CPU:0 it runs the very code a GPU host
runs, and its report shows where the work went. Its failures are real ones: a
TensorFlow CHECK failure that aborts the child process.
"""

from __future__ import annotations

import signal
import sys

from tfdock import gpu_probe

PROBE_TIMEOUT_S = 600  # a bound, not a speed claim: TensorFlow's import on a loaded 2-core box


def test_probe_reports_where_its_fit_ran():
    """On CPU:0 everything is on CPU:0 and memory was used; asked for GPU:0, that is a failure."""
    outcome = gpu_probe.run_probe(
        [sys.executable, "-m", "tfdock.gpu_probe", "--device", "CPU:0"], PROBE_TIMEOUT_S
    )
    assert outcome.problem is None
    placement = outcome.report["placement"]
    assert {where.split("device:")[-1] for where in placement["variables"]} == {"CPU:0"}
    # A CPU allocator may keep no statistics (it depends on the host): then none is reported.
    assert placement["peak_bytes"] is None or placement["peak_bytes"] > 0
    assert gpu_probe.placement_problem(placement, "CPU:0") is None
    assert gpu_probe.placement_problem(placement, "GPU:0") == (
        "the smoke fit was placed on GPU:0 but ran on CPU:0"
    )
    # The CPU venv has no nvidia wheels: no CUDA runtime of the lock's to report, whatever
    # CUDA toolkit the host has (a foreign libcudart.so.12 would be listed apart).
    libraries = outcome.report["libraries"]
    assert (libraries["cuda_runtime"], libraries["cudnn"]) == (None, None)
    assert all(path.endswith(("libcudart.so.12", "libcudnn.so.9")) for path in libraries["foreign"])


def test_a_native_abort_in_the_probe_is_one_sentence_with_its_cause():
    """A real TensorFlow CHECK failure kills the child; the parent names the signal and the check."""
    abort = (
        "import tensorflow as tf\n"
        "tf.config.threading.set_intra_op_parallelism_threads(-3)\n"
        "tf.constant(1)\n"
    )
    outcome = gpu_probe.run_probe([sys.executable, "-c", abort], PROBE_TIMEOUT_S)
    assert outcome.report is None
    assert outcome.problem == (
        "the GPU probe died of SIGABRT: threadpool.cc:127] Check failed: num_threads >= 1 (-3 vs. 1)"
    )


def test_a_probe_killed_by_a_signal_without_a_name_is_reported_by_number():
    """A child killed by a real-time signal (SIGRTMIN+1, which has no name) is one sentence giving its number."""
    number = int(signal.SIGRTMIN) + 1
    kill = f"import os; os.kill(os.getpid(), {number})"
    outcome = gpu_probe.run_probe([sys.executable, "-c", kill], PROBE_TIMEOUT_S)
    assert outcome.report is None
    assert outcome.problem == (
        f"the GPU probe died of signal {number}: it wrote nothing to standard error"
    )


def test_a_probe_that_hangs_is_stopped_at_its_bound():
    """A child that never answers is killed at the time limit, and the sentence says how to allow more."""
    outcome = gpu_probe.run_probe([sys.executable, "-c", "import time; time.sleep(600)"], 2)
    assert outcome.report is None
    assert outcome.problem.startswith("the GPU probe did not finish within 2 s")
    assert gpu_probe.TIMEOUT_ENV in outcome.problem
