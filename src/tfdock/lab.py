"""Start JupyterLab with a token, on a port checked first, and answer health checks."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tfdock.errors import TfdockError

DEFAULT_PORT = 8888
DEFAULT_IP = "127.0.0.1"
TOKEN_ENV = "JUPYTER_TOKEN"
PORT_ENV = "TFDOCK_LAB_PORT"


def check_port_free(
    ip: str, port: int, program: str = "JupyterLab", retry: str = "make lab PORT"
) -> None:
    """Raise a clear error when ``ip:port`` is taken or cannot be bound.

    The probe binds the way JupyterLab's server (tornado's bind_sockets) will: every
    address getaddrinfo gives for ``ip`` (IPv4, IPv6 or both), IPv6 ones IPv6-only,
    with SO_REUSEADDR, so a port whose last connections linger in TIME-WAIT after a
    restart is free.
    """
    try:
        addresses = socket.getaddrinfo(
            ip or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise TfdockError(
            f"--ip {ip} is not an address this machine can listen on ({exc.strerror}); "
            "choose another --ip, e.g. 127.0.0.1, 0.0.0.0 or ::."
        ) from None
    with contextlib.ExitStack() as probes:
        for family, kind, protocol, _, address in dict.fromkeys(addresses):
            try:
                probe = probes.enter_context(socket.socket(family, kind, protocol))
            except OSError as exc:
                if exc.errno == errno.EAFNOSUPPORT:
                    continue  # as tornado does: a family this kernel lacks is skipped
                raise
            _bind_like_jupyterlab(probe, address, ip, port, (program, retry))


def _bind_like_jupyterlab(
    probe: socket.socket, address: tuple, ip: str, port: int, who: tuple[str, str]
) -> None:
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if probe.family == socket.AF_INET6:
        probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            program, retry = who
            raise TfdockError(
                f"port {port} on {ip} is already in use (another {program}?): stop that "
                f"program or choose another port, e.g. `{retry}={port + 1}`."
            ) from None
        raise TfdockError(
            f"cannot listen on {_host(ip)}:{port} ({exc.strerror}); choose another --ip or --port."
        ) from None


def _host(ip: str) -> str:
    """Write ``ip`` as the host part of a URL: an IPv6 address in brackets."""
    return f"[{ip}]" if ":" in ip else ip


def shown_host(ip: str) -> str:
    """The host a URL names for a server listening on ``ip``.

    A server on every address is reached on loopback; on "::" (IPv6 only, as tornado
    binds) on ::1.
    """
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(ip, _host(ip))


def lab_command(ip: str, port: int, root_dir: Path) -> list[str]:
    """Return the jupyter-lab command line: no browser, and no token.

    The token travels in the environment ($JUPYTER_TOKEN, which jupyter_server
    reads), never in arguments, which any local user can read with `ps`.
    """
    return [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--ServerApp.ip={ip}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.allow_remote_access=True",
        # Ctrl-C in a terminal stops the lab at once instead of asking "Shut down (y/[n])?".
        "--ServerApp.answer_yes=True",
        # Root only where the caller is root already (a root host running --user 0).
        f"--ServerApp.allow_root={os.geteuid() == 0}",
    ]


def start_lab(ip: str, port: int, url_port: int | None, root_dir: Path) -> int:
    """Check the port, print the URL with its token, and replace this process with JupyterLab."""
    if not 0 < port < 65536:
        raise TfdockError(f"--port {port} is not a TCP port; choose one from 1 to 65535.")
    if not root_dir.is_dir():
        raise TfdockError(
            f"the notebook folder {root_dir} does not exist; pass an existing --root-dir."
        )
    check_port_free(ip, port)
    token = os.environ.get(TOKEN_ENV) or secrets.token_hex(24)
    if len(token) < 16:
        raise TfdockError(f"{TOKEN_ENV} is shorter than 16 characters; use a longer, random token.")
    url = f"http://{shown_host(ip)}:{url_port or port}/lab?token={token}"
    print(f"tfdock: JupyterLab is starting; open {url}", flush=True)
    env = {**os.environ, TOKEN_ENV: token, PORT_ENV: str(port)}
    command = lab_command(ip, port, root_dir)
    os.execvpe(command[0], command, env)
    return 0  # not reached


def lab_health(port: int | None = None, timeout: float = 4.0) -> int:
    """Return 0 when the JupyterLab on this machine answers its API, 1 otherwise."""
    port = port or _port_from_environment()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=timeout) as response:
            version = json.load(response).get("version", "?")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"unhealthy: JupyterLab on port {port} does not answer ({exc})", file=sys.stderr)
        return 1
    print(f"healthy: jupyter_server {version} on port {port}")
    return 0


def _port_from_environment() -> int:
    """Read the lab's port from $TFDOCK_LAB_PORT (set by `tfdock lab`), else the default."""
    text = os.environ.get(PORT_ENV, "").strip()
    if not text:
        return DEFAULT_PORT
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise TfdockError(
            f"{PORT_ENV}={text} is not a TCP port; set it to the lab's port (1 to 65535), "
            f"or unset it for {DEFAULT_PORT}."
        )
    return int(text)
