"""The engine matrix's doors: an engine as one host user runs it, in a workspace of their own.

Docker and rootless Podman are run by a non-root host user whose uid is not 1000
($TFDOCK_TEST_USER, made by scripts/engines-host-setup.sh), through `runuser` with a
login-like environment: nothing of the test process's own settings (ENGINE, BASE_IMAGE,
BUILD_FLAGS) leaks in unless a test passes it. Rootful Podman is run by root, as CI runs
the rest of the suite.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.commands import run
from tests.integration.containers import copy_repository

TEST_USER = os.environ.get("TFDOCK_TEST_USER", "tfdock-ci")
# The docker client the matrix drives: Debian's docker.io client builds with the engine's own
# BuildKit; a newer client needs the buildx plugin (scripts/engine.sh, docs/images.md).
DOCKER = os.environ.get("TFDOCK_TEST_DOCKER", "docker")
ENGINES = ("docker", "rootless-podman", "podman")
# What a login shell gives a user here, and the settings the image builds need.
PASSED_THROUGH = ("LANG", "CA_BUNDLE", "BUILDAH_FORMAT", "TFDOCK_NATIVE_LOGS")


@dataclass
class Door:
    """One engine as one host user runs it: ENGINE for make, their workspace and their ids."""

    name: str
    engine: str
    workspace: Path
    user: pwd.struct_passwd | None = None  # None: this process's user (root)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def ids(self) -> tuple[int, int]:
        """The uid and gid that own what this user writes."""
        if self.user is None:
            return os.getuid(), os.getgid()
        return self.user.pw_uid, self.user.pw_gid

    def command(self, *argv: str, **env: str) -> tuple[list[str], dict[str, str] | None]:
        """The argv and environment that run ARGV as this door's user in its workspace."""
        settings = {"ENGINE": self.engine, **self.env, **env}
        if self.user is None:
            return list(argv), {**os.environ, **settings}
        login = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": self.user.pw_dir,
            "USER": self.user.pw_name,
            "LOGNAME": self.user.pw_name,
            "XDG_RUNTIME_DIR": f"/run/user/{self.user.pw_uid}",
            **{name: os.environ[name] for name in PASSED_THROUGH if name in os.environ},
        }
        assignments = [f"{key}={value}" for key, value in {**login, **settings}.items()]
        prefix = ["runuser", "-u", self.user.pw_name, "--", "env", "-i", "-C", str(self.workspace)]
        return [*prefix, *assignments, *argv], None

    def run(self, *argv: str, timeout: int = 600, input: str | None = None, **env: str):
        """Run ARGV as this user in the workspace; return the completed process."""
        command, environment = self.command(*argv, **env)
        return run(command, cwd=self.workspace, env=environment, timeout=timeout, input=input,
                   stdin=None if input is not None else subprocess.DEVNULL)  # fmt: skip

    def make(self, *args: str, timeout: int = 900, input: str | None = None, **env: str):
        """Run `make ARGS` in the workspace as this user, with ENGINE set."""
        return self.run("make", *args, timeout=timeout, input=input, **env)

    def engine_cli(self, *args: str, timeout: int = 600, check: bool = True):
        """Run the engine's own CLI as this user."""
        result = self.run(self.engine, *args, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{self.engine} {' '.join(args)}: {result.stderr[-2000:]}")
        return result


def matrix_user() -> pwd.struct_passwd | None:
    """The matrix's non-root host user, when this process may act as them (root) and they exist."""
    if os.geteuid() != 0 or not shutil.which("runuser"):
        return None
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        return None


def user_workspace(repo_root: Path, user: pwd.struct_passwd, name: str) -> Path:
    """A fresh copy of the repository in the user's home, owned by them."""
    root = Path(user.pw_dir) / "tfdock-engines" / name
    if root.exists():
        shutil.rmtree(root)
    workspace = copy_repository(repo_root, root / "tfdock")
    give_to(user, root)
    return workspace


def give_to(user: pwd.struct_passwd, path: Path) -> None:
    """Make PATH (recursively) the user's, as if they had made it."""
    subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(path)], check=True)


def owners_under(folder: Path) -> set[tuple[int, int]]:
    """The (uid, gid) of FOLDER and of every file and folder below it."""
    paths = [folder, *folder.rglob("*")]
    return {(path.lstat().st_uid, path.lstat().st_gid) for path in paths}
