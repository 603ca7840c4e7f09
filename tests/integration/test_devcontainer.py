"""The dev container configs, run by the reference devcontainers CLI exactly as VS Code runs them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests import commands
from tests.integration.containers import (
    ALL_CHECKS_PASSED,
    ARTIFACTS,
    LOCKED_TENSORFLOW,
    copy_repository,
    engine_or_skip,
    pinned_base,
    probe_wheel,
    record_artifact,
    write_own_script,
)
from tests.integration.devcontainers import (
    IMAGE_UID,
    DevContainer,
    cli_outcome,
    devcontainer_cli,
    devcontainer_workspace,
    fit_to_this_machine,
    host_home,
)
from tfdock.lock import read_lock

pytestmark = pytest.mark.container

CONTAINER_CA = "/run/tfdock-ca.crt"  # where the tests mount $CA_BUNDLE, when it is set


# Where the tests mount the host's ssh-agent, as VS Code forwards it.
AGENT_SOCKET = "/ssh-agent/agent.sock"


@pytest.fixture(scope="module")
def ssh_agent(tmp_path_factory):
    """A real ssh-agent on the host holding a new ed25519 key; yields its public key.

    The agent lets only its own uid (and root) in: it runs as the uid the container's user
    has, the host user's, or the image's user's when the tests run as root.
    """
    folder = tmp_path_factory.mktemp("ssh-agent")
    key = folder / "id_ed25519"
    commands.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tfdock-test",
                  "-f", str(key)], check=True)  # fmt: skip
    # Outside pytest's folder, which only its owner may enter; short, for a socket's path.
    socket_dir = Path(tempfile.mkdtemp(prefix="tfdock-agent-"))
    as_user = []
    if os.getuid() == 0:
        os.chown(socket_dir, IMAGE_UID, IMAGE_UID)
        as_user = ["setpriv", f"--reuid={IMAGE_UID}", f"--regid={IMAGE_UID}", "--clear-groups"]
    socket = socket_dir / "agent.sock"
    agent = subprocess.Popen([*as_user, "ssh-agent", "-D", "-a", str(socket)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not socket.exists() and agent.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert socket.exists(), "ssh-agent did not make its socket"
        added = commands.run(["ssh-add", str(key)], env={"SSH_AUTH_SOCK": str(socket)})
        assert added.returncode == 0, added.stderr
        yield socket_dir, (folder / "id_ed25519.pub").read_text().strip()
    finally:
        agent.kill()
        agent.wait()
        shutil.rmtree(socket_dir)


@pytest.fixture(scope="module")
def devcontainer(tmp_path_factory, repo_root, mnist_dir, ssh_agent, cpu_image):
    """`devcontainer up` on a fresh copy of the repo with MNIST mounted; always removed.

    After the session's `make image` (cpu_image): its layers are the dev stage's, so they are
    built once, not twice at the same time by two test processes.
    """
    cli = devcontainer_cli()
    engine = engine_or_skip()
    workspace = devcontainer_workspace(
        repo_root, tmp_path_factory.mktemp("devcontainer") / "tfdock"
    )
    config = workspace / ".devcontainer" / "devcontainer.json"
    fit_to_this_machine(engine, config)
    home = host_home(tmp_path_factory.mktemp("devcontainer-home"))  # whose caches it mounts
    env = {"BUILDAH_FORMAT": "docker", "HOME": str(home)}  # Podman: keep HEALTHCHECK and SHELL
    mounts = ["--mount", f"type=bind,source={mnist_dir},target=/data/mnist",
              "--mount", f"type=bind,source={ssh_agent[0]},target={Path(AGENT_SOCKET).parent}"]  # fmt: skip
    if os.environ.get("CA_BUNDLE"):
        # Behind a TLS-intercepting proxy, `make lock` in the container needs its CA too.
        mounts += ["--mount", f"type=bind,source={os.environ['CA_BUNDLE']},target={CONTAINER_CA}"]
    container = DevContainer(cli, engine, workspace, config, f"tfdock.test={uuid.uuid4().hex}")
    try:
        started = time.perf_counter()
        result = container.up(*mounts, env=env)
        record_artifact(
            "devcontainer.json", "up_built_seconds", round(time.perf_counter() - started, 1)
        )
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "devcontainer-up.log").write_text(container.up_log)
        assert result.returncode == 0, container.up_log[-6000:]
        yield container
    finally:
        container.remove()


CONFIGS = {
    "cpu": ".devcontainer/devcontainer.json",
    "gpu": ".devcontainer/gpu/devcontainer.json",
    "pulled": ".devcontainer/pulled/devcontainer.json",
}


def test_cli_reads_every_config(repo_root, tmp_path):
    """The CLI reads all three configs: one user, ports, extensions, interpreter and pytest; a GPU only where there is one."""
    cli = devcontainer_cli()
    engine = engine_or_skip()  # the CLI asks the engine whether the container exists already
    # The CLI inspects each Dockerfile's base: a copy names this machine's (CI has no registry).
    workspace = copy_repository(repo_root, tmp_path / "tfdock")
    merged = {}
    for name, path in CONFIGS.items():
        # The pulled config's image stands for the team's; the CLI only reads its labels.
        stand_in = {"image": _local_base(repo_root)} if name == "pulled" else {}
        fit_to_this_machine(engine, workspace / path, **stand_in)
        result = commands.run(
            [cli, "read-configuration", "--workspace-folder", str(workspace), "--docker-path", engine,
             "--config", str(workspace / path), "--include-merged-configuration"],
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        merged[name] = cli_outcome(result.stdout)["mergedConfiguration"]
    for config in merged.values():
        assert config["remoteUser"] == "tfdock" and config["updateRemoteUserUID"] is True
        assert config["forwardPorts"] == [8888, 6006]
        labels = {
            port: attributes["label"] for port, attributes in config["portsAttributes"].items()
        }
        assert labels == {"8888": "JupyterLab", "6006": "TensorBoard"}
        vscode = config["customizations"]["vscode"][0]
        assert set(vscode["extensions"]) == {
            "ms-python.python", "ms-toolsai.jupyter", "charliermarsh.ruff"
        }  # fmt: skip
        settings = vscode["settings"]
        assert settings["python.defaultInterpreterPath"] == "/opt/venv/bin/python"
        assert settings["python.testing.pytestEnabled"] is True
        assert settings["python.testing.unittestEnabled"] is False
        _testing_view_finds_the_suite(repo_root, settings["python.testing.pytestArgs"])
    assert merged["gpu"]["hostRequirements"]["gpu"] == "optional"
    assert "hostRequirements" not in merged["cpu"]


def _local_base(repo_root) -> str:
    """The base image `make image` builds on here (CI's local copy, else the pinned one)."""
    pinned = pinned_base(repo_root)
    return os.environ.get("BASE_IMAGE") or f"{pinned['BASE_NAME']}@{pinned['BASE_DIGEST']}"


def _testing_view_finds_the_suite(repo_root, arguments: list[str]) -> None:
    """pytest, given the configs' arguments, collects the whole suite without an error."""
    result = commands.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *arguments], cwd=repo_root
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"^\d{3,} tests collected", result.stdout, re.M), result.stdout[-500:]


@pytest.mark.slow
def test_devcontainer_up_proves_itself_and_says_what_next(devcontainer):
    """`devcontainer up` builds the CPU image, runs `make verify` after creation and prints next steps."""
    assert devcontainer.up_result["outcome"] == "success"
    assert devcontainer.up_result["remoteUser"] == "tfdock"
    assert devcontainer.up_result["remoteWorkspaceFolder"] == "/workspace"
    assert ALL_CHECKS_PASSED.search(devcontainer.up_log)
    assert "the dev container is ready" in devcontainer.up_log
    assert "make lab" in devcontainer.up_log and "make tensorboard" in devcontainer.up_log


@pytest.mark.slow
def test_the_kits_and_pips_caches_are_the_host_users(devcontainer):
    """The dev container's MNIST and pip caches (/cache/) are the host user's: they outlive it."""
    where = "python -c 'from tfdock.data import default_cache_dir; print(default_cache_dir())'"
    touch = "touch /cache/tfdock/kept /cache/pip/kept"
    result = devcontainer.exec("sh", "-c", f"{where} && pip cache dir && {touch}")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert "/cache/tfdock" in lines and "/cache/pip" in lines
    home = Path(devcontainer.up_env["HOME"])
    assert (home / ".cache/tfdock/kept").is_file() and (home / ".cache/pip/kept").is_file()


@pytest.mark.slow
def test_devcontainer_exec_make_verify_uses_the_image_venv(devcontainer):
    """`devcontainer exec make verify` passes as tfdock with /opt/venv, creating no .venv."""
    result = devcontainer.exec("make", "verify")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert ALL_CHECKS_PASSED.search(result.stdout), result.stdout
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


def _exec_ok(devcontainer, *command: str, remote_env: tuple[str, ...] = ()) -> str:
    result = devcontainer.exec(*command, remote_env=remote_env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


SIGN_AND_VERIFY = """
set -e
cd "$(mktemp -d)" && git init -q
git config user.name Tester && git config user.email tester@example.com
echo "tester@example.com $SIGNING_KEY" >allowed_signers
git -c gpg.format=ssh -c user.signingkey="key::$SIGNING_KEY" commit -q -S --allow-empty -m ssh
git -c gpg.ssh.allowedSignersFile=allowed_signers verify-commit HEAD 2>&1
gpg --batch --quiet --passphrase '' --quick-gen-key 'Tester <tester@example.com>' ed25519 sign 1d
git -c user.signingkey=tester@example.com commit -q -S --allow-empty -m gpg
git verify-commit HEAD 2>&1
"""


@pytest.mark.slow
def test_make_check_passes_in_the_dev_container(devcontainer, repo_root):
    """`make check`, the pre-commit hook's command, passes in the dev container: lint and the unit tests."""
    # The unit tests read the config, which the fixture fitted to this machine: the kit's own
    # for this run, then the fitted one again for `up` in later tests.
    config = devcontainer.config
    fitted = config.read_text()
    config.write_text((repo_root / ".devcontainer" / "devcontainer.json").read_text())
    started = time.perf_counter()
    try:
        out = _exec_ok(devcontainer, "make", "check")
    finally:
        config.write_text(fitted)
    assert re.search(r"^\d+ passed", out.splitlines()[-1]), out[-2000:]
    record_artifact("workflow.json", "make_check_seconds", round(time.perf_counter() - started, 1))


@pytest.mark.slow
def test_git_signs_commits_with_the_agents_ssh_key_and_with_gnupg(devcontainer, ssh_agent):
    """The dev stage has ssh and gnupg: the host agent's key (forwarded as VS Code does) signs a commit, and so does a GnuPG key."""
    agent = (f"SSH_AUTH_SOCK={AGENT_SOCKET}",)
    listed = _exec_ok(devcontainer, "ssh-add", "-L", remote_env=agent)
    assert listed.strip() == ssh_agent[1]
    signing_key = " ".join(ssh_agent[1].split()[:2])
    out = _exec_ok(devcontainer, "bash", "-c", SIGN_AND_VERIFY,
                   remote_env=(*agent, f"SIGNING_KEY={signing_key}"))  # fmt: skip
    assert 'Good "git" signature for tester@example.com with ED25519 key' in out, out
    assert 'Good signature from "Tester <tester@example.com>"' in out, out


@pytest.mark.slow
@pytest.mark.network  # Debian's archive
def test_sudo_apt_get_install_works_without_a_password(devcontainer):
    """The image's user has passwordless sudo in the dev container: a real apt-get install from Debian."""
    out = _exec_ok(devcontainer, "bash", "-c",
                   "sudo -n apt-get update -qq && sudo -n apt-get install -y -qq "
                   "--no-install-recommends tree >/dev/null && tree --version")  # fmt: skip
    assert out.startswith("tree v"), out


KERNEL_PRINTS_PROBE = (
    "import nbclient, nbformat; "
    "nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("
    "'import tfdock; print(tfdock.__file__, tfdock.EDIT_PROBE)')]); "
    "nbclient.NotebookClient(nb, kernel_name='python3', timeout=300).execute(); "
    "print(nb.cells[0].outputs[0]['text'], end='')"
)


@pytest.mark.slow
def test_edit_in_the_workspace_counts_at_the_next_command(devcontainer):
    """An edit to src/tfdock on the host is what the next command, pytest and a notebook kernel in the container import."""
    init = devcontainer.workspace / "src" / "tfdock" / "__init__.py"
    probe_test = devcontainer.workspace / "tests" / "unit" / "test_edit_probe.py"
    original = init.read_text()
    marker = uuid.uuid4().hex
    expected = f"/workspace/src/tfdock/__init__.py {marker}"
    exec_only = time.perf_counter()
    _exec_ok(devcontainer, "true")
    exec_only = time.perf_counter() - exec_only
    try:
        edited = time.perf_counter()
        init.write_text(original + f'\nEDIT_PROBE = "{marker}"\n')
        seen = _exec_ok(devcontainer, "python", "-c",
                        "import tfdock; print(tfdock.__file__, tfdock.EDIT_PROBE)")  # fmt: skip
        visible = time.perf_counter() - edited
        assert seen.strip() == expected
        record_artifact(
            "devcontainer.json", "edit_visible_at_first_command_seconds", round(visible, 2)
        )
        record_artifact("devcontainer.json", "exec_true_seconds", round(exec_only, 2))
        probe_test.write_text(
            f"import tfdock\n\n\ndef test_edit_is_seen():\n    assert tfdock.EDIT_PROBE == {marker!r}\n"
        )
        _exec_ok(
            devcontainer, "pytest", "-q", "-p", "no:cacheprovider", "tests/unit/test_edit_probe.py"
        )
        assert _exec_ok(devcontainer, "python", "-c", KERNEL_PRINTS_PROBE).strip() == expected
    finally:
        init.write_text(original)
        probe_test.unlink(missing_ok=True)


@pytest.mark.slow
def test_pip_install_in_the_dev_container_is_named_by_verify(devcontainer):
    """The dev container's user can pip install a package into /opt/venv, and `make verify` then names it as drift."""
    wheel = probe_wheel(devcontainer.workspace / "test-artifacts" / "probe-wheel")
    _exec_ok(devcontainer, "pip", "install", "--quiet", "--no-deps",
             f"test-artifacts/probe-wheel/{wheel.name}")  # fmt: skip
    try:
        result = devcontainer.exec("make", "verify")
        assert result.returncode != 0
        packages = next(line for line in result.stdout.splitlines() if " packages " in line)
        assert "extra: tfdock-drift-probe==1.0 (not in the lock)" in packages
    finally:
        _exec_ok(devcontainer, "pip", "uninstall", "--quiet", "--yes", "tfdock-drift-probe")


@pytest.mark.slow
def test_make_run_in_the_dev_container_writes_your_file(devcontainer):
    """`make run CMD='python script.py OUT'` in the dev container runs a TensorFlow script with /opt/venv; the file is the workspace owner's."""
    script = write_own_script(devcontainer.workspace / "test-artifacts" / "own")
    owner = devcontainer.workspace.stat()
    for path in (script.parent.parent, script.parent, script):
        os.chown(path, owner.st_uid, owner.st_gid)  # a folder the workspace's owner made
    out = script.parent / "devcontainer.txt"
    _exec_ok(devcontainer, "make", "run",
             "CMD=python test-artifacts/own/own_script.py test-artifacts/own/devcontainer.txt")  # fmt: skip
    version, total, prefix = out.read_text().split()
    assert version == LOCKED_TENSORFLOW and total == "6.0" and prefix == "/opt/venv"
    assert out.stat().st_uid == devcontainer.workspace.stat().st_uid


@pytest.mark.network
@pytest.mark.slow
def test_make_lock_in_the_dev_container_uses_its_environment(devcontainer):
    """`make lock` in the dev container compiles both locks with /opt/venv's pip-tools and makes no .venv."""
    # A one-package project keeps this to seconds; tests/integration/test_lock_workflow.py
    # compiles the real locks.
    files = ("requirements.in", "requirements-gpu.in", "requirements.txt", "requirements-gpu.txt")
    saved = {name: (devcontainer.workspace / name).read_bytes() for name in files}
    remote_env = (f"PIP_CERT={CONTAINER_CA}",) if os.environ.get("CA_BUNDLE") else ()
    try:
        (devcontainer.workspace / "requirements.in").write_text("six\n")
        (devcontainer.workspace / "requirements-gpu.in").write_text(
            "-c requirements.txt\n-r requirements.in\n"
        )
        said = _exec_ok(devcontainer, "make", "lock", remote_env=remote_env)
        assert f"-tensorflow {LOCKED_TENSORFLOW}" in said, "the summary names what left the lock"
        for name in ("requirements.txt", "requirements-gpu.txt"):
            lock = read_lock(devcontainer.workspace / name)
            assert lock.pins == {"six": "1.17.0"}, name
            assert "pip-compile with Python 3.11" in lock.path.read_text(), name
            assert len(lock.hashes["six"]) == 2
        assert not (devcontainer.workspace / ".venv").exists()
    finally:
        for name, content in saved.items():
            (devcontainer.workspace / name).write_bytes(content)


@pytest.mark.slow
def test_stale_lock_is_named_by_verify_and_at_every_start(devcontainer):
    """After the workspace's lock changes, `make verify` fails with one sentence, and the next start says it too (and still starts)."""
    lock = devcontainer.workspace / "requirements.txt"
    original = lock.read_bytes()
    sentence = "this container is older than the lock: /workspace/requirements.txt changed"
    lock.write_bytes(original + b"# a teammate's change\n")
    try:
        result = devcontainer.exec("make", "verify")
        assert result.returncode != 0
        assert f"tfdock: error: {sentence}" in result.stderr
        assert "Rebuild Container" in result.stderr and "checks passed" not in result.stdout
        restarted = devcontainer.restart()
        assert restarted.returncode == 0, devcontainer.up_log[-6000:]
        assert devcontainer.up_result["outcome"] == "success"
        assert sentence in devcontainer.up_log
        (ARTIFACTS / "devcontainer-restart.log").write_text(devcontainer.up_log)
    finally:
        lock.write_bytes(original)
    assert _exec_ok(devcontainer, "tfdock", "container-check") == ""
