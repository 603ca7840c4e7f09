"""The pulled-image dev container is the CPU one with an image instead of a build."""

from __future__ import annotations

import json
from pathlib import Path


def _jsonc(path: Path) -> dict:
    """Read a devcontainer.json (JSON with whole-line // comments)."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("//")]
    return json.loads("\n".join(lines))


def test_pulled_config_differs_from_the_cpu_one_only_in_image(repo_root):
    """Same user, mounts, ports, start-up check and editor settings; "image" replaces "build"."""
    cpu = _jsonc(repo_root / ".devcontainer" / "devcontainer.json")
    pulled = _jsonc(repo_root / ".devcontainer" / "pulled" / "devcontainer.json")
    assert "build" in cpu and "image" not in cpu
    assert "image" in pulled and "build" not in pulled
    assert pulled["image"].endswith("/tfdock:cpu")
    # Its stale-lock sentence names this file's "image" line, not a rebuild (container.py).
    pulled_env = pulled.pop("containerEnv")
    assert pulled_env.pop("TFDOCK_PULLED_CONFIG") == ".devcontainer/pulled/devcontainer.json"
    assert pulled_env == cpu.pop("containerEnv")
    for config in (cpu, pulled):
        for key in ("name", "build", "image"):
            config.pop(key, None)
    assert pulled == cpu
