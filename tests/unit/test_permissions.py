"""Files and folders this user may not read or write: one sentence that says so, no traceback."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.commands import one_error_line, tfdock
from tfdock.data import IDX_FILES

# Root ignores file permissions; without these two capabilities it obeys them as any user does
# (and can still run the venv wherever the clone lives, which user nobody may not).
OBEYING_PERMISSIONS = (
    ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"] if os.geteuid() == 0 else []
)


def _refused(*args: str) -> str:
    """Run `tfdock ARGS` as a user who obeys permissions; return its one error line."""
    return one_error_line(tfdock(*args, prefix=OBEYING_PERMISSIONS))


@pytest.fixture
def locked(tmp_path):
    """Return chmod(path, mode) that is undone after the test, so tmp_path can be removed."""
    changed = []

    def chmod(path, mode):
        changed.append(path)
        path.chmod(mode)

    yield chmod
    for path in reversed(changed):
        path.chmod(0o755)


@pytest.fixture
def mnist_copy(tmp_path, mnist_dir):
    copy = tmp_path / "mnist"
    copy.mkdir()
    for name, _ in IDX_FILES.values():
        shutil.copy(mnist_dir / name, copy / name)
    return copy


def _says_permission_denied(line):
    assert "permission denied" in line
    for wrong in ("corrupt", "not found", "does not exist", "lacks", "truncated"):
        assert wrong not in line


def test_unreadable_data_folder_says_permission_denied(tmp_path, mnist_copy, locked):
    """--data on a folder this user may not open says permission denied, not missing files."""
    locked(mnist_copy, 0o000)
    line = _refused("train", "--data", str(mnist_copy), "--output-dir", str(tmp_path / "runs"))
    _says_permission_denied(line)
    assert not (tmp_path / "runs").exists()


def test_unreadable_data_files_say_permission_denied(tmp_path, mnist_copy, locked):
    """--data on a folder whose .gz files this user may not read says permission denied."""
    for name, _ in IDX_FILES.values():
        locked(mnist_copy / name, 0o000)
    line = _refused("train", "--data", str(mnist_copy), "--output-dir", str(tmp_path / "runs"))
    _says_permission_denied(line)
    assert str(mnist_copy / IDX_FILES["x_train"][0]) in line


def test_unreadable_npz_says_permission_denied_not_corrupt(tmp_path, locked):
    """An npz this user may not read is not called corrupt: the download-again advice is wrong."""
    npz = tmp_path / "mnist.npz"
    npz.write_bytes(b"PK")
    locked(npz, 0o000)
    line = _refused("train", "--data", str(npz), "--output-dir", str(tmp_path / "runs"))
    _says_permission_denied(line)


@pytest.mark.parametrize(
    ("flag", "sentence"),
    [
        (
            "--output-dir",
            "cannot create a run folder in {folder} (permission denied); "
            "pass --output-dir a folder this user can write.",
        ),
        (
            "--run-dir",
            "cannot write in {folder} (permission denied); choose a folder this user can write.",
        ),
    ],
    ids=["output-dir", "run-dir"],
)
def test_read_only_folder_is_one_sentence_and_stays_empty(
    tmp_path, mnist_dir, locked, flag, sentence
):
    """--output-dir or --run-dir on an empty folder this user may not write: one sentence, nothing made."""
    folder = tmp_path / "mine"
    folder.mkdir()
    locked(folder, 0o555)
    line = _refused("train", "--data", str(mnist_dir), flag, str(folder))
    assert line == "tfdock: error: " + sentence.format(folder=folder)
    assert list(folder.iterdir()) == []


def test_unreadable_run_folder_on_resume_says_permission_denied(tmp_path, locked):
    """--resume on a run folder this user may not open says permission denied, not "not a run"."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"epochs": 1}))
    locked(run_dir, 0o000)
    line = _refused("train", "--resume", str(run_dir))
    _says_permission_denied(line)
    assert "not a tfdock run" not in line and "not a folder" not in line
