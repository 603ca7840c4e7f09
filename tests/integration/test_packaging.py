"""Against the real package index: the lock check recompiles, and the build backend's floor builds."""

from __future__ import annotations

import shutil
import tomllib
import venv
import zipfile

import pytest
from packaging.requirements import Requirement

from tests.commands import run, tfdock
from tfdock import __version__
from tfdock.lock import lock_drift, read_lock
from tfdock.lock_check import index_answers
from tfdock.lock_compile import pip_compile_environment

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def index_environment():
    """The environment pip-compile runs in, or skip when the package index does not answer."""
    environment = pip_compile_environment()
    if not index_answers(environment):
        pytest.skip("the package index does not answer (CI provides it)")
    return environment


def _lock_check(folder):
    """`tfdock lock-check` in FOLDER, recompiling its requirements.in against the index."""
    return tfdock("lock-check", cwd=folder, timeout=1200)


def test_lock_check_catches_a_hand_changed_pin_that_kept_its_hashes(
    repo_root, tmp_path, index_environment
):
    """six's pin changed by hand, its hashes kept: pip-compile's own result differs, exit 1."""
    for name in ("requirements.in", "requirements.txt"):
        shutil.copy(repo_root / name, tmp_path / name)
    lock_path = tmp_path / "requirements.txt"
    pinned = read_lock(lock_path).pins["six"]
    other = "1.16.0" if pinned != "1.16.0" else "1.15.0"
    lock_path.write_text(lock_path.read_text().replace(f"\nsix=={pinned} ", f"\nsix=={other} "))
    assert lock_drift(tmp_path / "requirements.in", read_lock(lock_path)) == [], (
        "offline, the edit is invisible"
    )
    result = _lock_check(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"requirements.txt: six=={other} has hashes that are not those of its files on the "
        "package index",
        "tfdock: error: requirements.txt no longer matches requirements.in; run `make lock` to "
        "recompile it (never edit it by hand).",
    ]


def test_lock_check_names_why_pip_compile_failed(tmp_path, index_environment):
    """A lock whose package the index does not have: pip-compile's reason, in one sentence, exit 2."""
    (tmp_path / "requirements.in").write_text("tfdock-no-such-package-xyz\n")
    (tmp_path / "requirements.txt").write_text(
        "tfdock-no-such-package-xyz==1.0 \\\n"
        f"    --hash=sha256:{'0' * 64}\n"
        "    # via -r requirements.in\n"
    )
    result = _lock_check(tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == (
        "tfdock: error: pip-compile could not compile requirements.in (No matching distribution "
        "found for tfdock-no-such-package-xyz); fix it, then run `make lock`.\n"
    )


def test_the_oldest_setuptools_the_project_allows_builds_it(repo_root, tmp_path, index_environment):
    """The setuptools series pyproject.toml's floor names builds the package (its license field)."""
    build_system = tomllib.loads((repo_root / "pyproject.toml").read_text())["build-system"]
    (setuptools,) = [Requirement(r) for r in build_system["requires"] if "setuptools" in r]
    (floor,) = [s.version for s in setuptools.specifier if s.operator == ">="]
    source = tmp_path / "source"
    source.mkdir()
    shutil.copytree(repo_root / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(repo_root / name, source / name)
    venv.create(tmp_path / "venv", with_pip=True)
    python = str(tmp_path / "venv" / "bin" / "python")

    def pip(*args):
        return run([python, "-m", "pip", "--quiet", *args], env=index_environment, inherit=False)

    series = f"setuptools>={floor},<{int(floor.split('.')[0]) + 1}"  # 77.0.0 itself is yanked
    installed = pip("install", series, "wheel")
    assert installed.returncode == 0, installed.stderr
    built = pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(source))
    assert built.returncode == 0, f"setuptools {floor} cannot build tfdock:\n{built.stderr[-3000:]}"
    # The version is __init__.py's, the one place it is written; the licence travels with it.
    (wheel,) = tmp_path.glob(f"tfdock-{__version__}-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert f"tfdock-{__version__}.dist-info/licenses/LICENSE" in names
