"""A container whose image was built from another lock than the workspace's says so."""

from __future__ import annotations

import pytest

from tests.commands import tfdock
from tfdock.container import resync_hint, stale_container_message


@pytest.fixture
def locks(tmp_path, repo_root):
    """An image's lock and the mounted workspace's copy of it, equal to begin with."""
    image_lock = tmp_path / "opt" / "requirements.txt"
    workspace_lock = tmp_path / "workspace" / "requirements.txt"
    for path in (image_lock, workspace_lock):
        path.parent.mkdir()
        path.write_bytes((repo_root / "requirements.txt").read_bytes())
    return image_lock, workspace_lock


def _environ(image_lock, workspace_lock) -> dict[str, str]:
    return {"TFDOCK_LOCK": str(image_lock), "TFDOCK_WORKSPACE_LOCK": str(workspace_lock)}


def test_same_lock_is_not_stale(locks):
    """An image built from the workspace's lock is current."""
    assert stale_container_message(_environ(*locks)) is None


def test_changed_workspace_lock_is_one_sentence_with_the_fix(locks):
    """A changed workspace lock gives one sentence: the container is older, Rebuild Container or `make image`."""
    image_lock, workspace_lock = locks
    workspace_lock.write_text(workspace_lock.read_text().replace("numpy==", "numpy==0", 1))
    message = stale_container_message(_environ(image_lock, workspace_lock))
    assert message.startswith("this container is older than the lock:")
    assert "Rebuild Container" in message and "`make image`" in message
    assert str(workspace_lock) in message
    assert message.count(". ") == 0 and message.endswith(".")


def test_gpu_lock_names_the_gpu_image_target(tmp_path):
    """The GPU image's message names `make image-gpu`."""
    image_lock = tmp_path / "requirements.txt"
    workspace_lock = tmp_path / "requirements-gpu.txt"
    image_lock.write_text("a==1\n")
    workspace_lock.write_text("a==2\n")
    assert "`make image-gpu`" in stale_container_message(_environ(image_lock, workspace_lock))


def test_the_pulled_dev_container_is_told_to_name_the_new_image_not_to_rebuild(locks):
    """The pulled config's container names its "image" line and `make push`, never `make image`."""
    image_lock, workspace_lock = locks
    workspace_lock.write_text(workspace_lock.read_text() + "# a teammate's change\n")
    config = ".devcontainer/pulled/devcontainer.json"
    environ = {**_environ(image_lock, workspace_lock), "TFDOCK_PULLED_CONFIG": config}
    message = stale_container_message(environ)
    assert message.startswith("this container is older than the lock:")
    assert f'point "image" in {config} at the new lock\'s tag' in message
    assert "`make push`" in message and "make image" not in message
    assert message.count(". ") == 0 and message.endswith(".")
    hint = resync_hint({**environ, "TFDOCK_IN_IMAGE": "1"})
    assert config in hint and "make image" not in hint


def test_no_workspace_or_no_image_is_not_stale(locks, tmp_path):
    """The image alone (no workspace mounted) and the venv (no image lock) are never stale."""
    image_lock, _ = locks
    assert stale_container_message(_environ(image_lock, tmp_path / "absent.txt")) is None
    assert stale_container_message({}) is None


def test_verify_refuses_a_stale_container_in_one_sentence(locks, repo_root):
    """`tfdock verify` in a container older than the lock exits non-zero with that one sentence, before any check."""
    image_lock, workspace_lock = locks
    workspace_lock.write_text(workspace_lock.read_text() + "# a teammate's change\n")
    for command in ("verify", "container-check"):
        result = tfdock(command, cwd=repo_root, env=_environ(image_lock, workspace_lock))
        assert result.returncode != 0
        assert result.stdout == ""
        (line,) = result.stderr.strip().splitlines()
        assert "this container is older than the lock" in line
