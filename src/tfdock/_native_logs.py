"""Keep TensorFlow's start-up chatter off the terminal, and everything else on it.

TensorFlow's C++ core prints INFO lines (oneDNN, CPU features, "could not find
cuda drivers") before its log level is read, and an error line for cuInit on
every machine without a GPU. Those lines say nothing a user can act on;
``tfdock verify`` reports the devices instead. Every other line of the process's
standard error passes through unchanged. TFDOCK_NATIVE_LOGS=1 shows everything.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

SHOW_ALL_ENV = "TFDOCK_NATIVE_LOGS"
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
    real_stderr = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward() -> None:
        with os.fdopen(read_end, "rb") as source:
            for line in source:
                if not is_noise(line):
                    os.write(real_stderr, line)

    thread = threading.Thread(target=forward, name="tfdock-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real_stderr, 2)  # closes the pipe's last writer: the thread sees EOF
        thread.join(timeout=5)
        os.close(real_stderr)
