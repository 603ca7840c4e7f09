"""The CPU and GPU images, built by the kit's own targets with a real engine, are the lock."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import commands
from tests.integration.containers import (
    ALL_CHECKS_PASSED,
    COLD_BUILD,
    IMAGE,
    base_build_args,
    copy_repository,
    image_labels,
    install_step_cached,
    lock_layers_rebuilt,
    make,
    pinned_base,
    record_artifact,
    run,
)
from tfdock import gpu_probe, lock_layers
from tfdock.lock import installed_distributions, read_lock

# Slow: each test builds or starts an image (minutes).
pytestmark = [pytest.mark.container, pytest.mark.slow]

# What the GPU image's CUDA runtime and cuDNN say they are, next to TensorFlow's build.
CUDA_LIBRARIES = (
    "import json, tensorflow as tf; from tfdock import gpu_probe; "
    "tf.config.list_physical_devices('GPU'); "
    "print(json.dumps({'libraries': gpu_probe.library_versions(), "
    "'build': dict(tf.sysconfig.get_build_info())}))"
)
CUDA_WHEEL_SIZES = "cd /opt/venv/lib/python3.11/site-packages/nvidia && du -sb -- */"
LIST_DISTRIBUTIONS = (
    "import json, importlib.metadata as m; from packaging.utils import canonicalize_name; "
    "print(json.dumps({canonicalize_name(d.metadata['Name']): d.version "
    "for d in m.distributions()}))"
)


def _record(name: str, value) -> None:
    record_artifact("images.json", name, value)


def _certificate_bodies(pem_text: str) -> list[str]:
    """Return each PEM certificate's base64 body on one line."""
    blocks = re.findall(
        r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", pem_text, re.S
    )
    return ["".join(block.split()) for block in blocks]


def _distributions(engine: str, image: str) -> dict[str, str]:
    out = run(
        engine, "run", "--rm", "--no-healthcheck", image, "python", "-c", LIST_DISTRIBUTIONS
    ).stdout
    return json.loads(out)


def test_cpu_image_verify_passes_cpu_only(engine, repo_root, cpu_image):
    """`make docker-verify` passes every check and reports CPU only, with no CUDA error lines."""
    result = make(repo_root, "docker-verify", engine=engine)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert ALL_CHECKS_PASSED.search(result.stdout), result.stdout
    assert "none visible: CPU only" in result.stdout
    assert not re.search(r"cuInit|CUDA error|cuda_platform", output)


def test_cpu_image_trains_into_host_folder(engine, repo_root, cpu_image, mnist_dir):
    """`make docker-train` on read-only mounted MNIST writes a run folder owned by the host user."""
    runs = f"test-artifacts/docker-runs-{uuid.uuid4().hex[:8]}"
    result = make(
        repo_root,
        "docker-train",
        "EPOCHS=1",
        f"RUNS={runs}",
        engine=engine,
        TFDOCK_DATA=str(mnist_dir),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run_dir,) = (repo_root / runs).iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.93
    assert metrics["config"]["data_source"] == "/data/mnist"
    for path in [run_dir, *run_dir.rglob("*")]:
        stat = path.stat()
        assert (stat.st_uid, stat.st_gid) == (os.getuid(), os.getgid()), path


def test_cpu_image_packages_equal_the_venv(engine, repo_root, cpu_image):
    """The CPU image's installed distributions are the venv's, name and version."""
    image = _distributions(engine, cpu_image)
    venv = installed_distributions()
    assert image == venv
    lock = read_lock(repo_root / "requirements.txt")
    assert set(image) - {"tfdock"} == set(lock.pins)
    _record("cpu_image_distributions", len(image))


def test_image_records_its_base_and_its_lock(engine, repo_root, cpu_image):
    """The labels name the base (name and digest) it was built on and the sha256 of its lock."""
    labels = image_labels(engine, cpu_image)
    base = base_build_args(engine) or pinned_base(repo_root)
    assert labels["org.opencontainers.image.base.name"] == base["BASE_NAME"]
    assert labels["org.opencontainers.image.base.digest"] == base["BASE_DIGEST"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", base["BASE_DIGEST"])
    lock_sha256 = hashlib.sha256((repo_root / "requirements.txt").read_bytes()).hexdigest()
    assert labels["com.github.tfdock.lock.sha256"] == lock_sha256
    inside = run(engine, "run", "--rm", "--no-healthcheck", cpu_image,
                 "sha256sum", "/opt/tfdock/requirements.txt").stdout.split()[0]  # fmt: skip
    assert inside == lock_sha256


def test_container_runs_as_non_root(engine, cpu_image):
    """The image's default user is not root."""
    uid = run(engine, "run", "--rm", "--no-healthcheck", cpu_image, "id", "-u").stdout.strip()
    assert uid != "0" and int(uid) >= 1000


def test_runtime_image_has_none_of_the_dev_stages_tools(engine, cpu_image):
    """`make image` builds the runtime stage: no ssh, gnupg or sudo (the dev containers' stage adds them)."""
    found = run(engine, "run", "--rm", "--no-healthcheck", cpu_image, "bash", "-c",
                "command -v ssh gpg sudo; test -e /etc/sudoers.d/tfdock && echo sudoers; true")  # fmt: skip
    assert found.stdout.split() == []


# What the image prunes from TensorFlow's wheel, read against the wheel's own RECORD.
PRUNED_TENSORFLOW = """
import json, shutil
from importlib import metadata
files = metadata.distribution("tensorflow").files
library = next(f for f in files if f.name == "libtensorflow_cc.so.2")
headers = [f for f in files if str(f).startswith("tensorflow/include/")]
print(json.dumps({
    "library_recorded": library.size, "library_now": library.locate().stat().st_size,
    "headers_recorded": len(headers), "headers_left": sum(f.locate().exists() for f in headers),
    "strip": shutil.which("strip"),
}))
"""


def test_image_drops_tensorflows_headers_and_symbol_table_only(engine, cpu_image):
    """The headers are gone and libtensorflow_cc.so.2 is stripped (smaller than RECORD says); binutils is not left behind."""
    out = run(engine, "run", "--rm", "--no-healthcheck", cpu_image,
              "python", "-c", PRUNED_TENSORFLOW).stdout  # fmt: skip
    pruned = json.loads(out)
    assert pruned["headers_recorded"] > 1000 and pruned["headers_left"] == 0
    assert pruned["library_now"] < pruned["library_recorded"] * 0.9
    assert pruned["strip"] is None
    _record(
        "tensorflow_library_mb",
        [round(pruned[k] / 2**20) for k in ("library_recorded", "library_now")],
    )


def test_container_stop_ends_the_lab_by_its_signal(engine, cpu_image):
    """With an init as PID 1, `stop`'s SIGTERM ends the lab; it is not killed after the timeout."""
    name = f"tfdock-stop-{uuid.uuid4().hex[:8]}"
    run(engine, "run", "--detach", "--name", name, cpu_image)
    try:
        deadline = time.monotonic() + 120
        while (
            "JupyterLab"
            not in run(engine, "logs", name, check=False).stdout
            + run(engine, "logs", name, check=False).stderr
        ):
            assert time.monotonic() < deadline, "the lab did not start"
            time.sleep(1)
        started = time.perf_counter()
        run(engine, "stop", "--time", "60", name)
        _record("stop_seconds", round(time.perf_counter() - started, 2))
        # Killed after the timeout would be 137 (SIGKILL); ended by SIGTERM, the init
        # reports the lab's own exit.
        code = run(engine, "inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        assert code != "137", "the lab ignored SIGTERM and was killed after the stop timeout"
    finally:
        run(engine, "rm", "--force", name, check=False)


def _saved_files(engine: str, image: str) -> Iterator[tuple[str, bytes]]:
    """Stream `ENGINE save IMAGE`, with no copy on disk: yield each file of the archive that
    is no layer, and each file in each layer, with its bytes (none past 5 MB)."""
    with (
        tempfile.TemporaryFile() as errors,
        subprocess.Popen([engine, "save", image], stdout=subprocess.PIPE, stderr=errors) as save,
    ):
        with tarfile.open(fileobj=save.stdout, mode="r|") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                stream = archive.extractfile(member)
                if not (member.name.endswith(".tar") or stream.peek(512)[257:262] == b"ustar"):
                    yield member.name, stream.read()
                    continue
                with tarfile.open(fileobj=stream, mode="r|") as layer:
                    for entry in layer:
                        if entry.isfile():
                            small = entry.size < 5_000_000
                            yield entry.name, layer.extractfile(entry).read() if small else b""
        save.stdout.read()  # the archive's padding, past its end
        save.wait(timeout=60)
        errors.seek(0)
        assert save.returncode == 0, errors.read().decode(errors="replace")[-3000:]


def test_ca_bundle_is_in_no_layer(engine, cpu_image):
    """The proxy CA given as a build secret is in no layer and not in the history."""
    ca_bundle = os.environ.get("CA_BUNDLE")
    if not ca_bundle:
        pytest.skip("CA_BUNDLE is not set: the build used no proxy CA secret to look for")
    # Every certificate the image trusts on its own: Debian's bundle and certifi's.
    image_bundles = run(
        engine,
        "run",
        "--rm",
        "--no-healthcheck",
        cpu_image,
        "sh",
        "-c",
        "cat /etc/ssl/certs/ca-certificates.crt "
        "/opt/venv/lib/python3.11/site-packages/certifi/cacert.pem",
    ).stdout
    image_keys = {body[:64] for body in _certificate_bodies(image_bundles)}
    # The certificates only the host trusts: the proxy's own CA among them.
    private = [
        body
        for body in _certificate_bodies(Path(ca_bundle).read_text())
        if body[:64] not in image_keys
    ]
    assert private, "the host bundle adds no certificate to the image's; nothing to look for"
    needles = [body[:64].encode() for body in private]
    for name, content in _saved_files(engine, cpu_image):
        # The engine may leave the empty mount point; never a file in it.
        assert "run/secrets/" not in name, name
        assert not any(n in content for n in needles), name
    history = run(engine, "history", "--no-trunc", cpu_image).stdout
    assert "BEGIN CERTIFICATE" not in history


def test_src_change_reuses_the_dependency_layer(engine, repo_root, cpu_image, tmp_path):
    """After a change to src/ only, the rebuild reuses the installed lock and only reinstalls the kit."""
    context = copy_repository(repo_root, tmp_path / "context")
    init = context / "src" / "tfdock" / "__init__.py"
    init.write_text(init.read_text() + f"\n# rebuild probe {uuid.uuid4().hex}\n")
    started = time.perf_counter()
    result = make(context, "image", engine=engine, IMAGE=f"{IMAGE}-srcprobe")
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert install_step_cached(result.stdout + result.stderr), "the lock layer was rebuilt"
    installed = run(
        engine,
        "run",
        "--rm",
        "--no-healthcheck",
        f"{IMAGE}-srcprobe:cpu",
        "cat",
        "/opt/venv/lib/python3.11/site-packages/tfdock/__init__.py",
    ).stdout
    assert "rebuild probe" in installed, "the changed source is in the rebuilt image"
    _record("src_change_rebuild_seconds", round(elapsed, 1))
    if "cpu" in COLD_BUILD:
        _record("src_change_saved_seconds", round(COLD_BUILD["cpu"] - elapsed, 1))
    run(engine, "rmi", f"{IMAGE}-srcprobe:cpu", check=False)


def test_a_one_package_lock_change_moves_only_its_layer(engine, repo_root, cpu_image, tmp_path):
    """With one package less in the lock, only the rest layer is reinstalled and a pull moves megabytes."""
    context = copy_repository(repo_root, tmp_path / "context")
    lock = context / "requirements.txt"
    pins = lock_layers.read_pins(lock.read_text())
    dropped = "pytest-timeout"
    lock.write_text("".join("\n".join(p.lines) + "\n" for p in pins if p.name != dropped))
    probe = f"{IMAGE}-lockprobe"
    # The probe image stays, as the session's other images do: a warm run's build then takes
    # every layer from its cache, and the layers the two images share say the rest.
    result = make(context, "image", engine=engine, IMAGE=probe)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert set(lock_layers_rebuilt(result.stdout + result.stderr)) <= {"rest"}
    assert dropped not in _distributions(engine, f"{probe}:cpu")
    cost = commands.run(
        [commands.TFDOCK[0], str(repo_root / "scripts" / "pull_cost.py"), "--engine", engine,
         cpu_image, f"{probe}:cpu"],
        timeout=1200,
    )  # fmt: skip
    assert cost.returncode == 0, cost.stderr
    moved = re.search(
        r"(\d+) of (\d+) layers to pull, ([\d.]+) MB \(([\d.]+) MB gzip\)", cost.stdout
    )
    assert moved, cost.stdout
    _record("lock_change_layers_pulled", f"{moved[1]} of {moved[2]}")
    _record("lock_change_pull_mb", float(moved[3]))
    _record("lock_change_pull_gzip_mb", float(moved[4]))
    # Only the rest layer and those above it differ: a rebuilt TensorFlow or notebook layer
    # (pip's files are never byte-identical twice) would be a layer to pull, gigabytes.
    assert float(moved[4]) < 100, f"a one-package change moves {moved[4]} MB gzip"


def test_gpu_image_verifies_on_cpu_and_adds_only_cuda(engine, repo_root, cpu_image, gpu_image):
    """The GPU image passes verify CPU-only, refuses --require-gpu clearly, and = CPU set + CUDA."""
    result = run(engine, "run", "--rm", gpu_image, "tfdock", "verify", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "none visible: CPU only" in result.stdout
    assert not re.search(r"cuInit|CUDA error|cuda_platform", output)
    strict = run(engine, "run", "--rm", gpu_image, "tfdock", "verify", "--require-gpu", check=False)
    assert strict.returncode == 1
    assert "no GPU is visible to TensorFlow" in strict.stdout
    cpu, gpu = _distributions(engine, cpu_image), _distributions(engine, gpu_image)
    extra = set(gpu) - set(cpu)
    assert {n: gpu[n] for n in cpu} == cpu, "shared packages have the same versions"
    gpu_lock = read_lock(repo_root / "requirements-gpu.txt")
    assert extra == set(gpu_lock.pins) - set(read_lock(repo_root / "requirements.txt").pins)
    assert all(name.startswith("nvidia-") for name in extra)
    _record("gpu_extra_distributions", sorted(f"{n}=={gpu[n]}" for n in extra))


def test_gpu_image_holds_the_cuda_tensorflow_was_built_with(engine, repo_root, gpu_image):
    """Without a GPU too, the image's libcudart and libcudnn answer with the build's CUDA and cuDNN."""
    out = run(
        engine, "run", "--rm", "--no-healthcheck", gpu_image, "python", "-c", CUDA_LIBRARIES
    ).stdout
    found = json.loads(out.strip().splitlines()[-1])
    libraries, build = found["libraries"], found["build"]
    pin = read_lock(repo_root / "requirements-gpu.txt").pins["nvidia-cudnn-cu12"]
    assert gpu_probe.libraries_problem(libraries, build, pin) is None
    runtime = gpu_probe.cuda_runtime_release(libraries["cuda_runtime"]["version"])
    assert runtime == ".".join(build["cuda_version"].split(".")[:2])
    assert libraries["cuda_runtime"]["path"].startswith("/opt/venv/lib/python3.11/site-packages/")
    _record("gpu_cuda_libraries", gpu_probe.describe_libraries(libraries, build))
    sizes = run(
        engine, "run", "--rm", "--no-healthcheck", gpu_image, "bash", "-c", CUDA_WHEEL_SIZES
    ).stdout
    _record(
        "gpu_cuda_wheel_bytes",
        {
            name.rstrip("/"): int(size)
            for size, name in (line.split() for line in sizes.splitlines())
        },
    )
