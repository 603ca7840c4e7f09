"""`make lock` hands pip-compile the user's index, certificates and proxy, and nothing else."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

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
        result = subprocess.run(
            [*prefix, sys.executable, "-m", "tfdock", "lock"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
        )
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
