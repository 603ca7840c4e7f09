"""TensorFlow's start-up chatter is filtered from standard error; real messages are not."""

import os
import signal
import subprocess
import sys

import pytest

from tests.child_output import wait_for_line
from tfdock._native_logs import is_noise


@pytest.mark.parametrize(
    "line",
    [
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
        b"I0000 00:00:1795760796.316438    4261 port.cc:153] oneDNN custom operations are on.\n",
        b"E0000 00:00:1795760798.619127    4261 cuda_platform.cc:52] failed call to cuInit: INTERNAL:"
        b" CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n",
    ],
)
def test_startup_chatter_is_noise(line):
    """INFO lines and the no-GPU cuInit error are dropped."""
    assert is_noise(line)


@pytest.mark.parametrize(
    "line",
    [
        b"tfdock: error: MNIST data not found at /x\n",
        b"Traceback (most recent call last):\n",
        b"E0000 00:00:1.0 1 gpu_device.cc:1] failed call to cuInit: CUDA_ERROR_OUT_OF_MEMORY\n",
        b"W0000 00:00:1.0 1 op_kernel.cc:1] something real\n",
    ],
)
def test_real_messages_pass(line):
    """Errors, warnings and tracebacks are kept."""
    assert not is_noise(line)


def test_filter_keeps_the_rest_of_stderr_in_order():
    """Inside the filter, native noise disappears and other lines arrive in order."""
    code = (
        "import os\n"
        "from tfdock._native_logs import quiet_native_logs\n"
        "with quiet_native_logs():\n"
        "    os.write(2, b'first\\nI0000 00:00:1.0 1 x.cc:1] chatter\\nsecond\\n')\n"
        "    print('third', file=__import__('sys').stderr)\n"
        "os.write(2, b'after\\n')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    assert result.stderr == b"first\nsecond\nthird\nafter\n"


def test_a_native_abort_reaches_stderr():
    """TensorFlow's CHECK failure (a real abort) is on stderr; the start-up chatter is not."""
    code = (
        "from tfdock._native_logs import quiet_native_logs\n"
        "with quiet_native_logs():\n"
        "    import tensorflow as tf\n"
        "    tf.config.threading.set_intra_op_parallelism_threads(-3)\n"
        "    tf.constant(1)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300)
    assert result.returncode == -signal.SIGABRT
    stderr = result.stderr.decode(errors="replace")
    assert "Check failed: num_threads >= 1 (-3 vs. 1)" in stderr
    assert "*** Check failure stack trace: ***" in stderr
    assert "oneDNN custom operations" not in stderr
    assert "absl::InitializeLog()" not in stderr


def test_ctrl_c_keeps_the_last_words():
    """Ctrl-C (SIGINT to the whole process group) spares the filter: the last line still arrives."""
    code = (
        "import os, sys, time\n"
        "from tfdock._native_logs import quiet_native_logs\n"
        "with quiet_native_logs():\n"
        "    try:\n"
        "        print('ready', flush=True)\n"
        "        time.sleep(300)\n"
        "    except KeyboardInterrupt:\n"
        "        print('interrupted', file=sys.stderr)\n"
        "        sys.exit(130)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    wait_for_line(process, "^ready$", timeout=120)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr == b"interrupted\n"
