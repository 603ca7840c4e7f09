"""Keep TensorFlow's start-up chatter off the terminal, and everything else on it.

TensorFlow's C++ core prints INFO lines (oneDNN, CPU features, "could not find
cuda drivers") and an error line for cuInit on every machine without a GPU.
Those lines say nothing a user can act on; ``tfdock verify`` reports the
devices instead. TensorFlow's own settings cannot hide them: the INFO lines
come from absl logging before ``absl::InitializeLog()``, which writes every
level to standard error whatever ``TF_CPP_MIN_LOG_LEVEL`` says (even 3), and
the cuInit line is an ERROR, a level that real errors share. So standard error
goes through a filter that drops exactly those lines.

The filter is a separate process, not a thread: when TensorFlow aborts (a
failed CHECK, a cuDNN mismatch on a GPU), the process dies at once, but what it
wrote is already in the pipe, and the filter, which outlives it, forwards the
fatal line and the stack trace before it sees end-of-file and exits. Every
other line of standard error passes through unchanged, in order.
TFDOCK_NATIVE_LOGS=1 turns the filter off and shows everything.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator

SHOW_ALL_ENV = "TFDOCK_NATIVE_LOGS"
# How long the command waits, at its end, for the filter to forward the last lines.
DRAIN_SECONDS = 5.0
_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|I\d{4} [^\n]*"
    rb"|E\d{4} [^\n]*failed call to cuInit: [^\n]*(UNKNOWN ERROR \(303\)|CUDA_ERROR_NO_DEVICE)[^\n]*"
    rb"|To enable the following instructions: [^\n]*rebuild TensorFlow with [^\n]*)\n?$"
)


def is_noise(line: bytes) -> bool:
    """Say whether one line of standard error is TensorFlow start-up chatter."""
    return bool(_NOISE.match(line))


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Filter file descriptor 2 through ``is_noise`` for the duration of the block."""
    if os.environ.get(SHOW_ALL_ENV) == "1":
        yield
        return
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    # Its own session: Ctrl-C in the terminal reaches the command, not the
    # filter, which keeps forwarding until the command's last line is out.
    # It exits when the pipe's last writer is gone, however the command ended.
    filter_process = subprocess.Popen(
        [sys.executable, "-m", "tfdock._native_logs"],
        stdin=read_end,
        stdout=2,
        start_new_session=True,
    )
    os.close(read_end)
    real_stderr = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real_stderr, 2)  # closes the pipe's last writer: the filter sees EOF
        os.close(real_stderr)
        with contextlib.suppress(subprocess.TimeoutExpired):
            filter_process.wait(timeout=DRAIN_SECONDS)


def forward(source: int, target: int) -> None:
    """Copy lines from ``source`` to ``target`` until end-of-file, dropping the noise."""
    writable = True
    with os.fdopen(source, "rb", closefd=False) as lines:
        for line in lines:
            if writable and not is_noise(line):
                writable = _write_all(target, line)


def _write_all(target: int, data: bytes) -> bool:
    """Write all of ``data``; return False when ``target`` is gone (keep draining, quietly)."""
    try:
        while data:
            data = data[os.write(target, data) :]
    except OSError:
        return False
    return True


if __name__ == "__main__":
    forward(0, 1)
