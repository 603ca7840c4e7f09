"""Tell whether this container is older than the lock in the workspace mounted into it.

The kit's images copy their lock to $TFDOCK_LOCK at build time and name, in
$TFDOCK_WORKSPACE_LOCK, the workspace file it was copied from (/workspace/requirements.txt,
or requirements-gpu.txt for the GPU image). When a workspace is mounted and that file's
content differs, the container was built from an older (or other) lock. Only content is
compared, so a pulled image or a dev container built elsewhere is judged the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tfdock._files import sha256_of
from tfdock.lock import LOCK_ENV

WORKSPACE_LOCK_ENV = "TFDOCK_WORKSPACE_LOCK"
# Set by .devcontainer/pulled/devcontainer.json to its own path: that container's image is
# the team's published one, so a rebuild here cannot help; a newer image must be named.
PULLED_CONFIG_ENV = "TFDOCK_PULLED_CONFIG"
# The target that rebuilds the image built from each lock.
_IMAGE_TARGETS = {"requirements-gpu.txt": "make image-gpu"}


def stale_container_message(environ: dict[str, str] | None = None) -> str | None:
    """Return one sentence when the workspace's lock differs from this image's, else None."""
    environ = os.environ if environ is None else environ
    image_lock = Path(environ.get(LOCK_ENV) or "")
    workspace_lock = Path(environ.get(WORKSPACE_LOCK_ENV) or "")
    if not (environ.get(WORKSPACE_LOCK_ENV) and workspace_lock.is_file() and image_lock.is_file()):
        return None  # not one of the kit's images, or no workspace mounted
    if sha256_of(workspace_lock) == sha256_of(image_lock):
        return None
    older = (
        f"this container is older than the lock: {workspace_lock} changed after its image was built"
    )
    if environ.get(PULLED_CONFIG_ENV):
        return f"{older}, and its image is the team's published one, so {_repoint(environ)}."
    target = _IMAGE_TARGETS.get(workspace_lock.name, "make image")
    return (
        f"{older}, so use Rebuild Container (VS Code: Dev Containers: Rebuild Container) "
        f"or `{target}`."
    )


def _repoint(environ: Mapping[str, str]) -> str:
    """How the pulled dev container gets the image of the new lock."""
    return (
        f'point "image" in {environ[PULLED_CONFIG_ENV]} at the new lock\'s tag (the line '
        "`make push` prints once someone has pushed it) and use Rebuild Container"
    )


IN_IMAGE_ENV = "TFDOCK_IN_IMAGE"  # set by the kit's Dockerfiles


def resync_hint(environ: dict[str, str] | None = None) -> str:
    """How to bring this environment back to the lock, in the door it runs in.

    The venv is re-synced by `make setup`; inside the kit's images (the dev container,
    `make docker-*`) the environment is /opt/venv, installed when the image was built,
    so the fix is a rebuild.
    """
    environ = os.environ if environ is None else environ
    if not environ.get(IN_IMAGE_ENV):
        return "run `make setup` to re-sync"
    if environ.get(PULLED_CONFIG_ENV):
        return f"{_repoint(environ)}, or pip uninstall what you added"
    return (
        "rebuild the container from the lock (VS Code: Dev Containers: Rebuild Container; "
        "make image / make image-gpu), or pip uninstall what you added"
    )
