"""The settings that decide a training run, in one table.

Each row is a TrainConfig field. The flags of `tfdock train` and `tfdock
multiworker`, the arguments every local worker gets, the checks of a run's
settings (flags or a hand-edited config.json) and the settings a resumed run
must keep are all made from it. Standard library only: the parser is built
from it without loading NumPy or TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfdock.errors import TfdockError

# MNIST's training images (data.py checks every copy against it): no batch, and no
# --limit, can hold more.
TRAIN_SIZE = 60_000
INT32_MAX = 2**31 - 1
MAX_THREADS = 1024


@dataclass(frozen=True)
class Setting:
    """One training setting: its name, default, allowed values and meaning."""

    name: str
    default: Any
    help: str
    """The flag's help; ``{default}`` is replaced by the default."""
    kind: type = int
    """int, bool (a switch), Path, or str (a path, or one of ``choices``)."""
    bounds: tuple[int, int] | None = None
    """The lowest and highest whole number allowed, both included."""
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    pinned: bool = False
    """It changes what the run computes: a resumed run must keep it."""
    workers: bool = True
    """A flag of `tfdock multiworker` too, passed on to every worker."""

    @property
    def flag(self) -> str:
        """Return the command-line flag: batch_size -> --batch-size."""
        return "--" + self.name.replace("_", "-")

    @property
    def help_text(self) -> str:
        return self.help.format(default=self.default)

    def arguments(self, value: Any) -> list[str]:
        """Return the command-line arguments that give ``value``: none for None or False."""
        if value is None or value is False:
            return []
        if value is True:
            return [self.flag]
        return [self.flag, str(value)]

    def problem(self, value: Any) -> str | None:
        """Say in one sentence why ``value`` cannot train, with the flag to fix; None when it can."""
        if value is None and self.default is None:
            return None
        if self.bounds is not None:
            return _whole_number_problem(self.flag, self.bounds, value)
        if self.choices:
            if value not in self.choices:
                return f"{self.flag} must be one of {', '.join(self.choices)}, not {value!r}."
        elif self.kind is bool:
            if not isinstance(value, bool):
                return f"{self.name} must be true or false, not {value!r}."
        elif self.kind is str and not isinstance(value, str):
            return f"{self.flag} must be a path, not {value!r}."
        return None


def _whole_number_problem(flag: str, bounds: tuple[int, int], value: Any) -> str | None:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return f"{flag} must be a whole number from {low} to {high}, not {value!r}."
    return None


_TABLE = (
    Setting(
        "epochs",
        5,
        "passes over the training set (default {default})",
        bounds=(1, INT32_MAX),
        pinned=True,
    ),
    Setting(
        "batch_size",
        32,
        "images per optimizer step (default {default})",
        bounds=(1, TRAIN_SIZE),  # one batch at most holds every training image
        pinned=True,
    ),
    Setting(
        "seed",
        42,
        "random seed for weights, dropout and shuffling (default {default})",
        bounds=(0, 2**32 - 1),  # NumPy's global seed is 32 bits
        pinned=True,
    ),
    Setting(
        "data",
        None,
        "a Keras mnist.npz or a folder of the four official MNIST .gz files "
        "(default: $TFDOCK_DATA, else download and cache)",
        kind=str,
        metavar="PATH",
    ),
    Setting(
        "output_dir",
        Path("runs"),
        "where each run gets its own new folder (default {default})",
        kind=Path,
        metavar="DIR",
    ),
    # Training steps run per call into the TensorFlow graph. Same math (one
    # optimizer step per batch of 32); it only removes the Python round trip per
    # step that dominates this small model's time, and the progress display is
    # updated once per call. Chosen by `make bench`.
    Setting(
        "steps_per_execution",
        100,
        "optimizer steps per call into the graph; the math is unchanged (default {default})",
        bounds=(1, INT32_MAX),  # Keras counts steps in int32
        metavar="N",
    ),
    # Threads inside one TensorFlow op. This model's ops are tiny (a 32x784 by
    # 784x128 matmul at most): splitting them across threads costs more than it
    # saves, so each op runs on one thread while independent ops run side by side.
    Setting(
        "intra_op_threads",
        1,
        "threads inside one op; 0 = all cores (default {default}, fastest for this small model)",
        bounds=(0, MAX_THREADS),  # 0 = TensorFlow's choice
        metavar="N",
    ),
    # Threads that run independent ops side by side. With one-thread ops there is
    # little to overlap, and handing ops between threads costs more than it wins:
    # measured 9% faster fit and 22% less CPU with 1 than with TensorFlow's default.
    Setting(
        "inter_op_threads",
        1,
        "ops run at once; 0 = TensorFlow's choice (default {default}, fastest for this small "
        "model; multi-worker jobs always use TensorFlow's choice)",
        bounds=(0, MAX_THREADS),
        metavar="N",
    ),
    Setting(
        "limit",
        None,
        "train on the first N images only, for quick checks",
        bounds=(1, TRAIN_SIZE),
        metavar="N",
        pinned=True,
    ),
    Setting(
        "deterministic",
        False,
        "seeded, with TensorFlow's op determinism: two runs on the same machine give "
        "identical metrics, bit for bit",
        kind=bool,
        pinned=True,
    ),
    # Not flags of `tfdock multiworker`: its workers train with --strategy multi-worker
    # (launch.py gives it), and so with Keras fit (the graph loop is for one process).
    Setting(
        "strategy",
        "auto",
        "tf.distribute strategy: auto = multi-worker when TF_CONFIG names a cluster, "
        "mirrored when more than one GPU is visible, else the default (default {default})",
        kind=str,
        choices=("auto", "one-device", "mirrored", "multi-worker"),
        workers=False,
    ),
    Setting(
        "loop",
        "auto",
        "auto = tfdock's graph loop (fit's math, faster) where it is exact, else Keras fit; "
        "fit = always Keras fit, to compare (default {default})",
        kind=str,
        choices=("auto", "fit"),
        workers=False,
    ),
)
SETTINGS: dict[str, Setting] = {setting.name: setting for setting in _TABLE}
DEFAULTS: dict[str, Any] = {setting.name: setting.default for setting in _TABLE}
PINNED = tuple(setting.name for setting in _TABLE if setting.pinned)
"""Settings that change what a run computes: a resumed run must keep them."""


def check_settings(values: Mapping[str, Any]) -> None:
    """Refuse settings that cannot train, in one sentence naming the flag to fix."""
    for setting in _TABLE:
        problem = setting.problem(values.get(setting.name))
        if problem is not None:
            raise TfdockError(problem)
    limit, batch_size = values.get("limit"), values.get("batch_size")
    if limit is not None and limit < batch_size:
        raise TfdockError(
            f"--limit {limit} is smaller than one batch ({batch_size}); "
            "raise it or leave it out to use all training images."
        )


def worker_arguments(values: Mapping[str, Any]) -> list[str]:
    """Return the `tfdock train` arguments that give every worker these settings."""
    return [
        argument
        for setting in _TABLE
        if setting.workers
        for argument in setting.arguments(values[setting.name])
    ]
