"""Run what a user runs (tfdock, make, any program) from a test, one way in every test file.

docker-stacks' tests start every container through one `TrackedContainer`; this is that
layer for the processes the tests start on the host. Each function returns what
subprocess returns, with the output as text. ENV holds settings added to (or, as None,
taken from) this process's environment, so a test names only what it changes; the
default TIMEOUT is generous, a bound against a hang rather than a claim about speed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

# The tfdock CLI of the environment the tests run in.
TFDOCK = (sys.executable, "-m", "tfdock")
TIMEOUT = 600


def environment(env: Mapping[str, str | None] | None = None, inherit: bool = True) -> dict:
    """This process's environment (none with INHERIT false), with ENV's settings set or, as None, unset."""
    result = dict(os.environ) if inherit else {}
    for name, value in (env or {}).items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result


def run(
    command: Sequence[str | Path],
    *,
    env: Mapping[str, str | None] | None = None,
    inherit: bool = True,
    timeout: float = TIMEOUT,
    **options,
) -> subprocess.CompletedProcess[str]:
    """Run COMMAND to its end; return it, stdout and stderr captured as text."""
    return subprocess.run(
        [str(word) for word in command],
        capture_output=True,
        text=True,
        env=environment(env, inherit),
        timeout=timeout,
        **options,
    )


def tfdock(
    *args: str | Path, prefix: Sequence[str] = (), **options
) -> subprocess.CompletedProcess[str]:
    """Run `tfdock ARGS` (after PREFIX, such as setpriv's); OPTIONS as for run()."""
    return run([*prefix, *TFDOCK, *args], **options)


def make(directory: Path, *args: str, **options) -> subprocess.CompletedProcess[str]:
    """Run `make -C DIRECTORY ARGS`; OPTIONS as for run()."""
    return run(["make", "-C", str(directory), *args], **options)


def start(
    command: Sequence[str | Path],
    *,
    env: Mapping[str, str | None] | None = None,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    **options,
) -> subprocess.Popen[str]:
    """Start COMMAND with text pipes (stderr: PIPE, STDOUT or a file, as given); the caller ends it."""
    return subprocess.Popen(
        [str(word) for word in command],
        stdout=stdout,
        stderr=stderr,
        text=True,
        env=environment(env),
        **options,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """Assert RESULT is a refusal (exit 2, one `tfdock: error:` line, no traceback); return the line."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfdock: error: "), result.stderr
    return lines[0]
