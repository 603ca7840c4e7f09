"""What the test processes of one `make test` share (it runs its files on TEST_WORKERS
processes with pytest-xdist): a session fixture's work, done once for all of them.

Each process has its own session fixtures, so without this two of them would build the same
image at the same moment, or train the same reference job twice. ``once`` runs the work in
the first process that asks, under a lock the others wait on, and hands them its result.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def one_at_a_time(folder: Path, name: str) -> Iterator[None]:
    """Hold the lock NAME in FOLDER while the block runs; other processes wait for it."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def shared_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that every process of this test run sees, and no other run.

    Under xdist each process's base temporary folder is a child of the run's; alone, the
    process's own is the run's.
    """
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def once(tmp_path_factory: pytest.TempPathFactory, name: str, work: Callable[[], dict]) -> dict:
    """WORK's result (a JSON object), computed by the first process of this run that asks.

    A process whose WORK failed leaves no result, so the next one that asks tries again
    (and fails with its own message).
    """
    folder = shared_folder(tmp_path_factory) / "once"
    result = folder / f"{name}.json"
    with one_at_a_time(folder, name):
        if result.exists():
            return json.loads(result.read_text())
        value = work()
        result.write_text(json.dumps(value))
        return value
