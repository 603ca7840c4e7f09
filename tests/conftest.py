"""Shared fixtures: the repository root and the offline MNIST used by tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# The files that take minutes (image builds, arm64 under QEMU, real training), longest first
# as CI measured them (docs/testing.md). They start first; with TEST_WORKERS=2 the quick
# files then fill in beside them, and no long file starts at the end of the run alone.
LONGEST_FIRST = (
    "test_multiarch.py",
    "test_engines.py",
    "test_devcontainer.py",
    "test_images.py",
    "test_multiworker.py",
    "test_slurm.py",
    "test_lock_workflow.py",
    "test_k8s.py",
)
# Tests (never the kit itself) find the offline MNIST here, or in $TFDOCK_TEST_DATA.
SHARED_MNIST = REPO_ROOT.parent / "shared" / "data" / "mnist"


def pytest_configure(config):
    """Let the processes tests start get Ctrl-C's default handling, as in a terminal.

    A shell starts a background job (`make test &`, a CI runner's step) with SIGINT
    ignored, and an ignored signal stays ignored across exec: the children would never see
    the Ctrl-C a test sends them. A handled one is reset to the default in a child instead.
    Every test process does this (make test's pytest-xdist workers too).
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items):
    """Run the longest files first (LONGEST_FIRST), the rest in their own order after them."""
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root, where the Makefile and the lock live."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """A folder holding the four official MNIST .gz files, or skip saying where it was sought."""
    path = Path(os.environ.get("TFDOCK_TEST_DATA") or SHARED_MNIST)
    if not (path / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(
            f"offline MNIST not found at {path}; set TFDOCK_TEST_DATA to the folder "
            "holding the four official .gz files"
        )
    return path


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """The offline MNIST as tfdock loads it (the arrays and their sha256), loaded once."""
    from tfdock.data import load_mnist

    return load_mnist(mnist_dir)


@pytest.fixture
def mnist_npz(tmp_path, mnist) -> Path:
    """The same images saved as one mnist.npz: to tfdock, other data (its own source and sha256)."""
    import numpy as np

    path = tmp_path / "mnist.npz"
    arrays = ("x_train", "y_train", "x_test", "y_test")
    np.savez(path, **{name: getattr(mnist, name) for name in arrays})
    return path


@pytest.fixture
def ipv6_port() -> int:
    """A TCP port free on the IPv6 loopback (::1), or skip where this host has none."""
    try:
        with socket.create_server(("::1", 0), family=socket.AF_INET6) as probe:
            return probe.getsockname()[1]
    except OSError as exc:
        pytest.skip(f"this host has no IPv6 loopback (::1): {exc.strerror}")


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs, unmounted afterwards; skipped where mounting is not allowed."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)
