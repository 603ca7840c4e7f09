"""Run a real multi-worker job on this machine: N `tfdock train` processes on loopback ports.

Each worker is an ordinary ``tfdock train --strategy multi-worker`` process with
its own ``TF_CONFIG``, exactly as on a cluster; they share one run directory,
which only the chief (worker 0) writes. The launcher is also the job's
watchdog: when a worker dies, the others are given a short grace to fail on
their own (their missed-heartbeat detection), then stopped, and the job fails
with one sentence saying which worker died. When the launcher itself dies
(even by SIGKILL), Linux kills its workers, so none is left running.

The ports are free when the launcher picks them, but another program may take
one before its worker listens there. That worker then exits with
``PORT_IN_USE_EXIT_CODE`` at once, and the launcher starts the job again on
new ports, a few times at most.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tfdock._signals import signal_name
from tfdock.cluster import TF_CONFIG_ENV, tf_config_for
from tfdock.errors import TfdockError
from tfdock.peers import PORT_IN_USE_EXIT_CODE
from tfdock.run_dir import how_to_go_on, remove_if_unused

LOOPBACK = "127.0.0.1"
DEFAULT_WORKERS = 2
# After one worker fails: how long the others get to notice and stop on their own.
WORKER_LOSS_GRACE_SECONDS = 30.0
# After one worker finishes cleanly: how long the others get to finish too.
FINISH_GRACE_SECONDS = 300.0
TERMINATE_GRACE_SECONDS = 10.0
# Starts of the job, each on newly picked ports, before a taken port fails it.
PORT_ATTEMPTS = 3
# Tells a worker which process must be its parent (see die_with_launcher).
LAUNCHER_PID_ENV = "TFDOCK_LAUNCHER_PID"
# prctl(2) option: the signal the kernel sends a process when its parent dies.
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WorkerExit:
    """The first worker that failed, and how."""

    index: int
    code: int

    def __str__(self) -> str:
        return f"worker {self.index} {_describe_exit(self.code)}"


def free_loopback_ports(count: int) -> list[int]:
    """Return ``count`` distinct TCP ports that are free on the loopback interface now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def launch_local(workers: int, train_args: list[str], run_dir: Path) -> int:
    """Start ``workers`` local workers training into ``run_dir``; return 0 when all finish."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        addresses = [f"{LOOPBACK}:{port}" for port in free_loopback_ports(workers)]
        print(
            f"tfdock: starting {workers} workers on {', '.join(addresses)}; "
            f"worker 0 is the chief and writes {run_dir}",
            flush=True,
        )
        try:
            failure = _run_job(addresses, train_args)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(_job_how_to_go_on(run_dir)) from None
        if not (isinstance(failure, WorkerExit) and failure.code == PORT_IN_USE_EXIT_CODE):
            break
        if attempt < PORT_ATTEMPTS:
            print(
                f"tfdock: another program took worker {failure.index}'s port; "
                "starting again on new ports",
                flush=True,
            )
    if failure:
        raise TfdockError(f"{failure}; the job failed: {_job_how_to_go_on(run_dir)}.")
    print(f"tfdock: all {workers} workers finished; artifacts in {run_dir}", flush=True)
    return 0


def _job_how_to_go_on(run_dir: Path) -> str:
    """Resume the job; one that never recorded its run has its unused folder removed, and starts again."""
    remove_if_unused(run_dir)
    return how_to_go_on(run_dir, "tfdock multiworker --resume {run_dir}")


def _run_job(addresses: list[str], train_args: list[str]) -> WorkerExit | str | None:
    """Run one worker per address until all end; return why the job failed, or None."""
    processes: list[subprocess.Popen[bytes]] = []
    printers: list[threading.Thread] = []
    try:
        for index in range(len(addresses)):
            process = _start_worker(addresses, index, train_args)
            processes.append(process)
            print(f"tfdock: worker {index} has pid {process.pid}", flush=True)
            printer = threading.Thread(
                target=_print_prefixed, args=(process, f"[worker {index}] "), daemon=True
            )
            printer.start()
            printers.append(printer)
        return _watch(processes)
    except BaseException:
        _stop(processes)
        raise
    finally:
        for printer in printers:
            printer.join(timeout=5)


def _start_worker(
    addresses: list[str], index: int, train_args: list[str]
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        TF_CONFIG_ENV: tf_config_for(addresses, index),
        "PYTHONUNBUFFERED": "1",
        LAUNCHER_PID_ENV: str(os.getpid()),
    }
    command = [sys.executable, "-m", "tfdock._worker", "train", "--strategy", "multi-worker"]
    return subprocess.Popen(
        [*command, *train_args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def die_with_launcher(launcher_pid: int) -> None:
    """In a worker, first thing: have Linux kill it when the launcher dies.

    Set here, after exec, rather than between fork and exec (``preexec_fn``),
    which is unsafe in a launcher that already runs threads. A launcher that
    died before this call is caught by the parent check that follows.
    SIGKILL, because TensorFlow catches SIGTERM while the strategy is built.
    Its run directory is safe: every backup is written atomically.
    """
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != launcher_pid:
        raise TfdockError(
            f"the launcher (pid {launcher_pid}) that started this worker is gone; "
            "start the job again with `tfdock multiworker`."
        )


def _print_prefixed(process: subprocess.Popen[bytes], prefix: str) -> None:
    assert process.stdout is not None
    for raw in process.stdout:
        sys.stdout.write(prefix + raw.decode(errors="replace"))
        sys.stdout.flush()


def _watch(processes: list[subprocess.Popen[bytes]]) -> WorkerExit | str | None:
    """Wait for the workers; return why the job failed, or None when all exit 0.

    A worker that could not listen on its port stops the job at once, for a retry.
    """
    first_failure: WorkerExit | str | None = None
    deadline: float | None = None
    while True:
        codes = [process.poll() for process in processes]
        if all(code is not None for code in codes):
            break
        for index, code in enumerate(codes):
            if code and first_failure is None:
                first_failure = WorkerExit(index, code)
                if code == PORT_IN_USE_EXIT_CODE:
                    _stop(processes)
                    return first_failure
                print(f"tfdock: {first_failure}; waiting for the others to stop", flush=True)
                deadline = time.monotonic() + WORKER_LOSS_GRACE_SECONDS
        if deadline is None and any(code == 0 for code in codes):
            deadline = time.monotonic() + FINISH_GRACE_SECONDS
        if deadline is not None and time.monotonic() > deadline:
            running = [i for i, code in enumerate(codes) if code is None]
            first_failure = first_failure or (
                f"worker(s) {', '.join(map(str, running))} still ran "
                f"{FINISH_GRACE_SECONDS:.0f} s after another finished"
            )
            print(f"tfdock: stopping worker(s) {', '.join(map(str, running))}", flush=True)
            _stop(processes)
            break
        time.sleep(0.2)
    if first_failure is None:
        failed = [(i, p.returncode) for i, p in enumerate(processes) if p.returncode]
        if failed:
            first_failure = WorkerExit(*failed[0])
    return first_failure


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"was killed by {signal_name(-code)}"
    return f"exited with code {code}"


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """Terminate the workers still running; kill those that ignore it."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + TERMINATE_GRACE_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
