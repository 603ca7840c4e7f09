"""A multi-worker task whose peer never starts fails in bounded time, in one sentence, and stays stoppable."""

from __future__ import annotations

import json
import signal
import socket

import pytest

from tests.child_output import wait_for_line
from tests.commands import TFDOCK, start
from tfdock.launch import free_loopback_ports

# Generous bounds for a loaded 2-core machine: TensorFlow's import alone can take 20 s there.
START_BOUND_SECONDS = 180
EXIT_BOUND_SECONDS = 60


def _task(mnist_dir, tmp_path, ports, index, timeout=None):
    """Start `tfdock train` as task ``index`` of a two-worker job on ``ports``."""
    tf_config = {
        "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
        "task": {"type": "worker", "index": index},
    }
    env = {"TF_CONFIG": json.dumps(tf_config), "PYTHONUNBUFFERED": "1",
           "TFDOCK_STARTUP_TIMEOUT": None if timeout is None else str(timeout)}  # fmt: skip
    command = [*TFDOCK, "train", "--epochs", "1", "--limit", "256"]
    return start(
        [*command, "--data", str(mnist_dir), "--output-dir", str(tmp_path / "runs")], env=env
    )


def _finish(process, timeout: float = EXIT_BOUND_SECONDS) -> tuple[str, str]:
    """Return PROCESS's (stdout, stderr) once it ends within TIMEOUT s; it is always ended."""
    try:
        return process.communicate(timeout=timeout)
    finally:
        process.kill()
        process.wait()


def test_a_peer_that_never_starts_ends_the_wait_in_one_sentence(mnist_dir, tmp_path):
    """Worker 0 of two, worker 1 never started: it says it waits, then exits 2 naming worker 1."""
    ports = free_loopback_ports(2)
    process = _task(mnist_dir, tmp_path, ports, 0, timeout=5)
    out, err = _finish(process, START_BOUND_SECONDS)
    assert process.returncode == 2, out + err
    assert (
        f"tfdock: worker 0 is waiting up to 5 s (TFDOCK_STARTUP_TIMEOUT) for worker 1 "
        f"(127.0.0.1:{ports[1]}) to start\n"
    ) in out
    assert err.splitlines()[-1] == (
        f"tfdock: error: worker 1 (127.0.0.1:{ports[1]}) did not start within 5 s; start every "
        "task that TF_CONFIG lists (docs/distribution.md), or allow longer with "
        "TFDOCK_STARTUP_TIMEOUT=SECONDS."
    )
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("signal_number", "returncode"), [(signal.SIGINT, 130), (signal.SIGTERM, -signal.SIGTERM)]
)
def test_ctrl_c_and_sigterm_end_the_wait_for_peers(mnist_dir, tmp_path, signal_number, returncode):
    """While worker 0 waits for a worker 1 that never starts, SIGINT or SIGTERM ends it at once."""
    process = _task(mnist_dir, tmp_path, free_loopback_ports(2), 0)
    try:
        wait_for_line(process, "^tfdock: worker 0 is waiting up to 300 s", START_BOUND_SECONDS)
        process.send_signal(signal_number)
        process.wait(timeout=EXIT_BOUND_SECONDS)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == returncode
    if signal_number == signal.SIGINT:
        assert process.stderr.read().splitlines()[-1] == "tfdock: interrupted"


def test_a_peer_port_that_never_joins_is_named(mnist_dir, tmp_path):
    """Worker 1's port answers but no tfdock joins: TensorFlow gives up in time, worker 1 is named."""
    ports = free_loopback_ports(2)
    with socket.create_server(("127.0.0.1", ports[1])):
        process = _task(mnist_dir, tmp_path, ports, 0, timeout=5)
        _, err = _finish(process, START_BOUND_SECONDS)
    assert process.returncode == 2
    assert (
        f"tfdock: error: worker 0 could not join the multi-worker job: worker 1 "
        f"(127.0.0.1:{ports[1]}) did not join within 5 s; "
    ) in err
    assert "Traceback" not in err


def test_a_taken_port_of_its_own_is_one_sentence(mnist_dir, tmp_path):
    """Another program on this task's own port: exit 75 (try again elsewhere), one sentence."""
    ports = free_loopback_ports(2)
    with socket.create_server(("127.0.0.1", ports[0])):
        process = _task(mnist_dir, tmp_path, ports, 0)
        out, err = _finish(process, START_BOUND_SECONDS)
    assert process.returncode == 75, out + err
    assert err.splitlines() == [
        f"tfdock: error: port {ports[0]} of worker 0 (127.0.0.1:{ports[0]} in TF_CONFIG) is "
        "already in use by another program; stop it, or give this task a free port in "
        "TF_CONFIG on every task."
    ]


def test_a_bad_startup_timeout_is_refused_before_any_folder(mnist_dir, tmp_path):
    """TFDOCK_STARTUP_TIMEOUT=abc is one sentence, and no run folder is made."""
    process = _task(mnist_dir, tmp_path, free_loopback_ports(2), 0, timeout="abc")
    _, err = _finish(process)
    assert process.returncode == 2
    assert err.splitlines() == [
        "tfdock: error: TFDOCK_STARTUP_TIMEOUT=abc is not a number of seconds above 0; set it "
        "to how long a task may wait for the others to start, e.g. TFDOCK_STARTUP_TIMEOUT=600."
    ]
    assert not (tmp_path / "runs").exists()
