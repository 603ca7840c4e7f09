"""Write files atomically and durably: a reader never sees a half-written artifact.

Atomic: each file is written under a temporary name and renamed onto its target.
Durable, as SQLite and git make their files: the new file's data is flushed to the
disk (fsync) before the rename, and its folder after it, so after a power cut the
target names either the old file or the complete new one, never an empty one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import shutil
import signal
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

# A new file's mode before the umask: the kernel applies the process's umask to
# each file as it creates it, so the process-wide umask is never changed (other
# threads may be creating files at the same moment).
NEW_FILE_MODE = 0o666
# A write that fails for lack of space: a full disk or a full quota.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# What a file system without fsync for folders answers (some network and FUSE ones).
_NO_FOLDER_FSYNC = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP})


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a new empty file beside ``target``; rename it onto ``target`` on success."""
    target = Path(target)
    tmp = _new_file_beside(target)
    try:
        yield tmp
        _flush_to_disk(tmp)
        os.replace(tmp, target)
        _flush_to_disk(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def replace_together(replacements: Mapping[Path, Path]) -> None:
    """Move each finished file {new: target} onto its target as one step: all of them or none.

    The new files are made durable first. SIGINT, SIGTERM and SIGHUP wait until
    every target is replaced, or, when a rename fails, until every target is back
    as it was; then they act as they would have.
    """
    for new in replacements:
        _flush_to_disk(new)
    # Each original is kept beside its new file (so on the target's disk) until all are replaced.
    kept = {target: new.with_name(f"{new.name}.old") for new, target in replacements.items()}
    replaced: list[Path] = []
    with _signals_held():
        try:
            for target, copy in kept.items():
                _keep(target, copy)
            for new, target in replacements.items():
                os.replace(new, target)
                replaced.append(target)
        except BaseException:
            for target in reversed(replaced):
                _put_back(target, kept[target])
            raise
        finally:
            for copy in kept.values():
                copy.unlink(missing_ok=True)
        for folder in {target.parent for target in replacements.values()}:
            _flush_to_disk(folder)


def _keep(target: Path, copy: Path) -> None:
    """Keep ``target`` as ``copy``: a hard link, or a copy where links are not allowed."""
    copy.unlink(missing_ok=True)
    if not target.exists():
        return
    try:
        os.link(target, copy)
    except OSError:
        shutil.copy2(target, copy)


def _put_back(target: Path, copy: Path) -> None:
    """Return ``target`` to its kept original, or remove it where there was none."""
    if copy.exists():
        os.replace(copy, target)
    else:
        target.unlink(missing_ok=True)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP until the block ends, then deliver them to this process."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers, and only it runs them
        return
    arrived: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {number: signal.signal(number, lambda n, _: arrived.append(n)) for number in held}
    try:
        yield
    finally:
        for number, handler in before.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
        for number in dict.fromkeys(arrived):
            signal.raise_signal(number)


def _flush_to_disk(path: Path) -> None:
    """fsync a file's data, or a folder's entries (a rename in it), to the disk.

    As SQLite does, a folder that cannot be opened or synced (a file system
    without directory fsync) is left to the file system; a file's failure is raised.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        if path.is_dir():
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if not (path.is_dir() and exc.errno in _NO_FOLDER_FSYNC):
            raise
    finally:
        os.close(fd)


def _new_file_beside(target: Path) -> Path:
    """Create a hidden, uniquely named empty file in ``target``'s folder, as open(2) would."""
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, NEW_FILE_MODE)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def write_json(target: Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
