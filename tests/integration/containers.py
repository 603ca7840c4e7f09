"""Helpers for tests that build and run the kit's images with a real engine."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import commands
from tests.workers import one_at_a_time
from tfdock.lock import read_lock

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
ARTIFACT_LOCKS = Path(tempfile.gettempdir()) / "tfdock-test-artifact-locks"
# The TensorFlow every door must hold, read from the lock so an upgrade needs no test edits.
LOCKED_TENSORFLOW = read_lock(REPO_ROOT / "requirements.txt").pins["tensorflow"]
# `tfdock verify`'s last line when every check passed, however many checks it runs.
ALL_CHECKS_PASSED = re.compile(r"^(\d+)/\1 checks passed$", re.M)
IMAGE = os.environ.get("IMAGE", "tfdock")
# Seconds of a cold `make image` (the lock layer built, not cached), when this session did one.
COLD_BUILD: dict[str, float] = {}


def engine_or_skip() -> str:
    """Return the engine the kit's targets will use ($ENGINE, else podman/docker that answers)."""
    candidates = [os.environ["ENGINE"]] if os.environ.get("ENGINE") else ["podman", "docker"]
    for engine in candidates:
        if (
            shutil.which(engine)
            and subprocess.run([engine, "info"], capture_output=True, timeout=60).returncode == 0
        ):
            return engine
    pytest.skip(
        f"no answering container engine among {candidates}: the container tests need "
        "docker or podman (CI sets podman up with scripts/container-host-setup.sh)"
    )


def make(repo_root: Path, *args: str, engine: str, timeout: int = 1800, **env: str):
    """Run a make target with ENGINE (and ENV) set, returning the completed process."""
    return commands.make(repo_root, *args, timeout=timeout, env={"ENGINE": engine, **env})


def run(engine: str, *args: str, timeout: int = 300, check: bool = True):
    """Run the engine's CLI and return the completed process."""
    result = commands.run([engine, *args], timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{engine} {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def remove_dev_containers(
    engine_cli: Callable[..., subprocess.CompletedProcess], label: str, keep: str | None = None
) -> None:
    """Remove the containers labelled LABEL that the devcontainers CLI made, and its vsc-* images.

    ENGINE_CLI(*args, check=..., timeout=...) runs the engine as the user who owns them: run()
    bound to an engine, or a Door's engine_cli. Each image is about 3 GB. With KEEP (an image
    name), the images stay under KEEP-uid and KEEP-build instead of their vsc-* names: the
    CLI's names hold the workspace's path, new every run, while the next run's `up` builds
    the same images from the cache and finds rootless Podman's keep-id copy of them made.
    """
    listed = engine_cli("ps", "--all", "--quiet", "--filter", f"label={label}", check=False)
    for container in listed.stdout.split():
        image = engine_cli("inspect", "--format", "{{.Config.Image}}", container,
                           check=False).stdout.strip()  # fmt: skip
        engine_cli("rm", "--force", container, check=False)
        # vsc-NAME-HASH-uid[:latest] is built on vsc-NAME-HASH: both are this test's, the child
        # removed first so that its parent is free to go.
        names = dict.fromkeys([image, re.sub(r"-uid(:[^/:]+)?$", r"\1", image)])
        for role, name in zip(("uid", "build"), names, strict=False):
            if re.search(r"(^|/)vsc-", name):
                if keep:
                    _name_instead(engine_cli, name, f"{keep}-{role}")
                engine_cli("rmi", name, check=False, timeout=600)


def _name_instead(engine_cli: Callable[..., subprocess.CompletedProcess], image: str, kept: str):
    """Give IMAGE the name KEPT, and remove the image that name held before (a run's older one)."""

    def image_id() -> str:
        inspect = engine_cli("image", "inspect", "--format", "{{.Id}}", kept, check=False)
        return inspect.stdout.strip() if inspect.returncode == 0 else ""

    before = image_id()
    engine_cli("tag", image, kept, check=False)
    if before and before != image_id():
        engine_cli("rmi", before, check=False, timeout=600)


def image_size_mb(engine: str, image: str) -> float:
    """Return an image's size in MB as the engine reports it."""
    size = run(engine, "image", "inspect", "--format", "{{.Size}}", image).stdout.strip()
    return int(size) / 1e6


def free_disk_gb(engine: str) -> float:
    """Return the free space where the engine stores images, in GB."""
    root = "/var/lib/docker"
    if "podman" in engine:
        root = run(engine, "info", "--format", "{{.Store.GraphRoot}}").stdout.strip()
    root_path = Path(root) if Path(root).exists() else Path("/")
    return shutil.disk_usage(root_path).free / 1e9


def record_artifact(file_name: str, name: str, value) -> None:
    """Add one measured figure to test-artifacts/FILE_NAME (a JSON object).

    One process at a time: the test processes of a run share the file.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / file_name
    with one_at_a_time(ARTIFACT_LOCKS, file_name):
        data = json.loads(path.read_text()) if path.exists() else {}
        data[name] = value
        path.write_text(json.dumps(data, indent=2) + "\n")


def install_step_cached(build_log: str) -> bool:
    """Say whether an image build reused every layer that installs part of the lock."""
    return bool(_install_steps(build_log)) and not lock_layers_rebuilt(build_log)


def lock_layers_rebuilt(build_log: str) -> list[str]:
    """Name the lock's layers (tensorflow, jupyterlab, rest) that an image build installed anew."""
    return [
        re.search(r"-r /opt/tfdock/layers/(\w+)\.txt", step).group(1)
        for step in _install_steps(build_log)
        if "Using cache" not in step
    ]


def _install_steps(build_log: str) -> list[str]:
    """Return the log of each build step that installs part of the lock (they take the CA secret)."""
    return re.findall(r"STEP \d+/\d+: RUN --mount=type=secret.*?(?=STEP \d+/\d+:)", build_log, re.S)


def base_build_args(engine: str) -> dict[str, str]:
    """The base `make image` builds on, as BASE_NAME/BASE_DIGEST build args ({} = the pinned one).

    A name without a digest is the engine's local image of that name (CI's debootstrap copy).
    """
    name = os.environ.get("BASE_IMAGE")
    if not name:
        return {}
    if "@" in name:
        base_name, digest = name.split("@", 1)
        return {"BASE_NAME": base_name, "BASE_DIGEST": digest}
    template = "{{.Digest}}" if "podman" in engine else "{{index .RepoDigests 0}}"
    digest = run(engine, "image", "inspect", "--format", template, name).stdout.strip()
    return {"BASE_NAME": name, "BASE_DIGEST": "sha256:" + digest.split("sha256:")[-1]}


def pinned_base(repo_root: Path) -> dict[str, str]:
    """The Dockerfile's own base: BASE_NAME and BASE_DIGEST as its ARG lines give them."""
    text = (repo_root / "docker" / "cpu.Dockerfile").read_text()
    defaults = dict(re.findall(r"^ARG (BASE_NAME|BASE_DIGEST)=(\S+)$", text, re.M))
    return {"BASE_NAME": defaults["BASE_NAME"], "BASE_DIGEST": defaults["BASE_DIGEST"]}


def image_labels(engine: str, image: str) -> dict[str, str]:
    """Return an image's labels."""
    out = run(engine, "image", "inspect", "--format", "{{json .Config.Labels}}", image).stdout
    return json.loads(out) or {}


def copy_repository(repo_root: Path, destination: Path) -> Path:
    """Copy the repository's files (tracked and new, not ignored) to a throwaway folder."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo_root, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, files):
        source = repo_root / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


# A team's own script: it imports TensorFlow and writes a file into the workspace.
OWN_SCRIPT = """\
import sys
from pathlib import Path

import tensorflow as tf

total = float(tf.reduce_sum(tf.range(4.0)))
Path(sys.argv[1]).write_text(f"{tf.__version__} {total} {sys.prefix}\\n")
"""


def write_own_script(folder: Path) -> Path:
    """Write OWN_SCRIPT into ``folder`` (inside a workspace) and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "own_script.py"
    script.write_text(OWN_SCRIPT)
    return script


def tiny_wheel(folder: Path, name: str, version: str) -> Path:
    """Build an empty package NAME VERSION as a wheel in FOLDER; return the wheel."""
    source = folder / f"{name}-source"
    module = name.replace("-", "_")
    (source / module).mkdir(parents=True)
    (source / module / "__init__.py").write_text("")
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\n'
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(folder), str(source)],
        check=True,
    )  # fmt: skip
    shutil.rmtree(source)
    (wheel,) = folder.glob(f"{module}-{version}-*.whl")
    return wheel


def probe_wheel(folder: Path) -> Path:
    """Build a tiny package that is in no lock, tfdock-drift-probe 1.0, as a wheel in FOLDER."""
    return tiny_wheel(folder, "tfdock-drift-probe", "1.0")


def weights(run_dir: Path) -> list:
    """The trained model's weights in a run folder, as numpy arrays."""
    import keras

    return keras.saving.load_model(run_dir / "model.keras").get_weights()
