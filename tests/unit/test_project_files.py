"""The project's own papers agree: one version, its changelog entry, and the licence it names."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version

from tfdock import __version__


def test_the_version_is_written_once_and_heads_the_changelog(repo_root):
    """pyproject.toml reads __init__.py's version; the installed kit and CHANGELOG.md's top entry say the same."""
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert version("tfdock") == __version__
    changelog = (repo_root / "CHANGELOG.md").read_text()
    newest = re.search(r"^## (\S+)", changelog, re.M)
    assert newest and newest.group(1) == __version__


def test_the_licence_pyproject_and_the_images_name_is_in_the_repository(repo_root):
    """pyproject.toml and both images' labels say Apache-2.0, and LICENSE is that licence's text."""
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    text = (repo_root / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    for variant in ("cpu", "gpu"):
        dockerfile = (repo_root / "docker" / f"{variant}.Dockerfile").read_text()
        assert 'org.opencontainers.image.licenses="Apache-2.0"' in dockerfile
