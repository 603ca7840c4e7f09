"""The devcontainers CLI as the tests drive it: a dev container of a fresh copy, always removed.

DevContainer is to `devcontainer up` what docker-stacks' TrackedContainer is to `docker run`:
the tests start, exec in and remove dev containers through it (test_devcontainer.py, and the
pulled image's newcomer in test_multiarch.py); test_engines.py drives the same CLI through a
Door, as another host user.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests import commands
from tests.integration.containers import (
    base_build_args,
    copy_repository,
    remove_dev_containers,
    run,
)

IMAGE_UID = 1000  # the image's user `tfdock` (docker/cpu.Dockerfile)


def read_jsonc(path: Path) -> dict:
    """Read a devcontainer.json (JSON with whole-line // comments)."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("//")]
    return json.loads("\n".join(lines))


def devcontainer_cli() -> str:
    """The devcontainers CLI's path, or skip saying how to install it."""
    cli = shutil.which("devcontainer")
    if not cli:
        pytest.skip(
            "the devcontainers CLI is not installed (scripts/ci-tools-setup.sh installs it)"
        )
    return cli


def cli_outcome(stdout: str) -> dict:
    """The CLI prints its outcome as the last JSON line on stdout."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


class DevContainer:
    """A `devcontainer up` container of a fresh copy of the repository."""

    def __init__(self, cli: str, engine: str, workspace: Path, config: Path, label: str):
        self.cli, self.engine, self.workspace = cli, engine, workspace
        self.config, self.label = config, label
        self.up_log = ""
        self.up_result: dict = {}
        self.up_arguments: tuple[str, ...] = ()
        self.up_env: dict[str, str] = {}
        # The CLI's scratch folder is os.tmpdir()/devcontainercli-USER, one per user: two
        # `up` at once (two test processes) would write the same uid-update build there.
        self.scratch = tempfile.mkdtemp(prefix="devcontainercli-")

    def _common(self) -> list[str]:
        return [
            "--workspace-folder", str(self.workspace),
            "--docker-path", self.engine,
            "--config", str(self.config),
            "--id-label", self.label,
        ]  # fmt: skip

    def up(self, *extra: str, env: dict[str, str]) -> subprocess.CompletedProcess:
        self.up_arguments, self.up_env = extra, env
        result = commands.run([self.cli, "up", *self._common(), *extra],
                              env={**env, "TMPDIR": self.scratch}, timeout=3600)  # fmt: skip
        self.up_log = result.stdout + result.stderr
        self.up_result = cli_outcome(result.stdout)
        return result

    def exec(self, *command: str, remote_env: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        extra = [arg for name in remote_env for arg in ("--remote-env", name)]
        return commands.run([self.cli, "exec", *self._common(), *extra, *command],
                            env={"TMPDIR": self.scratch}, timeout=1800)  # fmt: skip

    def restart(self) -> subprocess.CompletedProcess:
        """Stop the container and bring it up again, as reopening the folder in VS Code does."""
        ids = run(self.engine, "ps", "--quiet", "--filter", f"label={self.label}").stdout.split()
        for container in ids:
            run(self.engine, "stop", "--time", "5", container)
        return self.up(*self.up_arguments, env=self.up_env)

    def remove(self) -> None:
        """Remove the container and the images `up` built for it."""
        remove_dev_containers(functools.partial(run, self.engine), self.label)
        shutil.rmtree(self.scratch, ignore_errors=True)


def devcontainer_workspace(repo_root: Path, destination: Path) -> Path:
    """A fresh copy of the repository for `devcontainer up`, owned as the CLI needs it."""
    workspace = copy_repository(repo_root, destination)
    if os.getuid() == 0:
        # As root there is no host user to map (the CLI leaves uid 0 alone): the clone
        # belongs to the image's user instead, the README's fix for root-owned files.
        subprocess.run(["chown", "-R", f"{IMAGE_UID}:{IMAGE_UID}", str(workspace.parent)],
                       check=True)  # fmt: skip
    return workspace


def host_home(folder: Path) -> Path:
    """A host user's home for `devcontainer up`, with the caches the configs mount.

    As root the CLI maps no uid, so the container's user is the image's: it owns them then.
    """
    for name in ("tfdock", "pip"):
        (folder / ".cache" / name).mkdir(parents=True, exist_ok=True)
    if os.getuid() == 0:
        subprocess.run(["chown", "-R", f"{IMAGE_UID}:{IMAGE_UID}", str(folder)], check=True)
    return folder


def fit_to_this_machine(engine: str, config: Path, **changes) -> None:
    """Rewrite a copy's config (with CHANGES) for this machine's engine and base image."""
    settings = {**read_jsonc(config), **changes}
    if "build" in settings:
        # Without a registry (CI) the base is a local copy, as in `make image BASE_IMAGE=...`.
        settings["build"]["args"] = base_build_args(engine)
    rootless = run(engine, "info", "--format", "{{.Host.Security.Rootless}}", check=False)
    if "podman" in engine and rootless.stdout.strip() == "false":
        # Rootful Podman refuses the --userns=keep-id the CLI adds for a non-root user
        # (devcontainers/cli#1004); a later --userns in runArgs overrides it. Only here:
        # the kit's config stays right for Docker and rootless Podman.
        settings["runArgs"] = [*settings.get("runArgs", []), "--userns=host"]
    # The CLI accepts only the name devcontainer.json: rewrite the copy's own.
    config.write_text(json.dumps(settings, indent=2))
