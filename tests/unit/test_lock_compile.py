"""`make lock` hands pip-compile the user's index, certificates and proxy, and nothing else.

It also replaces the two locks as one step: a SIGTERM never leaves a mismatched pair.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.commands import tfdock
from tfdock.lock_compile import compile_environment, index_settings, pip_configuration

PIP_CONF = """\
[global]
index-url = https://mirror.example.com/simple
extra-index-url = https://other.example.com/simple
find-links = /opt/wheels
constraint = /etc/constraints.txt
cert = /etc/company-ca.pem
timeout = 60

[install]
trusted-host = mirror.example.com
no-index = true
"""


@pytest.fixture
def users_pip(tmp_path, monkeypatch):
    """A user's pip setup: a pip.conf named by PIP_CONFIG_FILE and a few PIP_* variables."""
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    config = tmp_path / "pip.conf"
    config.write_text(PIP_CONF)
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    monkeypatch.setenv("PIP_RETRIES", "7")
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "90")
    monkeypatch.setenv("PIP_FIND_LINKS", "/tmp/more-wheels")
    monkeypatch.setenv("PIP_PRE", "1")
    return config


def test_only_the_index_and_how_to_reach_it_pass(users_pip):
    """From pip's own reading of the settings, the index URL, certificate, trusted host, timeout and retries pass; the rest is dropped."""
    settings = index_settings(pip_configuration())
    assert settings == {
        "index-url": "https://mirror.example.com/simple",
        "cert": "/etc/company-ca.pem",
        "trusted-host": "mirror.example.com",
        "timeout": "90",  # PIP_DEFAULT_TIMEOUT beats the file's timeout, as in pip
        "retries": "7",
    }


def test_pip_compile_environment_shows_pip_nothing_else(users_pip):
    """pip, run in the environment pip-compile gets, sees exactly the passed settings: no config file, no find-links, constraint, extra index or pre."""
    environment = compile_environment(index_settings(pip_configuration()))
    assert environment["PIP_CONFIG_FILE"] == os.devnull
    seen = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert sorted(seen) == [
        ":env:.cert='/etc/company-ca.pem'",
        ":env:.config-file='/dev/null'",
        ":env:.index-url='https://mirror.example.com/simple'",
        ":env:.retries='7'",
        ":env:.timeout='90'",
        ":env:.trusted-host='mirror.example.com'",
    ]
    assert environment["PATH"] == os.environ["PATH"], "everything but PIP_* is kept"


def test_without_user_settings_pip_compile_gets_pypi_defaults(monkeypatch):
    """With no pip settings at all, nothing is passed and pip's defaults (PyPI) apply."""
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    assert index_settings(pip_configuration()) == {}


def test_lock_in_a_folder_you_cannot_write_is_one_sentence(repo_root):
    """`tfdock lock` where the locks cannot be written says so before compiling, and changes nothing."""
    folder = Path(tempfile.mkdtemp())  # not under pytest's root-only tmp: nobody must read it
    for name in ("requirements.in", "requirements-gpu.in", "requirements.txt"):
        (folder / name).write_bytes((repo_root / name).read_bytes())
    prefix = []
    if os.getuid() == 0:  # root writes anywhere: ask as nobody
        prefix = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
    folder.chmod(0o555)
    try:
        result = tfdock("lock", prefix=prefix, cwd=folder)
        assert result.returncode == 2
        assert result.stderr.strip() == (
            f"tfdock: error: {folder / 'requirements.txt'} cannot be written by this user "
            f"(uid {65534 if prefix else os.getuid()}); run `make lock` as the owner of the "
            "repository."
        )
        assert not (folder / "requirements-gpu.txt").exists()
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


OLD_LOCK = "six==1.16.0 \\\n    --hash=sha256:" + "1" * 64 + "\n"
NEW_LOCK = "six==1.17.0 \\\n    --hash=sha256:" + "2" * 64 + "\n"
# `tfdock lock` in a child process, with pip-compile (which needs the index) stood in for:
# the CPU lock is compiled as NEW_LOCK, the GPU lock as a copy of the requirements.txt it
# finds through "-c requirements.txt". A real SIGTERM reaches the child at the moment named.
LOCK_WITH_A_SIGTERM = f"""
import os, signal, subprocess, sys
from pathlib import Path
from tfdock import lock_compile

when = sys.argv[1]
real_run, real_replace = subprocess.run, os.replace

def pip_compile(command, **options):
    if "--output-file" not in command:
        return real_run(command, **options)  # pip config list
    folder = Path(options.get("cwd") or ".")
    output = folder / command[command.index("--output-file") + 1]
    if output.name == "requirements.txt":
        output.write_text({NEW_LOCK!r})
    else:
        if when == "compile":
            os.kill(os.getpid(), signal.SIGTERM)
        output.write_text((folder / "requirements.txt").read_text())
    return subprocess.CompletedProcess(command, 0, "", "")

def replace(source, target):
    real_replace(source, target)
    if when == "replace" and Path(target) == Path("requirements.txt"):
        os.kill(os.getpid(), signal.SIGTERM)

subprocess.run, os.replace = pip_compile, replace
lock_compile.compile_locks()
print("compiled")
"""


@pytest.mark.parametrize(
    ("when", "returncode", "locks"),
    [
        ("never", 0, NEW_LOCK),
        ("compile", -signal.SIGTERM, OLD_LOCK),
        ("replace", -signal.SIGTERM, NEW_LOCK),
    ],
    ids=["no-signal", "sigterm-while-compiling", "sigterm-between-the-renames"],
)
def test_the_two_locks_are_replaced_as_one_step(tmp_path, when, returncode, locks):
    """A SIGTERM while the GPU lock compiles leaves both old locks; one between the two renames waits until both are new."""
    (tmp_path / "requirements.in").write_text("six\n")
    (tmp_path / "requirements-gpu.in").write_text("-c requirements.txt\n-r requirements.in\n")
    for lock in ("requirements.txt", "requirements-gpu.txt"):
        (tmp_path / lock).write_text(OLD_LOCK)
    result = subprocess.run(
        [sys.executable, "-c", LOCK_WITH_A_SIGTERM, when],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == returncode, result.stderr
    assert (tmp_path / "requirements.txt").read_text() == locks
    assert (tmp_path / "requirements-gpu.txt").read_text() == locks
    assert ("compiled" in result.stdout) == (when == "never"), "the signal acts once both are in"
    if when == "never":
        assert not list(tmp_path.glob(".tfdock-lock-*")), "the staging folder is removed"
