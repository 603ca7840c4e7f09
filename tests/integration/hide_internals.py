"""Run the tfdock CLI as under a Keras or TensorFlow that moved one of the internals tfdock uses.

    python hide_internals.py [--hide NAME]... [--die-after-epoch N] -- TFDOCK_ARGS...

``--hide Adam._momentums`` makes the attribute invisible to tfdock's code while
Keras's own code still finds it, as after an upgrade that renamed it: Keras
trains on, and only tfdock's use of it breaks. An assignment from tfdock lands
in an attribute Keras no longer reads. ``--die-after-epoch N`` ends the process
(as a kill would) right after epoch N's backup is written.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

# name: (module, class) that holds the attribute in Keras 3.15 / TensorFlow 2.21.
HIDEABLE = {
    "Adam._momentums": ("keras.src.optimizers.adam", "Adam"),
    "Adam._velocities": ("keras.src.optimizers.adam", "Adam"),
    "Dropout.seed_generator": ("keras.src.layers.regularization.dropout", "Dropout"),
    "Model._distribute_strategy": ("keras.src.backend.tensorflow.trainer", "TensorFlowTrainer"),
    "Context.configure_coordination_service": ("tensorflow.python.eager.context", "Context"),
}
KILLED_EXIT_CODE = 137
# Frames that only pass an attribute access on: the asker is the frame that called them.
_PASS_THROUGH = {"__getattr__", "__getattribute__", "__setattr__", "__delattr__"}


def _asked_by_tfdock() -> bool:
    """Whether the attribute access under way comes from tfdock's code (not Keras or TensorFlow)."""
    frame = sys._getframe(2)  # 0: this function, 1: the descriptor's method
    while frame is not None and frame.f_code.co_name in _PASS_THROUGH:
        frame = frame.f_back
    return frame is not None and frame.f_globals.get("__name__", "").startswith("tfdock")


class _MovedAttribute:
    """An attribute that Keras and TensorFlow still reach and tfdock no longer finds."""

    def __init__(self, name: str, original: Any) -> None:
        self.name, self.original = name, original
        self.slot = f"_moved{name}"

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        if _asked_by_tfdock():
            raise AttributeError(
                f"{type(instance).__name__!r} object has no attribute {self.name!r}"
            )
        if self.original is not None:  # a method
            return self.original.__get__(instance, owner)
        try:
            return instance.__dict__[self.slot]
        except KeyError:
            raise AttributeError(self.name) from None

    def __set__(self, instance: Any, value: Any) -> None:
        slot = f"_stray{self.name}" if _asked_by_tfdock() else self.slot
        instance.__dict__[slot] = value


def hide(name: str) -> None:
    """Move the internal ``name`` out of tfdock's sight for the rest of this process."""
    module_name, class_name = HIDEABLE[name]
    owner = getattr(importlib.import_module(module_name), class_name)
    attribute = name.rpartition(".")[2]
    setattr(owner, attribute, _MovedAttribute(attribute, owner.__dict__.get(attribute)))


def die_after_epoch(epoch: int) -> None:
    """End the process, as a kill would, right after epoch ``epoch``'s backup is written."""
    from tfdock import train

    make_backup = train.epoch_backup

    def epoch_backup(*args: Any, **kwargs: Any) -> Any:
        callback = make_backup(*args, **kwargs)
        back_up = callback.on_epoch_end

        def on_epoch_end(index: int, logs: Any = None) -> None:
            back_up(index, logs)
            if index + 1 == epoch:
                sys.stdout.flush()
                os._exit(KILLED_EXIT_CODE)

        callback.on_epoch_end = on_epoch_end
        return callback

    train.epoch_backup = epoch_backup


def main(argv: list[str]) -> int:
    split = argv.index("--")
    options, tfdock_args = argv[:split], argv[split + 1 :]
    while options:
        option, value, *options = options
        if option == "--hide":
            hide(value)
        elif option == "--die-after-epoch":
            die_after_epoch(int(value))
        else:
            raise SystemExit(f"unknown option {option}")
    from tfdock.cli import main as tfdock_main

    return tfdock_main(tfdock_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
