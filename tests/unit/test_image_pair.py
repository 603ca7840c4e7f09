"""The CPU and GPU images are one recipe: their Dockerfiles and locks differ only where they must."""

from __future__ import annotations

import difflib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tfdock.lock import read_lock

# The only lines allowed to differ: header comments, the lock copied in (once to be split
# into layers, once kept whole, and the workspace file it comes from), the NVIDIA runtime variables (and the line continuation they need),
# and the labels naming the variant.
ALLOWED_DIFFERENCES = (
    "# tfdock CPU image:",
    "# tfdock GPU image:",
    "# Build: make image",
    "COPY requirements.txt /",
    "COPY requirements-gpu.txt /",
    "TFDOCK_IN_IMAGE=1",
    "TFDOCK_WORKSPACE_LOCK=/workspace/requirements",
    "NVIDIA_VISIBLE_DEVICES=all",
    "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
    'LABEL org.opencontainers.image.title="tfdock-',
    'org.opencontainers.image.description="tfdock: TensorFlow from one hashed lock (',
)


def test_dockerfiles_differ_only_where_they_must(repo_root):
    """A diff of the two Dockerfiles shows only the lock, NVIDIA variables and names."""
    cpu = (repo_root / "docker" / "cpu.Dockerfile").read_text().splitlines()
    gpu = (repo_root / "docker" / "gpu.Dockerfile").read_text().splitlines()
    changed = [
        line[1:].strip()
        for line in difflib.unified_diff(cpu, gpu, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed, "the GPU Dockerfile must at least install the GPU lock"
    unexpected = [line for line in changed if not line.startswith(ALLOWED_DIFFERENCES)]
    assert unexpected == []
    assert "COPY requirements-gpu.txt /opt/tfdock/requirements.txt" in changed


def test_gpu_lock_is_cpu_lock_plus_cuda_wheels(repo_root):
    """Every pin shared by the two locks is equal, and the GPU lock adds only TensorFlow's CUDA wheels."""
    cpu = read_lock(repo_root / "requirements.txt")
    gpu = read_lock(repo_root / "requirements-gpu.txt")
    assert set(cpu.pins) <= set(gpu.pins), "the GPU lock has everything the CPU lock has"
    different = {n: (v, gpu.pins[n]) for n, v in cpu.pins.items() if gpu.pins[n] != v}
    assert different == {}
    for name, version in cpu.pins.items():
        assert sorted(gpu.hashes[name]) == sorted(cpu.hashes[name]), f"{name}=={version} hashes"
    added = set(gpu.pins) - set(cpu.pins)
    cuda_extra = {
        canonicalize_name(Requirement(r).name)
        for r in metadata.requires("tensorflow") or []
        if "and-cuda" in r
    }
    assert cuda_extra, "tensorflow declares an and-cuda extra"
    assert added == cuda_extra
    assert all(name.startswith("nvidia-") for name in added)
