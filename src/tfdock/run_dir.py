"""The run folder: its file names, one writer at a time, and which runs may train into it.

A run folder holds a run's settings (``config.json``), its per-epoch backup
(``backup/``, see resume.py) and, once the run has finished, its model, curves
and TensorBoard logs, and last ``metrics.json``, the mark of a finished run.

One process writes a run folder at a time: the writer holds an exclusive
``flock(2)`` on the folder's lock file for the whole run. The kernel releases it
when the process ends, however it ends, so a killed run never blocks its resume.
A second run into the same folder is refused before it writes anything.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tfdock._files import NEW_FILE_MODE
from tfdock.errors import TfdockError
from tfdock.settings import PINNED, SETTINGS

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
MODEL_FILE = "model.keras"
CURVES_FILE = "curves.png"
TENSORBOARD_DIR = "tensorboard"
BACKUP_DIR = "backup"
STATE_FILE = "state.json"
LOCK_FILE = ".tfdock.lock"
"""Held by the run that writes the folder; removed when that run has finished."""

DATA_IDENTITY = "data_sha256"
"""config.json's record of the training data: resuming with other data is refused."""


def new_run_dir(output_dir: Path) -> Path:
    """Create a fresh run directory; two runs started at once never share one."""
    output_dir = Path(output_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        while True:
            candidate = output_dir / f"{stamp}-{secrets.token_hex(3)}"
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            return candidate
    except OSError as exc:
        raise TfdockError(
            f"cannot create a run folder in {output_dir} ({_reason(exc)}); "
            "pass --output-dir a folder this user can write."
        ) from None


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """Return a run directory's config.json, or say in one sentence why it is not a run."""
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    try:
        if not run_dir.is_dir():
            raise TfdockError(
                f"{run_dir} is not a folder; pass --resume the run directory a "
                "`tfdock train` printed."
            )
        if not config_path.is_file():
            raise TfdockError(
                f"{run_dir} is not a tfdock run directory (it has no {CONFIG_FILE}); pass "
                "--resume the run directory a `tfdock train` printed."
            )
        text = config_path.read_text()
    except PermissionError as exc:
        raise _permission_denied(run_dir, exc) from None
    except OSError as exc:
        raise TfdockError(f"cannot read {config_path} ({_reason(exc)}).") from None
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise TfdockError(
            f"{config_path} is not valid JSON ({exc}); restore it, or start a new run."
        ) from None
    if not isinstance(config, dict):
        raise TfdockError(f"{config_path} is not a tfdock run configuration.")
    return config


@contextlib.contextmanager
def claim_run_dir(run_dir: Path, record: dict[str, Any], *, writer: bool) -> Iterator[None]:
    """Make ``run_dir`` this run's for the block, or refuse in one sentence, touching nothing.

    A folder that does not exist yet or is empty takes a fresh run; one holding
    an unfinished run with the same settings and data takes its continuation.
    The writer creates the folder and holds its lock for the block; another
    task of a multi-worker job (``writer=False``) only checks it.
    """
    run_dir = Path(run_dir)
    check_run_dir(run_dir, record, writer=writer)
    if not writer:
        yield
        return
    _make_folder(run_dir)
    with _one_writer(run_dir):
        # Checked again now that no other run can change the folder.
        check_run_dir(run_dir, record, writer=writer)
        yield


def check_run_dir(run_dir: Path, record: dict[str, Any], *, writer: bool = True) -> None:
    """Refuse a run folder this run may not train into, in one sentence; change nothing."""
    try:
        if (run_dir / METRICS_FILE).exists():
            raise TfdockError(
                f"{run_dir} holds a finished run (it has {METRICS_FILE}); there is nothing to "
                "resume: start a new run instead."
            )
        if (run_dir / CONFIG_FILE).is_file():
            saved = read_run_config(run_dir)
            _refuse_other_settings(run_dir, saved, record)
            _refuse_other_data(run_dir, saved, record)
        elif writer and run_dir.is_dir() and _others_files(run_dir):
            raise TfdockError(
                f"{run_dir} is not empty and is not a tfdock run (it has no {CONFIG_FILE}); "
                "choose a new or empty folder."
            )
    except PermissionError as exc:
        raise _permission_denied(run_dir, exc) from None


def _refuse_other_settings(run_dir: Path, saved: dict[str, Any], record: dict[str, Any]) -> None:
    for name in PINNED:
        if name in saved and saved[name] != record.get(name):
            raise TfdockError(
                f"{run_dir} holds a run with {SETTINGS[name].flag} {saved[name]}, not "
                f"{record.get(name)}; "
                f"resume it with `tfdock train --resume {run_dir}` (its saved settings), or "
                "train into a new folder."
            )


def _refuse_other_data(run_dir: Path, saved: dict[str, Any], record: dict[str, Any]) -> None:
    if DATA_IDENTITY in saved and saved[DATA_IDENTITY] != record[DATA_IDENTITY]:
        raise TfdockError(
            f"{run_dir} was trained on other data ({saved.get('data_source')}, sha256 "
            f"{str(saved[DATA_IDENTITY])[:12]}...) than {record['data_source']} (sha256 "
            f"{record[DATA_IDENTITY][:12]}...); resume with the run's own data (--data), or "
            "train into a new folder."
        )


def _others_files(run_dir: Path) -> list[Path]:
    return [path for path in run_dir.iterdir() if path.name != LOCK_FILE]


def _make_folder(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TfdockError(
            f"cannot create the run directory {run_dir} ({_reason(exc)}); "
            "choose a folder this user can write."
        ) from None


@contextlib.contextmanager
def _one_writer(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block; refuse when another process holds it."""
    lock_path = run_dir / LOCK_FILE
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, NEW_FILE_MODE)
    except OSError as exc:
        raise _cannot_write(run_dir, exc) from None
    try:
        _lock_or_refuse(fd, run_dir)
        yield
        if (run_dir / METRICS_FILE).exists():
            lock_path.unlink(missing_ok=True)  # a finished run keeps no lock file
    finally:
        os.close(fd)  # releases the lock


def _lock_or_refuse(fd: int, run_dir: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        by = f" (pid {holder})" if holder.isdigit() else ""
        raise TfdockError(
            f"another tfdock run{by} is writing {run_dir}; wait for it to end, or train into "
            "another folder."
        ) from None
    except OSError as exc:
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        print(
            f"tfdock: warning: cannot lock {run_dir} ({_reason(exc)}): make sure no "
            "other run writes into it at the same time.",
            file=sys.stderr,
            flush=True,
        )
        return
    with contextlib.suppress(OSError):  # the pid is for the message above only
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def _permission_denied(run_dir: Path, exc: OSError) -> TfdockError:
    return TfdockError(
        f"cannot use {exc.filename or run_dir}: permission denied; choose a run folder this "
        "user can read and write."
    )


def _cannot_write(run_dir: Path, exc: OSError) -> TfdockError:
    return TfdockError(
        f"cannot write in {run_dir} ({_reason(exc)}); choose a folder this user can write."
    )


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


# The door that started a run says how to resume it there (the Makefile's train targets,
# scripts/container-run.sh): a template with {run_dir}, e.g. `make docker-train RESUME={run_dir}`.
RESUME_COMMAND_ENV = "TFDOCK_RESUME_COMMAND"


def resume_command(run_dir: Path, default: str = "tfdock train --resume {run_dir}") -> str:
    """The command that resumes RUN_DIR in the door the user typed, else DEFAULT's."""
    template = os.environ.get(RESUME_COMMAND_ENV) or default
    return template.replace("{run_dir}", str(run_dir))


def how_to_go_on(run_dir: Path, default: str = "tfdock train --resume {run_dir}") -> str:
    """Resume RUN_DIR, when it holds a run (config.json); else start the run again."""
    if not (Path(run_dir) / CONFIG_FILE).is_file():
        return "start the run again"
    return f"resume with `{resume_command(run_dir, default)}`"


def remove_if_unused(run_dir: Path) -> None:
    """Remove a run folder in which no run was ever recorded: empty, or only its lock file.

    A job that fails before its chief writes config.json leaves such a folder, which
    --resume would refuse; files of anyone else are never touched.
    """
    run_dir = Path(run_dir)
    with contextlib.suppress(OSError):
        if {path.name for path in run_dir.iterdir()} <= {LOCK_FILE}:
            (run_dir / LOCK_FILE).unlink(missing_ok=True)
            run_dir.rmdir()
