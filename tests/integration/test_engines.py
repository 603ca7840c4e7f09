"""Every door on every engine a team runs: Docker Engine, rootless Podman and rootful Podman.

Docker and rootless Podman are driven by a non-root host user whose uid is not 1000
(tests/integration/engines.py), each building the image with its own `make image`;
rootful Podman is root with the session's image. Each door is the user's command as the
README gives it, and each file it writes in the workspace must be the host user's.
Times land in test-artifacts/engines.json, one entry per engine and door.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.commands import start
from tests.integration.containers import (
    ALL_CHECKS_PASSED,
    IMAGE,
    copy_repository,
    record_artifact,
    remove_dev_containers,
    run,
)
from tests.integration.devcontainers import devcontainer_workspace, read_jsonc
from tests.integration.engines import (
    DOCKER,
    ENGINES,
    Door,
    give_to,
    matrix_user,
    owners_under,
    user_workspace,
)
from tests.integration.lab_helpers import free_port, http_status
from tests.integration.registry import serve_registry

pytestmark = pytest.mark.container

LOCK_LABEL = "com.github.tfdock.lock.sha256"
# The engines registry's port (see the registry fixture).
REGISTRY_PORT = 5055
MODE_WORDS = {
    "docker": "Docker Engine; containers run as your uid (--user)",
    "rootless-podman": "rootless Podman; containers run as you (--userns=keep-id)",
    "podman": "rootful Podman; containers run as your uid (--user)",
}


def _record(door: Door, what: str, seconds: float) -> None:
    record_artifact("engines.json", f"{door.name} {what} seconds", round(seconds, 1))


def _timed(door: Door, what: str, call):
    started = time.perf_counter()
    result = call()
    _record(door, what, time.perf_counter() - started)
    return result


def _user_or_skip():
    user = matrix_user()
    if user is None:
        pytest.skip(
            "the engine matrix runs as a non-root host user, made by "
            "scripts/engines-host-setup.sh (root only)"
        )
    return user


def _answering_or_skip(door: Door) -> None:
    info = door.engine_cli("info", check=False, timeout=120)
    if info.returncode != 0:
        pytest.skip(
            f"{door.engine} does not answer for {door.name}: {info.stderr.strip()[-300:]} "
            "(scripts/engines-host-setup.sh sets it up)"
        )


def _base_for(door: Door, registry: str) -> dict[str, str]:
    """Make the session's base (CI's local debootstrap copy) the door's, as its engine needs it.

    Docker pins a base by its registry digest only, so the base goes through the loopback
    registry; rootless Podman's store is the user's own, so the base is loaded into it.
    """
    name = os.environ.get("BASE_IMAGE")
    if not name or "@" in name:
        return {}
    if door.name == "docker":
        remote = f"{registry}/library/debian:bookworm-slim"
        run("podman", "push", "--quiet", "--tls-verify=false", name, remote, timeout=600)
        door.engine_cli("pull", "--quiet", remote)
        return {"BASE_IMAGE": remote}
    archive = door.workspace.parent / "base.tar"
    run("podman", "save", "--quiet", "--output", str(archive), name, timeout=600)
    give_to(door.user, archive)
    door.engine_cli("load", "--quiet", "--input", str(archive))
    archive.unlink()
    return {"BASE_IMAGE": name, "BUILD_FLAGS": "--pull=never"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A real registry on loopback: Docker's base goes through it, and pushes are aimed at it.

    On the same port each session where it is free: the base's name holds the address, and
    Docker's build cache keys on it, so a new port would rebuild Docker's image every time.
    """
    with serve_registry(tmp_path_factory.mktemp("engines-registry"), port=REGISTRY_PORT) as address:
        yield address


@pytest.fixture(scope="module", params=ENGINES)
def door(request, repo_root, registry):
    """One engine, its image built by its own `make image` (rootful Podman: the session's)."""
    name = request.param
    if name == "podman":
        request.getfixturevalue("cpu_image")
        workspace = copy_repository(
            repo_root, request.getfixturevalue("tmp_path_factory").mktemp("engines") / "tfdock"
        )
        yield Door(name, "podman", workspace)
        return
    user = _user_or_skip()
    workspace = user_workspace(repo_root, user, name)
    door = Door(name, DOCKER if name == "docker" else "podman", workspace, user)
    _answering_or_skip(door)
    door.env = _base_for(door, registry)
    result = _timed(door, "make image", lambda: door.make("image", timeout=3600))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield door


@pytest.fixture(scope="module")
def mnist_copy(door, mnist_dir):
    """The offline MNIST in the door's workspace parent, readable by its user."""
    folder = door.workspace.parent / "mnist"
    if not folder.exists():
        folder.mkdir()
        for source in mnist_dir.glob("*.gz"):
            (folder / source.name).write_bytes(source.read_bytes())
        if door.user is not None:
            give_to(door.user, folder)
    return folder


@pytest.mark.slow
def test_make_image_labels_the_image_with_the_workspace_lock(door):
    """The engine's own `make image` built IMAGE:cpu from the workspace's lock (its label says so)."""
    lock = hashlib.sha256((door.workspace / "requirements.txt").read_bytes()).hexdigest()
    inspect = door.engine_cli("image", "inspect", "--format", "{{json .Config.Labels}}",
                              f"{IMAGE}:cpu").stdout  # fmt: skip
    assert json.loads(inspect)[LOCK_LABEL] == lock


@pytest.mark.slow
def test_doctor_names_the_engine_and_its_mode(door):
    """`make doctor` says which engine answers and how the doors run there, and passes."""
    result = door.make("doctor", timeout=300)
    assert MODE_WORDS[door.name] in result.stdout, result.stdout
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_docker_verify_passes(door):
    """`make docker-verify` passes every check in the engine's image."""
    result = _timed(door, "make docker-verify", lambda: door.make("docker-verify"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert ALL_CHECKS_PASSED.search(result.stdout), result.stdout


@pytest.mark.slow
def test_docker_train_writes_its_run_as_the_host_user(door, mnist_copy):
    """`make docker-train` trains one epoch; the run folder and every file in it are the user's."""
    runs = f"runs-{uuid.uuid4().hex[:8]}"
    result = _timed(door, "make docker-train EPOCHS=1", lambda: door.make(
        "docker-train", "EPOCHS=1", f"RUNS={runs}", TFDOCK_DATA=str(mnist_copy)))  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    accuracy = float(re.search(r"test accuracy (\d\.\d+)", result.stdout).group(1))
    assert accuracy > 0.9
    (run_dir,) = (door.workspace / runs).iterdir()
    assert (run_dir / "metrics.json").is_file()
    assert owners_under(door.workspace / runs) == {door.ids}


@pytest.mark.slow
@pytest.mark.slurm
def test_slurm_train_runs_its_tasks_as_the_user_and_leaves_no_container(door, mnist_copy, slurm):
    """`make slurm-train` submitted by the user: both tasks' containers run as them, then go."""
    runs = f"runs-slurm-{uuid.uuid4().hex[:8]}"
    result = _timed(door, "make slurm-train EPOCHS=1", lambda: door.make(
        "slurm-train", "EPOCHS=1", "TRAIN_FLAGS=--limit 6000", "SLURM_FLAGS=--wait",
        f"RUNS={runs}", TFDOCK_DATA=str(mnist_copy)))  # fmt: skip
    (log,) = (door.workspace / runs).glob("slurm-*.out")
    assert result.returncode == 0, log.read_text()[-3000:]
    assert "every task finished" in log.read_text()
    assert (door.workspace / runs / log.stem / "metrics.json").is_file()
    assert owners_under(door.workspace / runs) == {door.ids}
    job = log.stem.removeprefix("slurm-")
    left = door.engine_cli("ps", "--all", "--quiet", "--filter", f"label=tfdock.slurm-job={job}")
    assert left.stdout.split() == []


@pytest.mark.slow
def test_docker_run_writes_files_the_host_user_owns(door):
    """`make docker-run CMD=...` writes into the workspace as the user, and the home is writable."""
    marker = f"owned-by-me-{uuid.uuid4().hex[:8]}"
    command = f"touch /workspace/{marker} && touch $$HOME/.cache-probe && id -u"
    result = _timed(door, "make docker-run", lambda: door.make("docker-run", f"CMD={command}"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == str(door.ids[0])
    stat = (door.workspace / marker).stat()
    assert (stat.st_uid, stat.st_gid) == door.ids


@pytest.mark.slow
def test_docker_shell_runs_what_it_reads_as_the_host_user(door):
    """`make docker-shell` reads commands from a pipe too; what it writes is the user's."""
    marker = f"shell-{uuid.uuid4().hex[:8]}"
    result = door.make("docker-shell", input=f"id -u > /workspace/{marker}\nexit\n")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    path = door.workspace / marker
    assert path.read_text().strip() == str(door.ids[0])
    assert (path.stat().st_uid, path.stat().st_gid) == door.ids


@pytest.mark.slow
def test_docker_lab_answers_with_its_token_only(door):
    """`make docker-lab` serves JupyterLab on 127.0.0.1:PORT; its API answers with the token, not without."""
    port, token = free_port(), os.urandom(24).hex()
    command, environment = door.command("make", "docker-lab", PORT=str(port), JUPYTER_TOKEN=token)
    log = door.workspace.parent / "docker-lab.log"
    name = f"{IMAGE.rsplit('/', 1)[-1]}-lab-{port}"
    started = time.perf_counter()
    with log.open("w") as handle:
        lab = start(command, cwd=door.workspace, env=environment, stdout=handle,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while http_status(f"{base}/api/status?token={token}", timeout=2) != 200:
            assert lab.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"no answer in 300 s:\n{log.read_text()}"
            time.sleep(0.5)
        _record(door, "make docker-lab (until it answers)", time.perf_counter() - started)
        assert http_status(f"{base}/api/status", timeout=5) == 403
        assert f"{base}/lab?token=" in log.read_text()
    finally:
        os.killpg(lab.pid, signal.SIGINT)
        try:
            lab.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(lab.pid, signal.SIGKILL)
        door.engine_cli("rm", "--force", name, check=False)


@pytest.mark.slow
def test_push_refuses_a_single_arch_cpu_image_in_one_sentence(door, registry):
    """`make push` publishes the multi-arch CPU image only: a single-arch IMAGE:cpu is one sentence."""
    result = door.make("push", f"REGISTRY={registry}/team", "PUSH_FLAGS=--tls-verify=false",
                       timeout=300)  # fmt: skip
    assert result.returncode != 0
    (sentence,) = [line for line in result.stderr.splitlines() if line.startswith("push:")]
    assert f"{IMAGE}:cpu" in sentence
    assert "make image-multiarch" in sentence
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def dev_workspace(door, repo_root) -> Path:
    """The workspace the CLI opens: the user's own; root's is a copy owned by the image's user."""
    if door.user is None:
        # Root has no host user for the CLI to map: a copy owned by the image's user instead.
        return devcontainer_workspace(repo_root, door.workspace.parent / "dev" / "tfdock")
    return door.workspace


def _write_config(door: Door, config: Path, settings: dict) -> None:
    if door.name == "podman":
        # Rootful Podman refuses the --userns=keep-id the CLI adds (devcontainers/cli#1004).
        settings["runArgs"] = ["--userns=host"]
    config.write_text(json.dumps(settings, indent=2))
    if door.user is not None:
        give_to(door.user, config)


@pytest.fixture(scope="module")
def pulled_config(door, dev_workspace):
    """The pulled dev container config, its image set to the door's own IMAGE:cpu."""
    config = dev_workspace / ".devcontainer" / "pulled" / "devcontainer.json"
    image = f"localhost/{IMAGE}:cpu" if "podman" in door.name else f"{IMAGE}:cpu"
    _write_config(door, config, {**read_jsonc(config), "image": image})
    return dev_workspace, config


@contextlib.contextmanager
def _dev_container(door: Door, workspace: Path, config: Path, what: str, timeout: int, **env: str):
    """`devcontainer up` as the door's user (timed as WHAT); yield what execs in it; always removed.

    Its images stay, under names of their own (remove_dev_containers' KEEP), as the session's
    images do: rootless Podman copies each new image once, chowned for keep-id (about 50 s).
    """
    label = f"tfdock.test={uuid.uuid4().hex}"
    common = ["--workspace-folder", str(workspace), "--docker-path", door.engine,
              "--config", str(config), "--id-label", label]  # fmt: skip
    # The CLI's scratch folder is per user (os.tmpdir()/devcontainercli-USER); another test
    # process's `up` as the same user must not share it.
    scratch = workspace.parent / f"cli-tmp-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    os.chown(scratch, *door.ids)
    try:
        up = _timed(door, what, lambda: door.run("devcontainer", "up", *common, timeout=timeout,
                                                 TMPDIR=str(scratch), **env))  # fmt: skip
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        yield lambda *command: door.run("devcontainer", "exec", *common, *command,
                                        TMPDIR=str(scratch))  # fmt: skip
    finally:
        kind = "pulled" if config.parent.name == "pulled" else "built"
        kept = f"tfdock-test-devcontainer:{door.name}-{kind}"
        remove_dev_containers(door.engine_cli, label, keep=kept)


def _verify_passes_writing_as_the_owner(exec_in, workspace: Path) -> None:
    """`make verify` passes in the dev container, and a file it writes is the workspace owner's."""
    marker = f"dev-{uuid.uuid4().hex[:8]}"
    result = exec_in("bash", "-c", f"touch /workspace/{marker} && make verify")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert ALL_CHECKS_PASSED.search(result.stdout), result.stdout
    assert (workspace / marker).stat().st_uid == workspace.stat().st_uid


@pytest.mark.slow
def test_dev_container_comes_up_as_the_host_user(door, pulled_config):
    """The devcontainers CLI (--docker-path) opens the dev container; verify passes and files are the user's."""
    workspace, config = pulled_config
    what = "devcontainer up (pulled config)"
    with _dev_container(door, workspace, config, what, timeout=1800) as exec_in:
        _verify_passes_writing_as_the_owner(exec_in, workspace)


def _base_args(door: Door) -> dict[str, str]:
    """The built config's BASE_NAME/BASE_DIGEST: the base `make image` resolved for this door."""
    inspect = door.engine_cli("image", "inspect", "--format", "{{json .Config.Labels}}",
                              f"{IMAGE}:cpu").stdout  # fmt: skip
    labels = json.loads(inspect)
    return {
        "BASE_NAME": labels["org.opencontainers.image.base.name"],
        "BASE_DIGEST": labels["org.opencontainers.image.base.digest"],
    }


# Rootful Podman's built dev container is tests/integration/test_devcontainer.py's (as root,
# no host user to map); building it again here would cost three minutes for nothing new.
@pytest.mark.parametrize("door", ["docker", "rootless-podman"], indirect=True)
@pytest.mark.slow
def test_dev_container_builds_from_the_dockerfile_as_the_host_user(door, dev_workspace):
    """The built config (.devcontainer/devcontainer.json) comes up through the CLI; files are the user's."""
    config = dev_workspace / ".devcontainer" / "devcontainer.json"
    settings = read_jsonc(config)
    settings["build"]["args"] = _base_args(door)
    _write_config(door, config, settings)
    # Without buildx the CLI runs a plain `docker build`: Debian's client needs BuildKit asked
    # for (docs/dev-container.md), as `make doctor` says.
    env = {"DOCKER_BUILDKIT": "1", "BUILDAH_FORMAT": "docker"}
    what = "devcontainer up (built config)"
    with _dev_container(door, dev_workspace, config, what, timeout=3600, **env) as exec_in:
        _verify_passes_writing_as_the_owner(exec_in, dev_workspace)
        # The dev stage's tools, for the user whose uid the CLI gave the image's user.
        tools = exec_in("bash", "-c", "sudo -n id -u && command -v ssh gpg")
        assert tools.returncode == 0, tools.stdout[-3000:] + tools.stderr[-3000:]
        assert tools.stdout.split() == ["0", "/usr/bin/ssh", "/usr/bin/gpg"]


@pytest.mark.slow
def test_image_labels_name_the_base_the_door_built_on(door):
    """The base recorded in the image is the one this engine resolved (Docker: the registry's digest)."""
    inspect = door.engine_cli("image", "inspect", "--format", "{{json .Config.Labels}}",
                              f"{IMAGE}:cpu").stdout  # fmt: skip
    labels = json.loads(inspect)
    assert labels["org.opencontainers.image.base.digest"].startswith("sha256:")
    if door.name == "docker" and "BASE_IMAGE" in door.env:
        # Docker's digest belongs to the repository it pulled the base from.
        repository = door.env["BASE_IMAGE"].rsplit(":", 1)[0]
        assert labels["org.opencontainers.image.base.name"] == repository


# --- what each engine says when something it needs is missing -----------------------------


def test_a_docker_client_that_needs_buildx_is_one_sentence(repo_root):
    """With a docker client of 23+ and no buildx plugin, `make image` and doctor say so in one sentence."""
    user = _user_or_skip()
    door = Door("docker", "docker", user_workspace(repo_root, user, "docker-buildx"), user)
    _answering_or_skip(door)
    if door.run("docker", "buildx", "version").returncode == 0:
        pytest.skip("this host's docker client has its buildx plugin")
    version = door.run("docker", "version", "--format", "{{.Client.Version}}").stdout.strip()
    if int(version.split(".")[0]) < 23:
        pytest.skip(f"this host's docker client ({version}) builds with the engine's BuildKit")
    result = door.make("image", timeout=300)
    assert result.returncode != 0
    (sentence,) = [line for line in result.stderr.splitlines() if line.startswith("build-image:")]
    assert "buildx plugin, which is missing" in sentence
    assert "ENGINE=/usr/bin/docker" in sentence
    doctor = door.make("doctor", timeout=300)
    assert doctor.returncode != 0
    assert "FAIL  build     make image cannot build here" in doctor.stdout


def test_docker_refuses_a_loaded_base_in_one_sentence(repo_root):
    """A base loaded into Docker has no registry digest to pin: `make image` says so and how to fix it."""
    user = _user_or_skip()
    door = Door("docker", DOCKER, user_workspace(repo_root, user, "docker-loaded"), user)
    _answering_or_skip(door)
    loaded = "localhost/tfdock-loaded-base:test"
    archive = door.workspace.parent / "loaded.tar"
    # An image that never came from a registry (docker import of a one-file filesystem).
    (door.workspace.parent / "rootfs").mkdir(exist_ok=True)
    (door.workspace.parent / "rootfs" / "hello").write_text("loaded, not pulled\n")
    subprocess.run(["tar", "-C", str(door.workspace.parent / "rootfs"), "-cf", str(archive), "."],
                   check=True)  # fmt: skip
    give_to(user, archive)
    try:
        door.engine_cli("import", str(archive), loaded)
        result = door.make("image", f"BASE_IMAGE={loaded}", timeout=300)
    finally:
        door.engine_cli("image", "rm", "--force", loaded, check=False)
        archive.unlink(missing_ok=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[0] == (
        f"build-image: the base {loaded} was loaded, not pulled, so {DOCKER} knows no registry "
        "digest to pin it by; push it to a registry and pull it from there, or give it by "
        "digest (name@sha256:...)."
    )


def test_a_user_outside_the_docker_group_is_told_how_to_join_it(repo_root):
    """`make doctor` for a user who may not use Docker's socket names the socket and the group."""
    _user_or_skip()
    result = _doctor_as(_login_door(pwd.getpwnam("nobody"), DOCKER), repo_root)
    assert result.returncode == 1
    assert "FAIL  engine    this user (nobody) may not use Docker's socket" in result.stdout
    assert "sudo usermod -aG docker nobody" in result.stdout


def _login_door(user: pwd.struct_passwd, engine: str) -> Door:
    """USER with ENGINE as the matrix runs its users (a login-like environment), in /."""
    return Door(user.pw_name, engine, Path("/"), user)


def _give_runtime_folder(user: pwd.struct_passwd) -> None:
    """Make USER's /run/user/UID, as a login does: rootless Podman keeps its state there."""
    runtime = Path(f"/run/user/{user.pw_uid}")
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chown(runtime, user.pw_uid, user.pw_gid)


def _doctor_as(door: Door, repo_root: Path) -> subprocess.CompletedProcess:
    """scripts/doctor.sh (what `make doctor` runs) as the door's user."""
    return door.run("bash", str(repo_root / "scripts" / "doctor.sh"), timeout=300)


def _fix_of(report: str, name: str) -> str:
    """The command that doctor's FAIL line NAME gives as its fix (the part in parentheses or after ':')."""
    lines = report.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(f"FAIL  {name} "))
    return lines[index + 1].strip()


def _remove_user(user: str) -> None:
    """Remove USER and their home; Podman's pause process, left running as them, first."""
    subprocess.run(["pkill", "--signal", "KILL", "--uid", user], capture_output=True, check=False)
    time.sleep(0.5)
    subprocess.run(["userdel", "--remove", user], capture_output=True, check=False)


def _drop_subordinate_ids(user: str) -> None:
    """Take USER's lines out of /etc/subuid and /etc/subgid (useradd adds them on most systems)."""
    for path in (Path("/etc/subuid"), Path("/etc/subgid")):
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(line for line in lines if not line.startswith(f"{user}:")))


def test_rootless_podman_without_subordinate_ids_is_told_the_command_that_adds_them(repo_root):
    """doctor names the missing /etc/subuid entries; running its command as root makes the check pass."""
    _user_or_skip()
    user = "tfdock-nosubids"
    _remove_user(user)
    subprocess.run(["useradd", "--create-home", user], check=True)
    try:
        _drop_subordinate_ids(user)
        door = _login_door(pwd.getpwnam(user), "podman")
        _give_runtime_folder(door.user)
        before = _doctor_as(door, repo_root)
        assert before.returncode == 1, before.stdout + before.stderr
        assert f"FAIL  ids       {user} has no subordinate ids" in before.stdout
        fix = _fix_of(before.stdout, "ids")
        command = re.search(r"sudo (usermod [^,]+), then (podman system migrate)", fix)
        subprocess.run(command.group(1).split(), check=True)
        migrated = door.run(*command.group(2).split(), timeout=300)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        after = _doctor_as(door, repo_root)
        assert f"ok    ids       subordinate ids for {user}" in after.stdout, after.stdout
        assert after.returncode == 0, after.stdout + after.stderr
    finally:
        _remove_user(user)
        _drop_subordinate_ids(user)


def test_rootless_podman_without_dev_net_tun_is_told_the_command_that_opens_it(repo_root):
    """doctor names a /dev/net/tun the user cannot open; its chmod makes the check pass."""
    door = _login_door(_user_or_skip(), "podman")
    _give_runtime_folder(door.user)
    tun = Path("/dev/net/tun")
    mode = tun.stat().st_mode & 0o7777
    try:
        tun.chmod(0o600)
        before = _doctor_as(door, repo_root)
        assert before.returncode == 1, before.stdout + before.stderr
        assert "FAIL  network   /dev/net/tun is not open to" in before.stdout
        command = re.search(r"sudo (chmod 0666 /dev/net/tun)", _fix_of(before.stdout, "network"))
        subprocess.run(command.group(1).split(), check=True)
        after = _doctor_as(door, repo_root)
        assert "ok    network   /dev/net/tun is open to" in after.stdout, after.stdout
    finally:
        tun.chmod(mode)
