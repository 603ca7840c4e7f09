"""Write files atomically: a reader never sees a half-written artifact."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# A new file's mode before the umask: the kernel applies the process's umask to
# each file as it creates it, so the process-wide umask is never changed (other
# threads may be creating files at the same moment).
NEW_FILE_MODE = 0o666


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a new empty file beside ``target``; rename it onto ``target`` on success."""
    target = Path(target)
    tmp = _new_file_beside(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


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
