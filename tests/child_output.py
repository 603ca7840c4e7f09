"""Read a child process's output with a time bound that holds even when no line ever arrives.

`for line in process.stdout` blocks for as long as the child stays silent; a test that
waits on a child this way can hang CI. Here the pipe is polled with a deadline.
"""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import time


def wait_for_line(process: subprocess.Popen, pattern: str, timeout: float) -> str:
    """Read PROCESS's stdout until a line matches PATTERN; return all read; fail at TIMEOUT s."""
    fd = process.stdout.fileno()
    read = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            text = read.decode(errors="replace")
            if any(re.search(pattern, line) for line in text.splitlines()):
                return text
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no line matching {pattern!r} within {timeout} s:\n{text}"
            if not selector.select(remaining):
                continue
            chunk = os.read(fd, 65536)
            assert chunk, f"the process ended before a line matching {pattern!r}:\n{text}"
            read += chunk
