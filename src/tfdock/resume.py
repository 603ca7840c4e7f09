"""Resume an interrupted run from its last completed epoch.

After every epoch the chief writes, under ``RUN_DIR/backup/``, the weights and
optimizer state (``epoch-NNNN.weights.npz``) and then ``state.json``, which
names that file and holds every finished epoch's numbers. ``state.json`` is
replaced atomically and written last, so it always names a complete weights
file: a run killed at any moment resumes from the last epoch it records.

The backup is written with NumPy, in Python: a full disk is an ordinary
``OSError`` (HDF5 crashes the process when it cannot flush a file). Both files
are read back as untrusted input, since a person can edit them.
"""

from __future__ import annotations

import json
import math
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tfdock._files import atomic_path, write_json
from tfdock.errors import TfdockError
from tfdock.run_dir import BACKUP_DIR, STATE_FILE

WEIGHTS_NAME = "epoch-{:04d}.weights.npz"
_WEIGHT_KEY = "weight_{}"
_OPTIMIZER_KEY = "optimizer_{}"


@dataclass
class Progress:
    """What an interrupted run had finished when it stopped."""

    epochs: list[dict[str, Any]] = field(default_factory=list)
    weights: Path | None = None
    arrays: dict[str, Any] = field(default_factory=dict, repr=False)
    """The backup's weights and optimizer state, read (and checked) before TensorFlow starts."""

    @property
    def completed(self) -> int:
        return len(self.epochs)


def read_progress(run_dir: Path, epochs: int) -> Progress:
    """Return the epochs that ``backup/state.json`` records as finished, checked as untrusted.

    ``epochs`` is the run's configured number of epochs.
    """
    backup_dir = Path(run_dir) / BACKUP_DIR
    state_path = backup_dir / STATE_FILE
    if not state_path.is_file():
        return Progress()
    try:
        state = json.loads(state_path.read_text())
        problem = _state_problem(state, epochs)
    except (OSError, ValueError) as exc:
        problem = f"cannot be read ({exc})"
    if problem:
        raise TfdockError(
            f"{state_path} {problem}; it was edited or damaged: restore it, or start a new run."
        )
    weights = backup_dir / state["weights"]
    if not weights.is_file():
        raise TfdockError(f"{state_path} names {weights.name}, which is missing; start a new run.")
    return Progress(state["epochs"], weights, _read_arrays(weights))


def _read_arrays(weights: Path) -> dict[str, Any]:
    """Return the arrays of a backup weights file, or say in one sentence that it is damaged."""
    try:
        if not zipfile.is_zipfile(weights):
            raise ValueError("it is not a NumPy .npz archive")
        with np.load(weights, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise _damaged(weights, exc) from None


def _state_problem(state: Any, epochs: int) -> str | None:
    """Say what is wrong with a state.json's content, or None when it is a state tfdock writes."""
    if not isinstance(state, dict) or not isinstance(state.get("epochs"), list):
        return 'is not a tfdock backup state (it has no "epochs" list)'
    done = state["epochs"]
    if not 1 <= len(done) <= epochs:
        return f"records {len(done)} finished epochs, but the run has {epochs}"
    for number, entry in enumerate(done, start=1):
        if not isinstance(entry, dict) or entry.get("epoch") != number:
            return f"has epoch entry {number} as {entry!r}, not epoch {number}'s numbers"
        for key in ("loss", "accuracy"):
            if not _is_number(entry.get(key)):
                return f"has epoch {number}'s {key} as {entry.get(key)!r}, not a number"
        if entry.get("seconds") is not None and not _is_number(entry["seconds"]):
            return f"has epoch {number}'s seconds as {entry['seconds']!r}, not a number"
    expected = WEIGHTS_NAME.format(len(done))
    if state.get("weights") != expected:
        return f"names weights {state.get('weights')!r}, not this backup's {expected}"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def restore_backup(model: Any, progress: Progress) -> None:
    """Load the backup's weights and optimizer state into ``model``, whose optimizer is built."""
    variables = list(model.weights)
    optimizer_variables = list(model.optimizer.variables)
    names = [_WEIGHT_KEY.format(i) for i in range(len(variables))]
    names += [_OPTIMIZER_KEY.format(i) for i in range(len(optimizer_variables))]
    if sorted(progress.arrays) != sorted(names):
        raise _damaged(
            progress.weights, f"it holds {len(progress.arrays)} arrays, not {len(names)}"
        )
    values = [progress.arrays[name] for name in names[: len(variables)]]
    state = [progress.arrays[name] for name in names[len(variables) :]]
    for variable, value in zip([*variables, *optimizer_variables], [*values, *state], strict=True):
        if tuple(value.shape) != tuple(variable.shape) or value.dtype != variable.dtype:
            raise _damaged(progress.weights, f"{variable.path} is {value.dtype}{list(value.shape)}")
    model.set_weights(values)
    for variable, value in zip(optimizer_variables, state, strict=True):
        variable.assign(value)


def _damaged(weights: Path | None, reason: Any) -> TfdockError:
    return TfdockError(
        f"{weights} is not this run's backup ({reason}); it is damaged, so the run cannot be "
        "resumed: start a new run."
    )


def epoch_backup(
    run_dir: Path, progress: Progress, epoch_seconds: list[float], *, writer: bool
) -> Any:
    """Return a Keras callback that records each finished epoch and backs the model up.

    Under MultiWorkerMirroredStrategy every worker reads the weights (reading a
    distributed variable may be collective); only the writer, the chief, writes.
    """
    import keras

    backup_dir = Path(run_dir) / BACKUP_DIR

    class EpochBackup(keras.callbacks.Callback):
        """Write weights, then state.json (the commit point), after every epoch."""

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = logs or {}
            progress.epochs.append(
                {
                    "epoch": epoch + 1,
                    "loss": float(logs["loss"]),
                    "accuracy": float(logs["accuracy"]),
                    "seconds": epoch_seconds[-1] if epoch_seconds else None,
                }
            )
            values = self.model.get_weights()
            state = [variable.numpy() for variable in self.model.optimizer.variables]
            if writer:
                progress.weights = _write_backup(backup_dir, progress, values, state)

    return EpochBackup()


def _write_backup(
    backup_dir: Path, progress: Progress, values: list[Any], state: list[Any]
) -> Path:
    backup_dir.mkdir(exist_ok=True)
    weights = backup_dir / WEIGHTS_NAME.format(progress.completed)
    arrays = {_WEIGHT_KEY.format(i): value for i, value in enumerate(values)}
    arrays.update({_OPTIMIZER_KEY.format(i): value for i, value in enumerate(state)})
    with atomic_path(weights) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    write_json(
        backup_dir / STATE_FILE,
        {
            "completed_epochs": progress.completed,
            "weights": weights.name,
            "epochs": progress.epochs,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    for old in backup_dir.glob("epoch-*.weights.*"):
        if old != weights:
            old.unlink(missing_ok=True)
    return weights
