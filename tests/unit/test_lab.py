"""The lab's port probe agrees with JupyterLab's own bind; lab-health reads its port safely."""

from __future__ import annotations

import socket

import pytest

from tests.commands import tfdock
from tfdock.errors import TfdockError
from tfdock.lab import check_port_free


def _port_in_time_wait() -> int:
    """Return a port whose only use is a closed connection in TIME-WAIT, as after a lab restart."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        served, _ = listener.accept()
        served.close()  # the server's side closes first, so its port goes to TIME-WAIT
        client.recv(1)
        client.close()
    return port


def test_a_port_in_time_wait_is_free():
    """A port left in TIME-WAIT by a stopped server is reported free, as JupyterLab can bind it."""
    port = _port_in_time_wait()
    with socket.socket() as plain, pytest.raises(OSError, match="in use"):
        plain.bind(("127.0.0.1", port))  # the TIME-WAIT is real: a bind without SO_REUSEADDR fails
    check_port_free("127.0.0.1", port)


def test_a_listening_port_is_busy():
    """A port something listens on is refused in one sentence naming it and the fix."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with pytest.raises(TfdockError, match=rf"^port {port} on 127.0.0.1 is already in use"):
            check_port_free("127.0.0.1", port)


def test_an_ipv6_address_is_probed_as_ipv6(ipv6_port):
    """--ip :: is probed on IPv6: a free port passes, one an IPv6 server holds is refused by name."""
    check_port_free("::", ipv6_port)
    with (
        socket.create_server(("::", ipv6_port), family=socket.AF_INET6),
        pytest.raises(TfdockError, match=rf"^port {ipv6_port} on :: is already in use"),
    ):
        check_port_free("::", ipv6_port)


def test_lab_health_with_a_bad_port_is_one_sentence():
    """TFDOCK_LAB_PORT=abc is named in one sentence, with no traceback."""
    result = tfdock("lab-health", env={"TFDOCK_LAB_PORT": "abc"})
    assert result.returncode == 2
    assert result.stderr == (
        "tfdock: error: TFDOCK_LAB_PORT=abc is not a TCP port; set it to the lab's port "
        "(1 to 65535), or unset it for 8888.\n"
    )
