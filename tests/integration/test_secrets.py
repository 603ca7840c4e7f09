"""No credential is ever printed, and an index that refuses us says which setting to fix.

Company indexes carry credentials in their URLs. Each command that talks about the index
(or a registry) runs here with a planted secret in its settings, against real servers on
127.0.0.1: one that refuses the credentials (401, 403), one whose TLS certificate this
machine does not trust, one that is not there. Every byte the command prints is searched
for the secret.
"""

from __future__ import annotations

import contextlib
import http.server
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.commands import run, tfdock

SECRET = "s3cretPW-planted-4f2a"
TOKEN = "tok3n-planted-9c1e"


class _Refusing(http.server.BaseHTTPRequestHandler):
    status = 401

    def do_GET(self):
        self.send_response(self.status)
        self.send_header("WWW-Authenticate", 'Basic realm="index"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _index(status: int, context: ssl.SSLContext | None = None) -> Iterator[str]:
    """Serve STATUS for every page on a free loopback port; yield its host:port."""
    handler = type("Handler", (_Refusing,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _tfdock_planted(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run `tfdock ARGS` in CWD with the planted settings ENV, no pip retries, no PIP_CONFIG_FILE."""
    return tfdock(*args, cwd=cwd, env={"PIP_RETRIES": "0", **env, "PIP_CONFIG_FILE": None})


def _no_secret(result: subprocess.CompletedProcess) -> None:
    printed = result.stdout + result.stderr
    assert SECRET not in printed and TOKEN not in printed, printed
    assert "Traceback" not in printed, printed


@pytest.fixture
def locks(repo_root, tmp_path) -> Path:
    """Both .in/.txt pairs in a throwaway folder, as `make lock` and `lock-check` see them."""
    for name in ("requirements.in", "requirements.txt", "requirements-gpu.in",
                 "requirements-gpu.txt"):  # fmt: skip
        shutil.copy(repo_root / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("credentials", [f"alice:{SECRET}", TOKEN])
def test_lock_check_against_an_index_that_refuses_names_index_url(locks, status, credentials):
    """401/403 is one sentence naming index-url, exit 2, never 'did not answer', never the secret."""
    with _index(status) as address:
        url = f"http://{credentials}@{address}/simple"
        result = _tfdock_planted(locks, "lock-check", "requirements.in", "requirements.txt",
                         PIP_INDEX_URL=url)  # fmt: skip
    _no_secret(result)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"tfdock: error: the package index http://{address}/simple refused the credentials "
        f"(HTTP {status}); fix the user and password or token in index-url (PIP_INDEX_URL or "
        "pip.conf)."
    )
    assert "did not answer" not in result.stdout


def test_lock_check_against_an_untrusted_certificate_names_cert(locks, tmp_path):
    """An index whose TLS certificate is not trusted is one sentence naming cert, not 'did not answer'."""
    if not shutil.which("openssl"):
        pytest.skip("openssl makes the test's self-signed certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with _index(404, context) as address:
        url = f"https://alice:{SECRET}@{address}/simple"
        result = _tfdock_planted(locks, "lock-check", "requirements.in", "requirements.txt",
                         PIP_INDEX_URL=url)  # fmt: skip
    _no_secret(result)
    assert result.returncode == 2
    assert "has a TLS certificate this machine does not trust; point cert (PIP_CERT" in (
        result.stderr
    )


def test_lock_check_with_an_index_that_is_not_there_checks_the_structure(locks):
    """No server at all is 'did not answer': the structure is checked, exit 0, no secret shown."""
    result = _tfdock_planted(locks, "lock-check", "requirements.in", "requirements.txt",
                     PIP_INDEX_URL=f"http://alice:{SECRET}@127.0.0.1:9/simple")  # fmt: skip
    _no_secret(result)
    assert result.returncode == 0, result.stderr
    assert "in structure only (the package index did not answer)" in result.stdout


def test_lock_against_an_index_that_refuses_shows_no_secret(locks):
    """`tfdock lock` (make lock) fails in one sentence naming the index without its credentials."""
    with _index(401) as address:
        result = _tfdock_planted(
            locks, "lock", PIP_INDEX_URL=f"http://alice:{SECRET}@{address}/simple"
        )
    _no_secret(result)
    assert result.returncode != 0
    assert f"from http://{address}/simple" in result.stderr
    assert (locks / "requirements.txt").read_bytes() == (
        Path(__file__).parents[2] / "requirements.txt"
    ).read_bytes()


def test_doctor_and_push_never_print_a_secret(repo_root):
    """doctor with a planted index URL, and push given a REGISTRY with credentials, print neither."""
    environment = {"PIP_INDEX_URL": f"https://alice:{SECRET}@idx.example/simple",
                   "ENGINE": "no-such-engine"}  # fmt: skip
    doctor = run(["bash", "scripts/doctor.sh"], cwd=repo_root, env=environment)
    _no_secret(doctor)
    push = run(["bash", "scripts/push-images.sh"], cwd=repo_root,
               env={**environment, "REGISTRY": f"alice:{SECRET}@registry.example.com/team"})  # fmt: skip
    _no_secret(push)
    assert push.returncode == 2
    assert push.stderr.strip().startswith("push: REGISTRY holds credentials")


@pytest.mark.slow
def test_verify_never_prints_a_secret(repo_root):
    """`tfdock verify` with credentials in the index URL prints none of them."""
    result = _tfdock_planted(
        repo_root, "verify", PIP_INDEX_URL=f"https://{TOKEN}@idx.example/simple"
    )
    _no_secret(result)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
