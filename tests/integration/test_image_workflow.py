"""The CPU image as a place to work: your code from the workspace, your packages, your lock."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest

from tests import commands
from tests.integration.containers import (
    ARTIFACTS,
    LOCKED_TENSORFLOW,
    copy_repository,
    make,
    probe_wheel,
    record_artifact,
    run,
    write_own_script,
)
from tests.integration.test_resume import interrupt_in_epoch_2, resume_line

# Slow: each test starts the CPU image, built once (minutes).
pytestmark = [pytest.mark.container, pytest.mark.slow]

STALE = "this container is older than the lock: /workspace/requirements.txt changed"
REBUILD = "so use Rebuild Container (VS Code: Dev Containers: Rebuild Container) or `make image`."


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, repo_root) -> Path:
    """A throwaway copy of the repository, for `make docker-*` runs that change it."""
    return copy_repository(repo_root, tmp_path_factory.mktemp("image-workflow") / "tfdock")


def test_docker_run_runs_your_script_as_you(engine, repo_root, cpu_image):
    """`make docker-run CMD='python script.py OUT'` runs a TensorFlow script in the image; the file lands in the workspace, yours."""
    folder = ARTIFACTS / f"own-script-{uuid.uuid4().hex[:8]}"
    script = write_own_script(folder)
    out = folder / "image.txt"
    command = f"CMD=python {os.path.relpath(script, repo_root)} {os.path.relpath(out, repo_root)}"
    result = make(repo_root, "docker-run", command, engine=engine)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    version, total, prefix = out.read_text().split()
    assert version == LOCKED_TENSORFLOW and total == "6.0" and prefix == "/opt/venv"
    assert (out.stat().st_uid, out.stat().st_gid) == (os.getuid(), os.getgid())


def test_docker_shell_is_a_shell_in_the_image_on_the_workspace(engine, repo_root, cpu_image):
    """`make docker-shell` runs the commands it is given in the image, in /workspace, as you."""
    typed = 'pwd; id -u; python -c "import sys; print(sys.prefix)"\n'
    result = commands.make(repo_root, "docker-shell", input=typed, env={"ENGINE": engine})
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert ["/workspace", str(os.getuid()), "/opt/venv"] == [
        line for line in lines if not line.startswith("make")
    ]


def test_docker_targets_mount_tfdock_data_under_data_by_its_name(
    engine, repo_root, cpu_image, mnist_dir
):
    """TFDOCK_DATA=HOST/NAME is /data/NAME in the container, read-only, and its TFDOCK_DATA (docs/images.md)."""
    inside = f"/data/{mnist_dir.name}"
    command = f"CMD=printenv TFDOCK_DATA && ls {inside} && touch {inside}/new"
    result = make(repo_root, "docker-run", command, engine=engine, TFDOCK_DATA=str(mnist_dir))
    assert result.returncode != 0, "the data folder is writable in the container"
    assert "Read-only file system" in result.stderr, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert inside in lines and "train-images-idx3-ubyte.gz" in lines, result.stdout[-2000:]


def test_docker_targets_keep_the_kits_and_pips_caches_on_the_host(
    engine, repo_root, cpu_image, tmp_path
):
    """The MNIST and pip caches in the container are the host's (XDG_CACHE_HOME): they outlive --rm; ~/.cache stays writable."""
    cache = tmp_path / "cache"
    where = "python -c 'from tfdock.data import default_cache_dir; print(default_cache_dir())'"
    write = f"CMD={where} && pip cache dir && touch /cache/tfdock/kept /cache/pip/kept && mkdir -p ~/.cache/other"
    first = make(repo_root, "docker-run", write, engine=engine, XDG_CACHE_HOME=str(cache))
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    lines = first.stdout.splitlines()
    assert "/cache/tfdock" in lines and "/cache/pip" in lines
    for name in ("tfdock", "pip"):
        kept = cache / name / "kept"
        assert kept.is_file() and kept.stat().st_uid == os.getuid(), name
    second = make(repo_root, "docker-run", "CMD=ls /cache/tfdock /cache/pip", engine=engine,
                  XDG_CACHE_HOME=str(cache))  # fmt: skip
    assert second.returncode == 0 and second.stdout.count("kept") == 2, second.stdout[-2000:]


def test_workspace_src_wins_and_the_image_alone_runs_its_own(engine, workspace, cpu_image):
    """With the workspace mounted, an edit to src/ counts at the next `make docker-run`; the image alone imports its own copy."""
    init = workspace / "src" / "tfdock" / "__init__.py"
    marker = uuid.uuid4().hex
    init.write_text(init.read_text() + f'\nEDIT_PROBE = "{marker}"\n')
    code = "import tfdock; print(tfdock.__file__, tfdock.EDIT_PROBE)"
    result = make(workspace, "docker-run", f"CMD=python -c '{code}'", engine=engine)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"/workspace/src/tfdock/__init__.py {marker}" in result.stdout.splitlines()
    alone = run(engine, "run", "--rm", "--no-healthcheck", cpu_image,
                "python", "-c", "import tfdock; print(tfdock.__file__)")  # fmt: skip
    assert alone.stdout.strip() == "/opt/venv/lib/python3.11/site-packages/tfdock/__init__.py"


def test_stale_image_is_refused_by_docker_targets(engine, workspace, cpu_image):
    """After the workspace's lock changes, `make docker-verify` and `make docker-run` refuse with one sentence; with the lock back, they run."""
    lock = workspace / "requirements.txt"
    original = lock.read_bytes()
    lock.write_bytes(original + b"# a teammate's change\n")
    try:
        for target in ("docker-verify", "docker-run"):
            result = make(workspace, target, "CMD=echo ran", engine=engine)
            assert result.returncode != 0, target
            assert "ran" not in result.stdout.splitlines()
            (line,) = [text for text in result.stderr.splitlines() if "tfdock" in text]
            assert line.startswith("tfdock: " + STALE) and line.endswith(REBUILD), line
    finally:
        lock.write_bytes(original)
    result = make(workspace, "docker-run", "CMD=echo ran", engine=engine)
    assert result.returncode == 0 and "ran" in result.stdout.splitlines(), result.stderr[-3000:]


def test_any_uid_in_users_can_pip_install_and_verify_names_it(engine, cpu_image, tmp_path):
    """Run as an arbitrary uid with the group `users` (as `make docker-*` runs you), pip installs into /opt/venv and `tfdock verify` names the package; outside the group it cannot."""
    wheel = probe_wheel(tmp_path / "wheels")
    wheel.parent.chmod(0o755)  # readable by the container's uid 4242
    install = f"pip install --quiet --no-deps /probe/{wheel.name}"
    base = ["run", "--rm", "--no-healthcheck", "--user", "4242:4242",
            "--volume", f"{wheel.parent}:/probe:ro"]  # fmt: skip
    outside = run(engine, *base, cpu_image, "sh", "-c", install, check=False)
    assert outside.returncode != 0
    assert re.search(r"Permission denied: '/opt/venv/", outside.stdout + outside.stderr)
    inside = run(engine, *base, "--group-add", "users", cpu_image,
                 "sh", "-c", f"{install} && tfdock verify", check=False, timeout=600)  # fmt: skip
    assert inside.returncode == 1, inside.stdout[-3000:] + inside.stderr[-3000:]
    packages = next(line for line in inside.stdout.splitlines() if " packages " in line)
    assert packages.startswith("FAIL")
    assert "extra: tfdock-drift-probe==1.0 (not in the lock)" in packages
    # The fix for this door: a rebuild, not the venv's `make setup`.
    assert packages.endswith("-- rebuild the container from the lock (VS Code: Dev Containers: "
                             "Rebuild Container; make image / make image-gpu), or pip uninstall "
                             "what you added")  # fmt: skip
    record_artifact("images.json", "pip_install_as_any_uid", "ok")


def test_make_setup_in_the_image_refuses_in_one_sentence(engine, repo_root, cpu_image):
    """`make setup` in the image (dev container, docker-run) makes no second venv: one sentence instead."""
    result = make(repo_root, "docker-run", "CMD=make setup", engine=engine)
    assert result.returncode != 0
    assert (
        "make setup: inside the kit's image the environment is /opt/venv, installed from the "
        "lock when the image was built; after a lock change rebuild the container (VS Code: "
        "Dev Containers: Rebuild Container; make image / make image-gpu)."
    ) in result.stderr.splitlines()
    assert "Traceback" not in result.stderr


def test_ctrl_c_in_make_docker_train_names_the_doors_own_resume_command(
    engine, repo_root, cpu_image, mnist_dir
):
    """Ctrl-C in `make docker-train` names `make docker-train RESUME=... TFDOCK_DATA=...` (no host tfdock needed); run as printed, it finishes."""
    runs = f"test-artifacts/docker-resume-{uuid.uuid4().hex[:8]}"
    environment = {"ENGINE": engine, "PYTHONUNBUFFERED": "1"}
    code, stderr = interrupt_in_epoch_2(
        ["make", "-C", str(repo_root), "docker-train", "EPOCHS=2", f"RUNS={runs}",
         f"TFDOCK_DATA={mnist_dir}", "TRAIN_FLAGS=--limit 30000 --steps-per-execution 1"],
        env=environment,
    )  # fmt: skip
    (run_dir,) = (repo_root / runs).iterdir()
    assert code != 0
    line = resume_line(stderr)
    assert line == (
        f"tfdock: interrupted; resume with `make docker-train RESUME={runs}/{run_dir.name} "
        f"TFDOCK_DATA={mnist_dir}`"
    )
    resumed = commands.run(["bash", "-c", line.split("`")[1]], cwd=repo_root, env=environment,
                           timeout=900)  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming after epoch 1 of 2" in resumed.stdout
    assert (run_dir / "metrics.json").is_file()
