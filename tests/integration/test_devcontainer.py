"""The dev container configs, run by the reference devcontainers CLI exactly as VS Code runs them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.integration.containers import ARTIFACTS, copy_repository, engine_or_skip, run

pytestmark = pytest.mark.container

IMAGE_UID = 1000  # the image's user `tfdock` (docker/cpu.Dockerfile)


def _jsonc(path: Path) -> dict:
    """Read a devcontainer.json (JSON with whole-line // comments)."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("//")]
    return json.loads("\n".join(lines))


def _cli() -> str:
    cli = shutil.which("devcontainer")
    if not cli:
        pytest.skip(
            "the devcontainers CLI is not installed (scripts/ci-tools-setup.sh installs it)"
        )
    return cli


def _result(stdout: str) -> dict:
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

    def _common(self) -> list[str]:
        return [
            "--workspace-folder", str(self.workspace),
            "--docker-path", self.engine,
            "--config", str(self.config),
            "--id-label", self.label,
        ]  # fmt: skip

    def up(self, *extra: str, env: dict[str, str]) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [self.cli, "up", *self._common(), *extra],
            capture_output=True,
            text=True,
            timeout=3600,
            env={**os.environ, **env},
        )
        self.up_log = result.stdout + result.stderr
        self.up_result = _result(result.stdout)
        return result

    def exec(self, *command: str, remote_env: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        extra = [arg for name in remote_env for arg in ("--remote-env", name)]
        return subprocess.run(
            [self.cli, "exec", *self._common(), *extra, *command],
            capture_output=True,
            text=True,
            timeout=1800,
        )

    def remove(self) -> None:
        """Remove the container and the images `up` built for it."""
        ids = run(self.engine, "ps", "--all", "--quiet", "--filter", f"label={self.label}")
        for container in ids.stdout.split():
            image = run(self.engine, "inspect", "--format", "{{.ImageName}}", container,
                        check=False).stdout.strip()  # fmt: skip
            run(self.engine, "rm", "--force", container, check=False)
            # vsc-NAME-HASH-uid is built on vsc-NAME-HASH: both are this test's, 3 GB each.
            for name in {image, image.removesuffix("-uid")}:
                if re.search(r"(^|/)vsc-", name):
                    run(self.engine, "rmi", name, check=False, timeout=600)


@pytest.fixture(scope="module")
def devcontainer(tmp_path_factory, repo_root, mnist_dir):
    """`devcontainer up` on a fresh copy of the repo with MNIST mounted; always removed."""
    cli = _cli()
    engine = engine_or_skip()
    workspace = copy_repository(repo_root, tmp_path_factory.mktemp("devcontainer") / "tfdock")
    if os.getuid() == 0:
        # As root there is no host user to map (the CLI leaves uid 0 alone): the clone
        # belongs to the image's user instead, the README's fix for root-owned files.
        subprocess.run(["chown", "-R", f"{IMAGE_UID}:{IMAGE_UID}", str(workspace.parent)],
                       check=True)  # fmt: skip
    config = workspace / ".devcontainer" / "devcontainer.json"
    rootless = run(engine, "info", "--format", "{{.Host.Security.Rootless}}", check=False)
    if "podman" in engine and rootless.stdout.strip() == "false":
        # Rootful Podman refuses the --userns=keep-id the CLI adds for a non-root user
        # (devcontainers/cli#1004); a later --userns in runArgs overrides it. Only here:
        # the kit's config stays right for Docker and rootless Podman.
        settings = _jsonc(config)
        settings["runArgs"] = [*settings.get("runArgs", []), "--userns=host"]
        # The CLI accepts only the name devcontainer.json: rewrite the copy's own.
        config.write_text(json.dumps(settings, indent=2))
    env = {"BUILDAH_FORMAT": "docker"}  # Podman: keep the image's HEALTHCHECK and SHELL
    container = DevContainer(cli, engine, workspace, config, f"tfdock.test={uuid.uuid4().hex}")
    try:
        result = container.up(
            "--mount", f"type=bind,source={mnist_dir},target=/data/mnist", env=env
        )
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "devcontainer-up.log").write_text(container.up_log)
        assert result.returncode == 0, container.up_log[-6000:]
        yield container
    finally:
        container.remove()


def test_cli_reads_both_configs(repo_root):
    """The CLI reads the CPU and GPU configs; the GPU one asks for a GPU only where there is one."""
    cli = _cli()
    engine = engine_or_skip()  # the CLI asks the engine whether the container exists already
    merged = {}
    for name, path in (("cpu", ".devcontainer/devcontainer.json"),
                       ("gpu", ".devcontainer/gpu/devcontainer.json")):  # fmt: skip
        result = subprocess.run(
            [cli, "read-configuration", "--workspace-folder", str(repo_root), "--docker-path", engine,
             "--config", str(repo_root / path), "--include-merged-configuration"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        merged[name] = _result(result.stdout)["mergedConfiguration"]
    for config in merged.values():
        assert config["remoteUser"] == "tfdock" and config["updateRemoteUserUID"] is True
        assert config["forwardPorts"] == [8888]
        vscode = config["customizations"]["vscode"][0]
        assert set(vscode["extensions"]) == {
            "ms-python.python", "ms-toolsai.jupyter", "charliermarsh.ruff"
        }  # fmt: skip
        assert vscode["settings"]["python.defaultInterpreterPath"] == "/opt/venv/bin/python"
    assert merged["gpu"]["hostRequirements"]["gpu"] == "optional"
    assert "hostRequirements" not in merged["cpu"]


def test_devcontainer_up_proves_itself_and_says_what_next(devcontainer):
    """`devcontainer up` builds the CPU image, runs `make verify` after creation and prints next steps."""
    assert devcontainer.up_result["outcome"] == "success"
    assert devcontainer.up_result["remoteUser"] == "tfdock"
    assert devcontainer.up_result["remoteWorkspaceFolder"] == "/workspace"
    assert "5/5 checks passed" in devcontainer.up_log
    assert "the dev container is ready" in devcontainer.up_log
    assert "make lab" in devcontainer.up_log


def test_devcontainer_exec_make_verify_uses_the_image_venv(devcontainer):
    """`devcontainer exec make verify` passes as tfdock with /opt/venv, creating no .venv."""
    result = devcontainer.exec("make", "verify")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "5/5 checks passed" in result.stdout
    who = devcontainer.exec("sh", "-c", "id -un; command -v python")
    assert who.stdout.split() == ["tfdock", "/opt/venv/bin/python"]
    assert not (devcontainer.workspace / ".venv").exists()


@pytest.mark.slow
def test_devcontainer_trains_one_epoch_into_the_workspace(devcontainer):
    """`make train EPOCHS=1` in the dev container on the mounted MNIST leaves a run owned by the workspace's owner."""
    result = devcontainer.exec("make", "train", "EPOCHS=1", remote_env=("TFDOCK_DATA=/data/mnist",))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run_dir,) = (devcontainer.workspace / "runs").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["config"]["data_source"] == "/data/mnist"
    assert metrics["test"]["accuracy"] > 0.93
    owner = devcontainer.workspace.stat().st_uid
    for path in [run_dir, *run_dir.rglob("*")]:
        assert path.stat().st_uid == owner, path
