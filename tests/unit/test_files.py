"""Atomic files: never half-written, with the mode the umask gives, the umask left alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tfdock._files import atomic_path, write_json


def test_writing_a_file_never_changes_the_process_umask(tmp_path, monkeypatch):
    """atomic_path never calls umask(2): other threads creating files keep their modes."""
    calls = []
    real_umask = os.umask

    def recording_umask(mask):
        calls.append(mask)
        return real_umask(mask)

    monkeypatch.setattr(os, "umask", recording_umask)
    write_json(tmp_path / "state.json", {"epochs": []})
    with atomic_path(tmp_path / "model.keras") as tmp:
        tmp.write_bytes(b"weights")
    assert calls == [], f"the process umask was set to {calls}"
    assert (tmp_path / "model.keras").read_bytes() == b"weights"


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    """A file written atomically has the mode open(2) would give it under the process umask."""
    code = (
        "import os, sys; from pathlib import Path; from tfdock._files import write_json; "
        f"os.umask({umask}); write_json(Path(sys.argv[1]), {{'a': 1}})"
    )
    target = tmp_path / "config.json"
    subprocess.run([sys.executable, "-c", code, str(target)], check=True, timeout=60)
    assert target.stat().st_mode & 0o777 == mode


def test_a_failed_write_leaves_no_file(tmp_path):
    """When writing fails, neither the target nor a temporary file is left behind."""
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "metrics.json") as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk gone")
    assert list(tmp_path.iterdir()) == []


def test_a_file_reaches_the_disk_before_its_rename_and_the_rename_after(tmp_path, monkeypatch):
    """The new file is fsynced before it replaces its target, and its folder right after, so a power cut leaves the old file or the whole new one."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def recording_fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def recording_replace(source, target):
        events.append(("rename", os.path.realpath(source), os.path.realpath(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    folder = tmp_path.resolve()
    with atomic_path(folder / "epoch-1.weights.npz") as tmp:
        tmp.write_bytes(b"weights")
    assert events == [
        ("fsync", str(tmp)),
        ("rename", str(tmp), str(folder / "epoch-1.weights.npz")),
        ("fsync", str(folder)),
    ]
