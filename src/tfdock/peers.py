"""Join a multi-worker job: wait for the other tasks, bounded, and stay stoppable.

MultiWorkerMirroredStrategy connects the tasks inside one C++ call that holds
Python's GIL: while it waits for a task that never starts, no Python code runs,
so Ctrl-C is never acted on, and TensorFlow installs its own SIGTERM handler
(a preemption notice that only records the signal). By default it waits an
hour. So the long wait happens here, in Python, before that call:

1. This task listens on its own TF_CONFIG port, so that the others can see it
   has started. A port another program holds fails at once, in one sentence.
2. It connects to every other task's port until all answer, or until the
   start-up timeout (``TFDOCK_STARTUP_TIMEOUT`` seconds) passes; then it fails
   in one sentence naming the tasks that never started.
3. It builds the strategy, with TensorFlow's coordination service told to give
   up after the same timeout (a task whose port answers but never joins), and
   with Ctrl-C and SIGTERM set to end the process at once while C++ holds the
   GIL. Afterwards Ctrl-C is Python's again, and SIGTERM ends the process at
   once, as it does a single-process run (TensorFlow's handler is replaced).
"""

from __future__ import annotations

import contextlib
import errno
import re
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

from tfdock._internals import MissingInternal, configure_coordination_service
from tfdock.cluster import STARTUP_TIMEOUT_ENV, Cluster
from tfdock.errors import TfdockError

PROBE_INTERVAL_SECONDS = 0.5
# sysexits' EX_TEMPFAIL: this task's port was taken; a launcher may retry on others.
PORT_IN_USE_EXIT_CODE = 75
_TASK_NAME = re.compile(r"/job:(\w+)/replica:\d+/task:(\d+)")


class PortInUseError(TfdockError):
    """This task's TF_CONFIG port is held by another program."""

    exit_code = PORT_IN_USE_EXIT_CODE


def join_cluster(tf: Any, cluster: Cluster, communication_options: Any) -> Any:
    """Wait for every task of ``cluster``, then build its MultiWorkerMirroredStrategy."""
    with _holding_port(cluster):
        wait_for_peers(cluster)
    _configure_coordination(cluster)
    try:
        with _signals_end_the_process():
            return tf.distribute.MultiWorkerMirroredStrategy(
                communication_options=communication_options
            )
    except tf.errors.OpError as exc:
        raise TfdockError(_join_failure(cluster, exc)) from None


def wait_for_peers(cluster: Cluster) -> None:
    """Return when every other task's port answers; fail after the start-up timeout."""
    timeout = cluster.startup_timeout
    deadline = time.monotonic() + timeout
    missing = cluster.peers()
    announced = False
    while True:
        missing = {name: address for name, address in missing.items() if not _answers(address)}
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise TfdockError(
                f"{_describe(missing)} did not start within {timeout:g} s; start every task "
                f"that TF_CONFIG lists (docs/distribution.md), or allow longer with "
                f"{STARTUP_TIMEOUT_ENV}=SECONDS."
            )
        if not announced:
            print(
                f"tfdock: {cluster.name} is waiting up to {timeout:g} s ({STARTUP_TIMEOUT_ENV}) "
                f"for {_describe(missing)} to start",
                flush=True,
            )
            announced = True
        time.sleep(PROBE_INTERVAL_SECONDS)


def _answers(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
            return True
    except OSError:  # refused, unreachable, or a name not resolvable yet
        return False


def _describe(tasks: dict[str, str]) -> str:
    named = [f"{name} ({address})" for name, address in tasks.items()]
    return named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]


@contextlib.contextmanager
def _holding_port(cluster: Cluster) -> Iterator[None]:
    """Listen on this task's port (all interfaces, as TensorFlow's server does) for the block."""
    port = int(cluster.address.rpartition(":")[2])
    dual_stack = socket.has_dualstack_ipv6()
    try:
        listener = socket.create_server(
            ("", port),
            family=socket.AF_INET6 if dual_stack else socket.AF_INET,
            dualstack_ipv6=dual_stack,
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} of {cluster.name} ({cluster.address} in TF_CONFIG) is already in "
                "use by another program; stop it, or give this task a free port in TF_CONFIG "
                "on every task."
            ) from None
        raise TfdockError(
            f"{cluster.name} cannot listen on port {port} ({exc.strerror}); give it another "
            "port in TF_CONFIG on every task."
        ) from None
    with listener:
        yield


def _configure_coordination(cluster: Cluster) -> None:
    """Configure TensorFlow's coordination service as the strategy would, plus a time limit.

    The strategy configures the service itself only when nothing has; the
    register barrier makes every task's connect wait for all of them and fail,
    naming the missing ones, after ``cluster_register_timeout_in_ms``.

    A TensorFlow whose coordination service cannot be configured so trains on,
    after one line: the limit only bounds the wait for a task whose port
    answers (wait_for_peers saw it) but that never joins. The strategy then
    configures the service itself, the training is the same, and Ctrl-C and
    SIGTERM still end the wait (_signals_end_the_process).
    """
    leader = "chief" if "chief" in cluster.addresses else "worker"
    try:
        configure_coordination_service(
            leader=f"/job:{leader}/replica:0/task:0",
            tasks={job: len(addresses) for job, addresses in cluster.addresses.items()},
            register_timeout_ms=int(cluster.startup_timeout * 1000),
        )
    except MissingInternal as missing:
        print(
            f"tfdock: {missing}, so {cluster.name} cannot limit its wait for a task that "
            f"answers but never joins to {cluster.startup_timeout:g} s ({STARTUP_TIMEOUT_ENV}): "
            "TensorFlow's own limit applies, and Ctrl-C stops the wait.",
            flush=True,
        )


@contextlib.contextmanager
def _signals_end_the_process() -> Iterator[None]:
    """Let SIGINT and SIGTERM end the process while C++ holds the GIL; then hand them back."""
    interrupt, terminate = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, interrupt if interrupt is not None else signal.SIG_DFL)
        # Replaces TensorFlow's preemption handler, which would swallow SIGTERM.
        signal.signal(signal.SIGTERM, terminate if terminate is not None else signal.SIG_DFL)


def _join_failure(cluster: Cluster, exc: BaseException) -> str:
    """Say which task kept the job from forming, from the coordination service's error."""
    text = str(exc)
    # The barrier's error lists the late tasks one per line after this, up to a blank line.
    late = text.partition("timed out task names:")[2].strip("\n").partition("\n\n")[0]
    names = _task_names(cluster, late)
    if not names and (leader := re.search(r"remote target (/job:\S+)", text)):
        names = _task_names(cluster, leader.group(1))
    who = _describe(names) if names else "another task"
    return (
        f"{cluster.name} could not join the multi-worker job: {who} did not join within "
        f"{cluster.startup_timeout:g} s; check that every task that TF_CONFIG lists runs "
        f"tfdock (not another program on its port), or allow longer with "
        f"{STARTUP_TIMEOUT_ENV}=SECONDS."
    )


def _task_names(cluster: Cluster, text: str) -> dict[str, str]:
    found = {}
    for job, index in _TASK_NAME.findall(text):
        addresses = cluster.addresses.get(job, [])
        if int(index) < len(addresses):
            found[f"{job} {index}"] = addresses[int(index)]
    return found
