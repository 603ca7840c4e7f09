"""TensorFlow's start-up chatter is filtered from standard error; real messages are not."""

import subprocess
import sys

import pytest

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
