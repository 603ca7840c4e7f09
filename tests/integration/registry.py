"""A real OCI registry on loopback (Debian's docker-registry), for pushes and pulls in tests."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.lab_helpers import free_port

# Loopback needs no proxy, whatever the environment says.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def registry_get(url: str, accept: str = "*/*"):
    """GET URL from the registry directly; return the headers and the body."""
    request = urllib.request.Request(url, headers={"Accept": accept})
    with _DIRECT.open(request, timeout=30) as response:
        return response.headers, response.read()


@contextlib.contextmanager
def serve_registry(root: Path, port: int | None = None, keep: bool = False) -> Iterator[str]:
    """Serve a registry from ROOT on 127.0.0.1:PORT (a free port if None or taken); yield
    host:port; stop it, and remove ROOT unless told to KEEP it."""
    binary = shutil.which("docker-registry")
    if not binary:
        pytest.skip(
            "docker-registry is not installed (scripts/multiarch-host-setup.sh installs it)"
        )
    port = free_port(port or 0)
    (root / "config.yml").write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    with open(root / "registry.log", "w") as log:
        server = subprocess.Popen([binary, "serve", str(root / "config.yml")], stdout=log,
                                  stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                registry_get(f"http://127.0.0.1:{port}/v2/")
                break
            except OSError:
                assert server.poll() is None, (root / "registry.log").read_text()
                assert time.monotonic() < deadline, "the registry did not answer in 60 s"
                time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
