"""Add, upgrade and remove a package against the real package index, in a throwaway copy.

The copy's .venv starts as a hard-linked copy of this venv (what a team member's
existing venv is); `make setup` then re-syncs it to each new lock, as it would theirs.
pip replaces files rather than editing them, so this venv is never touched.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.commands import make, run, tfdock
from tests.integration.containers import (
    ALL_CHECKS_PASSED,
    copy_repository,
    record_artifact,
    tiny_wheel,
)
from tfdock.lock import read_lock

pytestmark = pytest.mark.network

PACKAGE = "python-slugify"  # small, pure Python, and it needs text-unidecode
ITS_REQUIREMENTS = {"python-slugify", "text-unidecode"}
LOCKS = ("requirements.txt", "requirements-gpu.txt")


def _make_step(project: Path, step: str, *args: str) -> subprocess.CompletedProcess:
    """Run a make target in the copy, recording its seconds as STEP in the artifacts."""
    started = time.perf_counter()
    result = make(project, *args, timeout=1200)
    record_artifact("lock-workflow.json", step, round(time.perf_counter() - started, 1))
    assert result.returncode == 0, (
        f"make {' '.join(args)}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    )
    return result


def _pins(project: Path) -> dict[str, dict[str, str]]:
    return {name: read_lock(project / name).pins for name in LOCKS}


def _changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {n for n in before.keys() | after.keys() if before.get(n) != after.get(n)}


def _python(project: Path, code: str) -> subprocess.CompletedProcess:
    """Run CODE with the copy's venv Python."""
    return run([project / ".venv" / "bin" / "python", "-c", code])


def _edit_requirements(project: Path, old: str, new: str) -> None:
    path = project / "requirements.in"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.fixture(scope="module")
def project(tmp_path_factory, repo_root):
    """A copy of the repository with a copy of this venv, and the locks it started from."""
    folder = copy_repository(repo_root, tmp_path_factory.mktemp("lock-workflow") / "tfdock")
    subprocess.run(["cp", "-al", sys.prefix, str(folder / ".venv")], check=True)
    # `make setup` touches the stamp: give the copy its own file.
    stamp = folder / ".venv" / ".tfdock-installed"
    stamp.unlink()
    shutil.copy2(Path(sys.prefix) / ".tfdock-installed", stamp)
    originals = {name: (folder / name).read_bytes() for name in LOCKS}
    return folder, originals


def test_added_package_is_locked_installed_and_verified(project):
    """A package added to requirements.in: `make lock` pins it and its requirements in both locks and nothing else moves; `make setup` installs it; `make verify` passes."""
    folder, _ = project
    before = _pins(folder)
    _edit_requirements(folder, "pytest>=8\n", f"pytest>=8\n{PACKAGE}<8\n")
    _make_step(folder, "add: make lock", "lock")
    after = _pins(folder)
    for lock in LOCKS:
        assert _changed(before[lock], after[lock]) == ITS_REQUIREMENTS, lock
        assert after[lock][PACKAGE].startswith("7.")
    text = (folder / "requirements.txt").read_text()
    assert "--index-url" not in text and "--find-links" not in text and "file://" not in text
    assert len(read_lock(folder / "requirements.txt").hashes[PACKAGE]) >= 2, "wheel and sdist"

    _make_step(folder, "add: make setup", "setup")
    verify = _make_step(folder, "add: make verify", "verify")
    assert ALL_CHECKS_PASSED.search(verify.stdout), verify.stdout
    imported = _python(folder, "import slugify; print(slugify.slugify('Make It Yours'))")
    assert imported.stdout.strip() == "make-it-yours", imported.stderr


def test_upgrade_of_one_package_moves_only_it_and_its_requirements(project):
    """With its range opened, `make upgrade PACKAGE=x` moves x to a newer release, and in both locks only x and what it needs change."""
    folder, _ = project
    before = _pins(folder)
    _edit_requirements(folder, f"{PACKAGE}<8\n", f"{PACKAGE}\n")
    _make_step(folder, "upgrade: make upgrade PACKAGE=...", "upgrade", f"PACKAGE={PACKAGE}")
    after = _pins(folder)
    for lock in LOCKS:
        changed = _changed(before[lock], after[lock])
        assert PACKAGE in changed and changed <= ITS_REQUIREMENTS, (lock, changed)
        assert int(after[lock][PACKAGE].split(".")[0]) >= 8
    gpu, cpu = after["requirements-gpu.txt"], after["requirements.txt"]
    assert {n: gpu[n] for n in cpu} == cpu, "the GPU lock is still the CPU lock plus CUDA wheels"


def test_removed_package_is_unlocked_and_uninstalled(project):
    """The package removed from requirements.in: `make lock` gives back the original locks byte for byte, and `make setup` uninstalls it."""
    folder, originals = project
    _edit_requirements(folder, f"{PACKAGE}\n", "")
    _make_step(folder, "remove: make lock", "lock")
    for lock in LOCKS:
        assert (folder / lock).read_bytes() == originals[lock], lock
    _make_step(folder, "remove: make setup", "setup")
    gone = _python(folder, "import slugify")
    assert gone.returncode != 0 and "No module named 'slugify'" in gone.stderr
    listed = _python(
        folder,
        "import json, importlib.metadata as m; print(json.dumps([d.metadata['Name'] for d in m.distributions()]))",
    )
    assert PACKAGE not in json.loads(listed.stdout)


def test_a_failed_gpu_compile_leaves_both_locks_as_they_were(tmp_path):
    """When the CPU lock compiles but the GPU one cannot, `tfdock lock` puts the new CPU lock back and says so in one sentence."""
    (tmp_path / "requirements.in").write_text("six\n")
    (tmp_path / "requirements-gpu.in").write_text("-c requirements.txt\n-r requirements.in\n")
    first = tfdock("lock", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = {name: (tmp_path / name).read_bytes() for name in LOCKS}
    (tmp_path / "requirements.in").write_text("six\nidna\n")  # the CPU compile would change
    (tmp_path / "requirements-gpu.in").write_text(
        "-c requirements.txt\n-r requirements.in\nsix<1.10\n"  # conflicts with the CPU pin
    )
    failed = tfdock("lock", cwd=tmp_path)
    assert failed.returncode != 0
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "tfdock: error: pip-compile could not compile requirements-gpu.txt from "
        "https://pypi.org/simple (ResolutionImpossible"
    ) and last.endswith("); both locks are left as they were.")
    assert "Traceback" not in failed.stderr
    for name in LOCKS:
        assert (tmp_path / name).read_bytes() == before[name], name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["requirements.in", "requirements-gpu.in", *LOCKS]
    ), "no temporary file is left"


def _lock_tiny_project(folder: Path) -> subprocess.CompletedProcess:
    """Write two .in files naming only `six` into FOLDER and run `tfdock lock` there."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.in").write_text("six\n")
    (folder / "requirements-gpu.in").write_text("-c requirements.txt\n-r requirements.in\n")
    return tfdock("lock", cwd=folder)


def _fake_six(folder: Path) -> Path:
    """Build a `six 99.0` wheel, as a local find-links folder or mirror might offer; return its folder."""
    return tiny_wheel(folder / "wheels", "six", "99.0").parent


def test_local_find_links_extra_index_and_constraints_do_not_change_the_lock(tmp_path, monkeypatch):
    """With find-links offering six 99.0, an extra file:// index and a constraint six<1.16 in the user's pip settings, the lock still pins the index's newest six with its hashes."""
    wheels = _fake_six(tmp_path)
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("six<1.16\n")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", wheels.as_uri())
    monkeypatch.setenv("PIP_CONSTRAINT", str(constraints))
    project = tmp_path / "project"
    result = _lock_tiny_project(project)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in LOCKS:
        lock = read_lock(project / name)
        assert lock.pins["six"] == "1.17.0", name
        assert len(lock.hashes["six"]) == 2, "the index's wheel and sdist, not a local file"
        assert str(wheels) not in (project / name).read_text()


def test_the_users_index_url_timeout_and_retries_pass_through(tmp_path, monkeypatch):
    """An index URL that does not answer, given as PIP_INDEX_URL with PIP_RETRIES=0, fails the lock at once in one sentence that names it (without its password): pip-compile used it."""
    monkeypatch.setenv("PIP_INDEX_URL", "http://someone:secret@127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "5")
    project = tmp_path / "project"
    result = _lock_tiny_project(project)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "tfdock: error: pip-compile could not compile requirements.txt from "
        "http://127.0.0.1:9/simple (No matching distribution found for six); both locks are "
        "left as they were."
    )
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in project.iterdir()) == ["requirements-gpu.in", "requirements.in"]
