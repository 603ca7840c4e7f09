"""Run a real multi-worker job on this machine: N `tfdock train` processes on loopback ports.

Each worker is an ordinary ``tfdock train --strategy multi-worker`` process with
its own ``TF_CONFIG``, exactly as on a cluster; they share one run directory,
which only the chief (worker 0) writes. The launcher is also the job's
watchdog: when a worker dies, the others are given a short grace to fail on
their own (their missed-heartbeat detection), then stopped, and the job fails
with one sentence saying which worker died. When the launcher itself dies
(even by SIGKILL), Linux kills its workers, so none is left running.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tfdock.errors import TfdockError

LOOPBACK = "127.0.0.1"
DEFAULT_WORKERS = 2
# After one worker fails: how long the others get to notice and stop on their own.
WORKER_LOSS_GRACE_SECONDS = 30.0
# After one worker finishes cleanly: how long the others get to finish too.
FINISH_GRACE_SECONDS = 300.0
TERMINATE_GRACE_SECONDS = 10.0
# prctl(2) option: the signal the kernel sends a process when its parent dies.
PR_SET_PDEATHSIG = 1


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


def tf_config_for(addresses: list[str], index: int) -> str:
    """Return worker ``index``'s TF_CONFIG for a job of ``addresses``."""
    return json.dumps(
        {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
    )


def launch_local(workers: int, train_args: list[str], run_dir: Path) -> int:
    """Start ``workers`` local workers training into ``run_dir``; return 0 when all finish."""
    addresses = [f"{LOOPBACK}:{port}" for port in free_loopback_ports(workers)]
    print(
        f"tfdock: starting {workers} workers on {', '.join(addresses)}; "
        f"worker 0 is the chief and writes {run_dir}",
        flush=True,
    )
    processes: list[subprocess.Popen[bytes]] = []
    printers: list[threading.Thread] = []
    try:
        # Every worker is started before any printer thread: preexec_fn runs
        # between fork and exec, which is only safe while the launcher has one thread.
        for index in range(workers):
            env = {
                **os.environ,
                "TF_CONFIG": tf_config_for(addresses, index),
                "PYTHONUNBUFFERED": "1",
            }
            command = [sys.executable, "-m", "tfdock", "train", "--strategy", "multi-worker"]
            process = subprocess.Popen(
                [*command, *train_args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_launcher if sys.platform == "linux" else None,
            )
            processes.append(process)
            print(f"tfdock: worker {index} has pid {process.pid}", flush=True)
        for index, process in enumerate(processes):
            printer = threading.Thread(
                target=_print_prefixed, args=(process, f"[worker {index}] "), daemon=True
            )
            printer.start()
            printers.append(printer)
        failure = _watch(processes)
    except BaseException:
        _stop(processes)
        raise
    finally:
        for printer in printers:
            printer.join(timeout=5)
    if failure:
        raise TfdockError(
            f"{failure}; the job failed. Rerun with --resume {run_dir} to continue from the "
            "last completed epoch."
        )
    print(f"tfdock: all {workers} workers finished; artifacts in {run_dir}", flush=True)
    return 0


def _die_with_launcher() -> None:
    """In a new worker, before exec: have Linux kill it when the launcher dies.

    SIGKILL, because a multi-worker TensorFlow process catches SIGTERM and keeps
    running. Its run directory is safe: every backup is written atomically.
    Without this, a worker would train on until its next line of output found
    the launcher's end of the pipe closed.
    """
    import ctypes

    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))


def _print_prefixed(process: subprocess.Popen[bytes], prefix: str) -> None:
    assert process.stdout is not None
    for raw in process.stdout:
        sys.stdout.write(prefix + raw.decode(errors="replace"))
        sys.stdout.flush()


def _watch(processes: list[subprocess.Popen[bytes]]) -> str | None:
    """Wait for the workers; return why the job failed, or None when all exit 0."""
    first_failure: str | None = None
    deadline: float | None = None
    while True:
        codes = [process.poll() for process in processes]
        if all(code is not None for code in codes):
            break
        for index, code in enumerate(codes):
            if code and first_failure is None:
                first_failure = f"worker {index} {_describe_exit(code)}"
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
            first_failure = f"worker {failed[0][0]} {_describe_exit(failed[0][1])}"
    return first_failure


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
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
