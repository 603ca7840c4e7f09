"""Start the kit's JupyterLab (venv or container) the way a user does, and talk to it (and to TensorBoard) with an HTTP client and a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.commands import start

URL_LINE = re.compile(r"tfdock: JupyterLab is starting; open (http://\S+)")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1280,800",
    "--virtual-time-budget=30000",
]


def open_in_chromium(
    url: str, screenshot: Path
) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """Load URL in Debian's headless chromium: its rendered DOM, then a screenshot to SCREENSHOT.

    Skips the test, naming what installs it, when chromium is missing.
    """
    chromium = shutil.which("chromium")
    if not chromium:
        pytest.skip("chromium is not installed (scripts/ci-tools-setup.sh installs it)")
    screenshot.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        flags = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
        dom = subprocess.run(
            [*flags, "--dump-dom", url], capture_output=True, text=True, timeout=180
        )
        shot = subprocess.run(
            [*flags, f"--screenshot={screenshot}", url], capture_output=True, text=True, timeout=180
        )
    return dom, shot


def free_port(preferred: int = 0) -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now: PREFERRED where it
    is free, else one the system picks. A port whose last connections linger in TIME_WAIT
    counts as free, as it does for the servers started on it (they set SO_REUSEADDR)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def command_lines_holding(secret: str) -> list[str]:
    """Return the command line of every process on this machine whose arguments hold ``secret``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            arguments = cmdline.read_bytes()
        except OSError:  # the process ended, or is not ours to read
            continue
        if secret.encode() in arguments:
            found.append(arguments.replace(b"\0", b" ").decode(errors="replace"))
    return found


def http_status(url: str, timeout: float = 5.0) -> int:
    """GET ``url`` without following redirects and return the HTTP status (0 if unreachable)."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


def get_json(url: str, timeout: float = 10.0):
    """GET ``url`` and decode its JSON body."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


@dataclass
class RunningLab:
    """A lab started by `make lab` or `make docker-lab`, with what the user saw."""

    process: subprocess.Popen
    port: int
    token: str
    log: Path
    started: float

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until_answering(self, timeout: float = 240) -> float:
        """Wait for /api to answer 200; return the seconds since `make` was started."""
        deadline = time.monotonic() + timeout
        while http_status(f"{self.base}/api", timeout=2) != 200:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the lab exited with {self.process.returncode}:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"the lab did not answer within {timeout} s:\n{self.output()}")
            time.sleep(0.25)
        return time.monotonic() - self.started

    def interrupt(self) -> None:
        """Press Ctrl-C: SIGINT to the whole foreground process group, as a terminal does."""
        os.killpg(self.process.pid, signal.SIGINT)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def start_make_lab(repo_root: Path, target: str, log: Path, **env: str) -> RunningLab:
    """Run `make TARGET` (lab or docker-lab) in its own process group with a known token."""
    port = int(env.pop("PORT", free_port()))
    token = env.pop("JUPYTER_TOKEN", os.urandom(24).hex())
    handle = log.open("w")
    started = time.monotonic()
    process = start(
        ["make", "-C", str(repo_root), target],
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**env, "PORT": str(port), "JUPYTER_TOKEN": token},
        start_new_session=True,
    )
    return RunningLab(process=process, port=port, token=token, log=log, started=started)
