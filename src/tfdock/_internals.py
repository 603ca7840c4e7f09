"""The private Keras and TensorFlow attributes tfdock reaches, each in one function.

Keras 3 and TensorFlow offer no public way to do four things tfdock does:

- ``Adam._momentums`` and ``Adam._velocities``: the graph loop updates Adam's
  own moment variables with one fused op per weight (graph_loop.py);
- ``Dropout.seed_generator``: the graph loop sets each dropout layer's seed
  state every epoch, so that a resumed run replays the uninterrupted one;
- ``Model._distribute_strategy``: cleared so that Keras fit can start under
  MultiWorkerMirroredStrategy (distribute.py);
- the coordination service's configuration: a time limit for a task that never
  joins a multi-worker job (peers.py).

Each function below reaches one of them and checks that it is what tfdock was
written against (Keras 3.15, TensorFlow 2.21). When an upgrade has moved or
changed it, the function raises ``MissingInternal`` naming it, instead of an
AttributeError in the middle of training. Its caller decides, with a comment
saying why, whether tfdock then goes on another way with one printed line or
stops with one sentence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_ABSENT = object()
_SEED_DTYPES = ("int32", "int64")


class MissingInternal(Exception):
    """A private Keras or TensorFlow attribute that tfdock relies on is gone or has changed."""

    def __init__(self, library: str, name: str) -> None:
        self.library, self.name = library, name
        super().__init__(f"{library} {_version(library)} has no usable {name}")


def adam_moments(optimizer: Any, variables: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """Return a built Adam's first and second moments, one per variable, in ``variables``' order.

    Each must be one of ``optimizer.variables``, which the epoch backup saves:
    moments kept anywhere else would train, but a resume would silently lose them.
    """
    saved = {id(variable) for variable in optimizer.variables}
    found = []
    for name in ("_momentums", "_velocities"):
        moments = getattr(optimizer, name, _ABSENT)
        usable = (
            isinstance(moments, Sequence)
            and len(moments) == len(variables)
            and all(
                id(moment) in saved
                and tuple(moment.shape) == tuple(variable.shape)
                and moment.dtype == variable.dtype
                for moment, variable in zip(moments, variables, strict=True)
            )
        )
        if not usable:
            raise MissingInternal("Keras", f"Adam.{name}")
        found.append(list(moments))
    return found[0], found[1]


def dropout_seed_states(model: Any) -> list[Any]:
    """Return the seed state of each of ``model``'s layers that draws random numbers.

    Such a layer has a ``seed`` in its config (Dropout, the noise layers); Keras
    draws its random numbers from ``seed_generator.state``, a pair of integers.
    """
    states = []
    for layer in model.layers:
        if "seed" not in layer.get_config():
            continue
        state = getattr(getattr(layer, "seed_generator", None), "state", None)
        if (
            state is None
            or tuple(getattr(state, "shape", ())) != (2,)
            or str(getattr(state, "dtype", "")) not in _SEED_DTYPES
        ):
            raise MissingInternal("Keras", f"{type(layer).__name__}.seed_generator")
        states.append(state)
    return states


def clear_captured_strategy(model: Any) -> None:
    """Make Keras forget the tf.distribute strategy it captured when ``model`` was built."""
    import tensorflow as tf

    captured = getattr(model, "_distribute_strategy", _ABSENT)
    if not (captured is None or isinstance(captured, tf.distribute.Strategy)):
        raise MissingInternal("Keras", "Model._distribute_strategy")
    model._distribute_strategy = None


def configure_coordination_service(
    *, leader: str, tasks: dict[str, int], register_timeout_ms: int
) -> None:
    """Configure TensorFlow's coordination service: ``tasks`` per job, a timed register barrier."""
    name = "coordination_config_pb2"
    try:
        from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
        from tensorflow.python.eager import context

        jobs = [
            coordination_config_pb2.CoordinatedJob(name=job, num_tasks=count)
            for job, count in tasks.items()
        ]
        name = "Context.configure_coordination_service"
        context.context().configure_coordination_service(
            service_type="standalone",
            service_leader=leader,
            cluster_register_timeout_in_ms=register_timeout_ms,
            coordinated_jobs=jobs,
        )
        name = "CoordinationServiceConfig.cluster_register_with_barrier"
        context.context().coordination_service.cluster_register_with_barrier = True
    except (ImportError, AttributeError, TypeError, ValueError):
        # Moved (ImportError, AttributeError), or called differently (TypeError,
        # ValueError: a protobuf field renamed).
        raise MissingInternal("TensorFlow", name) from None


def _version(library: str) -> str:
    """The version of ``library`` (Keras or TensorFlow) this process runs."""
    import sys

    module = sys.modules.get(library.lower())
    return str(getattr(module, "__version__", "(version unknown)"))
