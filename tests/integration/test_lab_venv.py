"""`make lab` from the venv: URL with a token, the token required, one sentence for a busy port.

Also `tfdock lab --ip ::`, listening on IPv6 only, as JupyterLab binds "::".
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from tests.commands import TFDOCK, make, start
from tests.integration.containers import ARTIFACTS
from tests.integration.lab_helpers import (
    URL_LINE,
    command_lines_holding,
    free_port,
    http_status,
    start_make_lab,
)


def test_make_lab_prints_url_with_token_and_requires_it(repo_root):
    """`make lab` prints http://127.0.0.1:PORT/lab?token=...; the API needs that token; Ctrl-C stops it."""
    ARTIFACTS.mkdir(exist_ok=True)
    lab = start_make_lab(repo_root, "lab", ARTIFACTS / "make-lab.log")
    try:
        lab.wait_until_answering(timeout=120)
        url = URL_LINE.search(lab.output()).group(1)
        assert url == f"http://127.0.0.1:{lab.port}/lab?token={lab.token}"
        assert http_status(f"{lab.base}/api/contents?token={lab.token}") == 200
        assert http_status(f"{lab.base}/api/contents") == 403
        assert http_status(f"{lab.base}/api/contents?token=wrong{lab.token}") == 403
        assert command_lines_holding(lab.token) == [], "the token is in a process's arguments"
        lab.interrupt()
        lab.process.wait(timeout=120)  # a bound, not a speed claim: a loaded 2-core box
        assert http_status(f"{lab.base}/api") == 0, "the lab still answers after Ctrl-C"
    finally:
        lab.kill()


def test_make_lab_on_busy_port_says_one_sentence(repo_root):
    """With PORT taken, `make lab` fails with one sentence naming the port and the fix, no traceback."""
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = make(repo_root, "lab", f"PORT={port}", timeout=120)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if not line.startswith("make")]
    assert errors == [
        f"tfdock: error: port {port} on 127.0.0.1 is already in use (another JupyterLab?): stop "
        f"that program or choose another port, e.g. `make lab PORT={port + 1}`."
    ]
    assert "Traceback" not in result.stdout + result.stderr


def test_lab_on_ipv6_answers_at_the_url_it_prints(tmp_path, ipv6_port):
    """`tfdock lab --ip ::` starts, prints http://[::1]:PORT/lab?token=..., and answers there."""
    token = os.urandom(24).hex()
    log = tmp_path / "lab.log"
    with log.open("w") as output:
        lab = start(
            [*TFDOCK, "lab", "--ip", "::", "--port", str(ipv6_port)],
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={"JUPYTER_TOKEN": token},
            start_new_session=True,
        )
    base = f"http://[::1]:{ipv6_port}"
    try:
        deadline = time.monotonic() + 120
        while http_status(f"{base}/api", timeout=2) != 200:
            assert lab.poll() is None, f"the lab exited with {lab.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no answer within 120 s:\n{log.read_text()}"
            time.sleep(0.25)
        assert URL_LINE.search(log.read_text()).group(1) == f"{base}/lab?token={token}"
        assert http_status(f"{base}/api/contents?token={token}") == 200
    finally:
        if lab.poll() is None:
            os.killpg(lab.pid, signal.SIGKILL)
            lab.wait(timeout=30)
