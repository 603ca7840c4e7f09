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


def test_the_suite_guards_every_test_with_a_timeout_from_the_lock(request):
    """pytest-timeout, installed from the lock, bounds every test as configured in pyproject."""
    assert request.config.pluginmanager.hasplugin("timeout"), "pytest-timeout is not installed"
    assert float(request.config.getini("timeout")) == 1800


def test_a_hanging_test_fails_at_the_guard_and_the_run_goes_on(tmp_path):
    """A test that hangs fails with pytest-timeout's report, and the next test still runs."""
    (tmp_path / "test_hang.py").write_text(
        "import time\n\ndef test_hangs():\n    time.sleep(600)\n\ndef test_after():\n    pass\n"
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-o",
            "timeout=2",
            "-q",
            str(tmp_path / "test_hang.py"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 1, run.stdout
    assert "Timeout (>2.0s) from pytest-timeout" in run.stdout, run.stdout
    assert "1 failed, 1 passed" in run.stdout, run.stdout
