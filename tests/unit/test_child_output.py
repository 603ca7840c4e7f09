"""The tests' own reader of a child's output keeps its time bound when the child says nothing."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.child_output import wait_for_line


def test_a_silent_child_fails_the_wait_at_its_bound():
    """A child that prints nothing ends the wait after the bound, not when the child ends."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        started = time.monotonic()
        with pytest.raises(AssertionError, match="within 1 s"):
            wait_for_line(child, "never", timeout=1)
        assert time.monotonic() - started < 30
    finally:
        child.kill()
        child.wait()


def test_the_line_is_found_and_what_came_before_is_returned():
    """The wait returns at the matching line, with every line read up to it."""
    child = subprocess.Popen([sys.executable, "-c", "print('a'); print('b', flush=True); "
                              "import time; time.sleep(60)"],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert wait_for_line(child, "^b$", timeout=60).splitlines() == ["a", "b"]
    finally:
        child.kill()
        child.wait()
