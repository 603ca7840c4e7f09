"""Resume an interrupted run from its last completed epoch.

After every epoch the chief writes, under ``RUN_DIR/backup/``, the weights and
optimizer state (``epoch-NNNN.weights.h5``) and then ``state.json``, which names
that file and holds every finished epoch's numbers. ``state.json`` is replaced
atomically and written last, so it always names a complete weights file: a run
killed at any moment resumes from the last epoch that ``state.json`` records.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfdock._files import atomic_path, write_json
from tfdock.errors import TfdockError

BACKUP_DIR = "backup"
STATE_FILE = "state.json"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
# Settings that change what a run computes: a resumed run must keep them.
PINNED_SETTINGS = ("epochs", "batch_size", "seed", "limit", "deterministic")


@dataclass
class Progress:
    """What an interrupted run had finished when it stopped."""

    epochs: list[dict[str, Any]] = field(default_factory=list)
    weights: Path | None = None

    @property
    def completed(self) -> int:
        return len(self.epochs)


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """Return a run directory's config.json, or say in one sentence why it is not a run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TfdockError(
            f"{run_dir} is not a folder; pass --resume the run directory a `tfdock train` printed."
        )
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise TfdockError(
            f"{run_dir} is not a tfdock run directory (it has no {CONFIG_FILE}); pass --resume "
            "the run directory a `tfdock train` printed."
        )
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise TfdockError(f"cannot read {config_path} ({exc}); it is not a tfdock run.") from None
    if not isinstance(config, dict):
        raise TfdockError(f"{config_path} is not a tfdock run configuration.")
    return config


def claim_run_dir(run_dir: Path, config_record: dict[str, Any], *, writer: bool) -> Progress:
    """Check ``run_dir`` can take this run; return what an earlier attempt finished there.

    A folder that does not exist yet (the writer creates it) or is empty starts a
    fresh run; one holding this run's unfinished attempt resumes it. Anything
    else is refused, and nothing in it is touched.
    """
    run_dir = Path(run_dir)
    if (run_dir / METRICS_FILE).exists():
        raise TfdockError(
            f"{run_dir} holds a finished run (it has {METRICS_FILE}); there is nothing to resume: "
            "start a new run instead."
        )
    if (run_dir / CONFIG_FILE).is_file():
        saved = read_run_config(run_dir)
        for name in PINNED_SETTINGS:
            if name in saved and saved[name] != config_record.get(name):
                flag = "--" + name.replace("_", "-")
                raise TfdockError(
                    f"{run_dir} holds a run with {flag} {saved[name]}, not "
                    f"{config_record.get(name)}; resume it with `tfdock train --resume {run_dir}` "
                    "(its saved settings), or train into a new folder."
                )
        return read_progress(run_dir)
    if run_dir.is_dir() and any(run_dir.iterdir()) and writer:
        raise TfdockError(
            f"{run_dir} is not empty and is not a tfdock run (it has no {CONFIG_FILE}); "
            "choose a new or empty folder."
        )
    if writer:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TfdockError(
                f"cannot create the run directory {run_dir} ({exc.strerror}); "
                "choose a writable folder."
            ) from None
    return Progress()


def read_progress(run_dir: Path) -> Progress:
    """Return the epochs that ``backup/state.json`` records as finished."""
    state_path = Path(run_dir) / BACKUP_DIR / STATE_FILE
    if not state_path.is_file():
        return Progress()
    try:
        state = json.loads(state_path.read_text())
        epochs = list(state["epochs"])
        weights = state_path.parent / state["weights"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TfdockError(
            f"cannot read {state_path} ({exc}); the run cannot be resumed: start a new run."
        ) from None
    if not weights.is_file():
        raise TfdockError(f"{state_path} names {weights.name}, which is missing; start a new run.")
    return Progress(epochs, weights)


def epoch_backup(
    run_dir: Path, progress: Progress, epoch_seconds: list[float], *, scratch: Path | None = None
) -> Any:
    """Return a Keras callback that records each finished epoch and backs the model up.

    Under MultiWorkerMirroredStrategy saving is collective: every worker must
    save. A worker that is not the chief passes ``scratch``, a temporary folder
    it removes afterwards, and writes only its weights there, never state.json.
    """
    import keras

    backup_dir = Path(scratch) if scratch is not None else Path(run_dir) / BACKUP_DIR

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
            backup_dir.mkdir(exist_ok=True)
            weights = backup_dir / f"epoch-{epoch + 1:04d}.weights.h5"
            with atomic_path(weights) as tmp:
                keras_tmp = tmp.with_name(tmp.name + ".weights.h5")
                try:
                    self.model.save_weights(keras_tmp)
                    os.replace(keras_tmp, tmp)
                finally:
                    keras_tmp.unlink(missing_ok=True)
            if scratch is None:
                write_json(
                    backup_dir / STATE_FILE,
                    {
                        "completed_epochs": len(progress.epochs),
                        "weights": weights.name,
                        "epochs": progress.epochs,
                        "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    },
                )
            for old in backup_dir.glob("epoch-*.weights.h5"):
                if old != weights:
                    old.unlink(missing_ok=True)
            progress.weights = weights

    return EpochBackup()
