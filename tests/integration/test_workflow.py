"""The venv door as a place to work: your own code, a shell, the pre-commit hook."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

from tests.commands import make, run
from tests.integration.containers import (
    ARTIFACTS,
    LOCKED_TENSORFLOW,
    copy_repository,
    write_own_script,
)

VENV = Path(sys.prefix)


def test_make_run_runs_your_script_in_the_venv(repo_root):
    """`make run CMD='python script.py OUT'` runs a TensorFlow script with the venv's Python; the file it writes is yours."""
    folder = ARTIFACTS / f"own-script-{uuid.uuid4().hex[:8]}"
    script = write_own_script(folder)
    out = folder / "venv.txt"
    relative = os.path.relpath
    result = make(
        repo_root, "run", f"CMD=python {relative(script, repo_root)} {relative(out, repo_root)}"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    version, total, prefix = out.read_text().split()
    assert version == LOCKED_TENSORFLOW and total == "6.0"
    assert Path(prefix) == VENV
    assert (out.stat().st_uid, out.stat().st_gid) == (os.getuid(), os.getgid())


def test_make_run_passes_the_exit_code_and_needs_cmd(repo_root):
    """`make run` fails with its command's failure, and without CMD says in one sentence what to give."""
    assert make(repo_root, "run", "CMD=exit 3").returncode != 0
    result = make(repo_root, "run")
    assert result.returncode != 0
    assert "make run: say what to run, e.g. make run CMD='python my_script.py'" in result.stderr


def test_make_shell_puts_the_venv_first(repo_root):
    """In `make shell`, python is the venv's, even after a ~/.bashrc that changes PATH."""
    result = make(repo_root, "shell", input='python -c "import sys; print(sys.prefix)"\n')
    assert result.returncode == 0, result.stderr[-3000:]
    assert str(VENV) in result.stdout.splitlines()


def test_upgrade_of_a_package_in_no_lock_is_one_sentence(repo_root):
    """`make upgrade PACKAGE=x` for a package in neither lock says how to add it, and changes nothing."""
    before = (repo_root / "requirements.txt").read_bytes()
    result = make(repo_root, "upgrade", "PACKAGE=surely-not-in-the-lock")
    assert result.returncode != 0
    assert (
        "tfdock: error: surely-not-in-the-lock is in neither lock: to add it, name it in "
        "requirements.in and run `make lock`." in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert (repo_root / "requirements.txt").read_bytes() == before


def _git(folder: Path, *args: str, timeout: int = 600):
    identity = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        # The host's git settings (a global hooksPath, commit signing) are not the test's.
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    return run(["git", *args], cwd=folder, timeout=timeout,
               env={**identity, "PRE_COMMIT_HOME": str(folder.parent / "pre-commit")})  # fmt: skip


def test_pre_commit_hook_runs_make_check(repo_root, tmp_path):
    """With the hook installed, a commit that fails lint is refused and a clean one passes `make check`.

    The clone keeps one unit test file: the whole unit suite is this run's own (and `make
    check` in the dev container runs it again); here it is the hook that is under test.
    """
    clone = copy_repository(repo_root, tmp_path / "repo")
    for unit_test in (clone / "tests" / "unit").glob("test_*.py"):
        if unit_test.name != "test_make_help.py":
            unit_test.unlink()
    (clone / ".venv").symlink_to(VENV)
    # The venv is current for the clone: its inputs are no newer than the venv's stamp.
    stamp = (VENV / ".tfdock-installed").stat().st_mtime
    for name in ("requirements.txt", "pyproject.toml", "scripts/setup-venv.sh"):
        os.utime(clone / name, (stamp - 1, stamp - 1))
    assert _git(clone, "init", "--quiet").returncode == 0
    _git(clone, "add", "--all")
    assert _git(clone, "commit", "--quiet", "-m", "start").returncode == 0
    installed = run([VENV / "bin" / "pre-commit", "install"], cwd=clone)
    assert installed.returncode == 0, installed.stderr

    (clone / "src" / "tfdock" / "unused.py").write_text("import os\n")
    _git(clone, "add", "--all")
    refused = _git(clone, "commit", "-m", "an unused import")
    assert refused.returncode != 0
    said = refused.stdout + refused.stderr
    assert "make check (lint + unit tests)" in said and "F401" in said

    (clone / "src" / "tfdock" / "unused.py").write_text("import os\n\nSEPARATOR = os.sep\n")
    _git(clone, "add", "--all")
    accepted = _git(clone, "commit", "-m", "the import used")
    said = accepted.stdout + accepted.stderr
    assert accepted.returncode == 0, said[-3000:]
    assert "make check (lint + unit tests)" in said and "Passed" in said
