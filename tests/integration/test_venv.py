"""The venv made by `make setup` is the lock, `make verify` proves it, and drift is caught."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.commands import make, run, tfdock
from tests.integration.containers import ALL_CHECKS_PASSED, record_artifact
from tfdock.lock import read_lock

VENV_PYTHON = Path(sys.prefix) / "bin" / "python"


def test_second_setup_is_a_noop(repo_root):
    """A second `make setup` runs nothing: make finds the venv up to date and touches nothing."""
    make(repo_root, "setup")
    stamp = repo_root / ".venv" / ".tfdock-installed"
    before = stamp.stat().st_mtime_ns
    started = time.perf_counter()
    # make's own message, untranslated whatever the host's locale.
    result = make(repo_root, "setup", env={"LC_ALL": "C"})
    record_artifact("venv.json", "noop_setup_seconds", round(time.perf_counter() - started, 3))
    assert result.returncode == 0
    assert "Nothing to be done for 'setup'" in result.stdout
    assert result.stderr == ""
    assert stamp.stat().st_mtime_ns == before, "the venv was not reinstalled"


def test_make_verify_passes_and_reports_cpu(repo_root):
    """`make verify` passes every check in the venv and reports the devices."""
    result = make(repo_root, "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert ALL_CHECKS_PASSED.search(result.stdout), result.stdout
    assert f"tensorflow {read_lock(repo_root / 'requirements.txt').pins['tensorflow']}," in (
        result.stdout
    )
    assert "cuInit" not in result.stderr and "I0000" not in result.stderr


def test_verify_json_and_require_gpu(repo_root):
    """--json gives machine-readable checks; --require-gpu fails without a GPU."""
    result = tfdock("verify", "--json", "--require-gpu", cwd=repo_root)
    report = json.loads(result.stdout)
    gpu = next(c for c in report["checks"] if c["name"] == "gpu")
    if report["tensorflow"]["gpus"]:
        pytest.skip("a GPU is visible here; the no-GPU failure cannot be shown")
    assert result.returncode == 1 and report["ok"] is False
    assert gpu["ok"] is False and gpu["detail"].startswith("no GPU is visible to TensorFlow")
    assert all(c["ok"] for c in report["checks"] if c["name"] != "gpu")
    assert [c["name"] for c in report["checks"]] == _documented_cpu_checks(repo_root)


def _documented_cpu_checks(repo_root: Path) -> list[str]:
    """The checks docs/cli.md's table lists, in order, but those for --require-gpu's GPU."""
    rows = re.findall(r"^\| `([^`]+)` \| (.*) \|$", (repo_root / "docs/cli.md").read_text(), re.M)
    return [name for name, text in rows if "--require-gpu` only" not in text]


def _build_probe_package(folder: Path) -> Path:
    (folder / "tfdock_drift_probe").mkdir(parents=True)
    (folder / "tfdock_drift_probe" / "__init__.py").write_text("")
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "tfdock-drift-probe"\nversion = "1.0"\n'
    )
    return folder


@pytest.mark.network
def test_verify_names_added_removed_and_changed_packages(repo_root, tmp_path):
    """In a throwaway copy of the venv, an added, a removed and a changed package are each named."""
    copy = tmp_path / "venv"
    # Hard links: a copy of 2.5 GB in seconds; pip replaces files, never edits them in place.
    subprocess.run(["cp", "-al", str(Path(sys.prefix)), str(copy)], check=True)
    pip = [str(copy / "bin" / "python"), "-m", "pip", "--quiet"]
    probe = _build_probe_package(tmp_path / "probe")
    subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", str(probe)], check=True)
    subprocess.run([*pip, "uninstall", "--yes", "send2trash"], check=True)
    changed = run([*pip, "install", "--no-deps", "six==1.16.0"])
    if changed.returncode != 0:
        pytest.skip(f"cannot reach the package index to install six==1.16.0: {changed.stderr}")
    result = run([copy / "bin" / "python", "-m", "tfdock", "verify"], cwd=repo_root)
    assert result.returncode == 1
    packages = next(line for line in result.stdout.splitlines() if "packages" in line)
    assert packages.startswith("FAIL")
    assert "missing: send2trash==" in packages
    assert "extra: tfdock-drift-probe==1.0 (not in the lock)" in packages
    assert "different: six is 1.16.0, the lock pins 1.17.0" in packages
    # The real venv is untouched.
    assert shutil.which("python", path=str(VENV_PYTHON.parent))
    clean = run([VENV_PYTHON, "-m", "tfdock", "verify", "--json"], cwd=repo_root)
    assert json.loads(clean.stdout)["ok"] is True


def _other_python() -> str | None:
    """Return a working Python that is not 3.11, if this machine has one."""
    candidates = [shutil.which(name) for name in ("python3.12", "python3.13", "python3.10")]
    candidates += [
        str(p) for p in sorted(Path.home().glob(".pyenv/versions/3.1[023]*/bin/python3"))
    ]
    for candidate in filter(None, candidates):
        probe = run([candidate, "-c", "import sys; print(sys.version_info[:2])"])
        if probe.returncode == 0 and probe.stdout.strip() != "(3, 11)":
            return candidate
    return None


def test_setup_with_wrong_python_says_which_is_needed(repo_root, tmp_path):
    """`make setup` with another Python names the version needed and how to get it, and makes nothing."""
    other = _other_python()
    if other is None:
        pytest.skip("no Python other than 3.11 on this machine to try")
    venv = tmp_path / "venv"
    result = make(repo_root, "setup", f"PYTHON={other}", f"VENV={venv}")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert any(
        "but the lock is compiled for Python 3.11: install Python 3.11" in line for line in lines
    ), result.stderr
    assert "Traceback" not in result.stderr
    assert not venv.exists()


def test_setup_with_missing_python_is_one_sentence(repo_root, tmp_path):
    """A PYTHON that does not exist is named, with the install command."""
    result = make(repo_root, "setup", "PYTHON=/nonexistent/python3.11", f"VENV={tmp_path / 'v'}")
    assert result.returncode != 0
    assert "setup: '/nonexistent/python3.11' was not found, and tfdock needs Python 3.11" in (
        result.stderr
    )
