"""Pick and build the tf.distribute strategy for a run, and read what a lost worker means.

The cluster itself comes from ``TF_CONFIG`` (cluster.py); for a multi-worker
job, peers.py waits for the other tasks before the strategy connects them.
"""

from __future__ import annotations

from typing import Any

from tfdock._internals import MissingInternal, clear_captured_strategy
from tfdock.cluster import TF_CONFIG_ENV, Cluster, read_cluster
from tfdock.errors import TfdockError
from tfdock.peers import join_cluster
from tfdock.settings import SETTINGS

# The collectives (each step's gradient all-reduce) have no timeout of their own: with
# CommunicationOptions(timeout_seconds=T) TensorFlow 2.21 holds one thread per collective
# op for T seconds, so a 300-s timeout grew each worker to thousands of threads within a
# minute ("collective_ops"), past Podman's default limit of 2048 a container ("terminate
# called after throwing an instance of 'std::system_error'"). A peer that dies is noticed
# by the coordination service's missed heartbeats (about 10 s).


def resolve_strategy(requested: str, cluster: Cluster | None, gpu_count: int) -> str:
    """Turn ``--strategy`` into the strategy to build: default, one-device, mirrored or multi-worker."""
    problem = SETTINGS["strategy"].problem(requested)
    if problem is not None:
        raise TfdockError(problem)
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
        options = tf.distribute.experimental.CommunicationOptions()
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
