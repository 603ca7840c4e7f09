"""Pick the tf.distribute strategy for a run, and read the cluster from TF_CONFIG.

``TF_CONFIG`` is TensorFlow's standard way to tell each process of a
multi-worker job who it is (Kubernetes operators and cloud training services
set it). This module only reads and checks it; MultiWorkerMirroredStrategy
itself connects the workers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tfdock._internals import MissingInternal, clear_captured_strategy
from tfdock.errors import TfdockError
from tfdock.peers import (
    DEFAULT_STARTUP_TIMEOUT_SECONDS,
    STARTUP_TIMEOUT_ENV,
    join_cluster,
    parse_startup_timeout,
)

STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker")
DEFAULT_STRATEGY = "auto"
TF_CONFIG_ENV = "TF_CONFIG"
TASK_TYPES = ("chief", "worker")
# A collective (the gradient all-reduce of one step) that waits longer than this
# fails instead of hanging: a peer that is alive but stuck. A peer that died is
# noticed sooner, by the coordination service's missed heartbeats (about 10 s).
COLLECTIVE_TIMEOUT_SECONDS = 300.0
TF_CONFIG_EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'


@dataclass(frozen=True)
class Cluster:
    """This process's place in a multi-worker job, as TF_CONFIG describes it."""

    task_type: str
    task_index: int
    size: int
    """Number of tasks (chief and workers) that train together."""
    is_chief: bool
    """The one task that writes the run directory's artifacts."""
    addresses: dict[str, list[str]] = field(default_factory=dict)
    """Each task type's host:port addresses, as TF_CONFIG lists them."""
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_SECONDS
    """Seconds to wait for the other tasks to start (TFDOCK_STARTUP_TIMEOUT)."""

    @property
    def name(self) -> str:
        return f"{self.task_type} {self.task_index}"

    @property
    def address(self) -> str:
        """This task's own host:port."""
        return self.addresses[self.task_type][self.task_index]

    def peers(self) -> dict[str, str]:
        """Return {task name: host:port} for every other task of the job."""
        return {
            f"{task_type} {index}": address
            for task_type, addresses in self.addresses.items()
            for index, address in enumerate(addresses)
            if (task_type, index) != (self.task_type, self.task_index)
        }


def read_cluster(environ: Mapping[str, str] | None = None) -> Cluster | None:
    """Parse ``TF_CONFIG`` (and the start-up timeout); None when unset, else one clear sentence."""
    environ = os.environ if environ is None else environ
    text = environ.get(TF_CONFIG_ENV, "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad_tf_config(f"is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(config, dict):
        raise _bad_tf_config("is not a JSON object")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise _bad_tf_config('has no "cluster" object listing the tasks\' host:port addresses')
    if not isinstance(task, dict):
        raise _bad_tf_config('has no "task" object saying which task this process is')
    for task_type, addresses in cluster.items():
        if task_type not in TASK_TYPES:
            raise _bad_tf_config(
                f'names a "{task_type}" job, but tfdock trains with "chief" and "worker" tasks only'
            )
        if (
            not isinstance(addresses, list)
            or not addresses
            or not all(_is_host_port(a) for a in addresses)
        ):
            raise _bad_tf_config(f'lists "{task_type}" addresses that are not "host:port" strings')
    if len(cluster.get("chief", [])) > 1:
        raise _bad_tf_config('lists more than one "chief"')
    task_type, task_index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise _bad_tf_config(f'has task type {task_type!r}, which its "cluster" does not list')
    if not isinstance(task_index, int) or not 0 <= task_index < len(cluster[task_type]):
        raise _bad_tf_config(
            f"has task index {task_index!r}, but its cluster lists {len(cluster[task_type])} "
            f'"{task_type}" address(es), numbered from 0'
        )
    is_chief = task_type == "chief" or ("chief" not in cluster and task_index == 0)
    size = sum(len(addresses) for addresses in cluster.values())
    startup_timeout = parse_startup_timeout(environ.get(STARTUP_TIMEOUT_ENV))
    return Cluster(task_type, task_index, size, is_chief, dict(cluster), startup_timeout)


def _is_host_port(address: Any) -> bool:
    if not isinstance(address, str):
        return False
    host, _, port = address.rpartition(":")
    return bool(host) and port.isdigit()


def _bad_tf_config(problem: str) -> TfdockError:
    return TfdockError(
        f"the environment variable {TF_CONFIG_ENV} {problem}; set it to JSON like "
        f"{TF_CONFIG_EXAMPLE} (docs/distribution.md)."
    )


def resolve_strategy(requested: str, cluster: Cluster | None, gpu_count: int) -> str:
    """Turn ``--strategy`` into the strategy to build: default, one-device, mirrored or multi-worker."""
    if requested not in STRATEGIES:
        raise TfdockError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {requested!r}.")
    multi_task = cluster is not None and cluster.size > 1
    if requested == "auto":
        if multi_task:
            return "multi-worker"
        return "mirrored" if gpu_count > 1 else "default"
    if requested == "multi-worker":
        if cluster is None:
            raise TfdockError(
                f"--strategy multi-worker needs {TF_CONFIG_ENV} to say which task this process is; "
                "set it on every worker (docs/distribution.md), or run "
                "`make train-multiworker` to start local workers."
            )
        return requested
    if multi_task:
        raise TfdockError(
            f"{TF_CONFIG_ENV} describes a job of {cluster.size} tasks, but --strategy {requested} "
            f"trains in one process; use --strategy multi-worker, or unset {TF_CONFIG_ENV}."
        )
    return requested


def make_strategy(tf: Any, resolved: str, cluster: Cluster | None = None) -> Any:
    """Build the tf.distribute strategy named by ``resolve_strategy``.

    Multi-worker: wait (bounded) for every task of the job first, see peers.py.
    """
    if resolved == "default":
        return tf.distribute.get_strategy()
    if resolved == "one-device":
        device = "/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0"
        return tf.distribute.OneDeviceStrategy(device)
    if resolved == "mirrored":
        return tf.distribute.MirroredStrategy()
    if resolved == "multi-worker":
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS
        )
        return join_cluster(tf, cluster or read_cluster(), options)
    raise AssertionError(f"unknown strategy {resolved}")


def multi_worker_model_class() -> type:
    """Return a keras.Sequential whose fit() works under MultiWorkerMirroredStrategy.

    Keras 3.15's TensorFlow trainer reduces each step's logs across workers
    with ``strategy.reduce("MEAN", value, axis=0)``, which fails on the scalar
    loss and accuracy ("Invalid reduction dimension 0 for input with 0
    dimensions", tensorflow/tensorflow#72388). Returning each log as a
    one-element vector makes that reduction valid; the values are already the
    same on every replica (Keras syncs metric variables on write), so the mean
    is the value.
    """
    import keras
    import tensorflow as tf

    def as_vectors(logs: dict[str, Any]) -> dict[str, Any]:
        return {name: tf.reshape(value, [1]) for name, value in logs.items()}

    class MultiWorkerSequential(keras.Sequential):
        def train_step(self, data: Any) -> Any:
            return as_vectors(super().train_step(data))

        def test_step(self, data: Any) -> Any:
            return as_vectors(super().test_step(data))

    return MultiWorkerSequential


def skip_symbolic_build_reduce(model: Any) -> None:
    """Let ``fit`` start under MultiWorkerMirroredStrategy with Keras 3.15.

    Before the first step, Keras 3.15 averages the first batch across workers
    with ``strategy.reduce`` to build the model symbolically, and that reduce
    fails for a tuple of per-replica values under MultiWorkerMirroredStrategy
    (tensorflow/tensorflow#72388). Our model is already built, so the build is
    not needed: forgetting the strategy captured at construction makes Keras
    skip it, and Keras then takes the strategy from the enclosing
    ``strategy.scope()``, which is where ``fit`` must run.

    A Keras without the captured strategy where tfdock looks for it is refused
    in one sentence, not trained: a multi-worker job has no other loop to go to,
    and fit would then fail at its first step with a TensorFlow traceback (or,
    had Keras fixed the bug, work), which tfdock cannot tell apart beforehand.
    """
    try:
        clear_captured_strategy(model)
    except MissingInternal as missing:
        raise TfdockError(
            f"{missing}, which tfdock clears so that Keras fit can start under "
            "MultiWorkerMirroredStrategy (tensorflow/tensorflow#72388); install the Keras "
            f"version that requirements.txt pins, or train in one process (`tfdock train` "
            f"without {TF_CONFIG_ENV})."
        ) from None


def is_lost_worker_error(tf: Any, exc: BaseException) -> bool:
    """Say whether a TensorFlow error means another task of the job died or hung."""
    return isinstance(
        exc,
        tf.errors.UnavailableError | tf.errors.DeadlineExceededError | tf.errors.AbortedError,
    )


def lost_worker_reason(exc: BaseException) -> str:
    """Pick the words of a TensorFlow error that say what happened to the other task."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for index, line in enumerate(lines):
        lowered = line.lower()
        if "aborted by: " in line or "unhealthy" in lowered or "timed out" in lowered:
            reason = line.split("aborted by: ")[-1].split(" [type.googleapis")[0]
            following = lines[index + 1] if index + 1 < len(lines) else ""
            if reason.endswith(":") and following.startswith("/job:"):
                reason = f"{reason} {following}"
            return reason[:300]
    for line in lines:
        if not line.startswith(("Graph execution error", "Detected at node", "File ", "[[")):
            return line[:300]
    return type(exc).__name__
