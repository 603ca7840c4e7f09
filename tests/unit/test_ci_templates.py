"""The team's CI and update-bot templates: valid by their own schemas, and only real targets."""

from __future__ import annotations

import json
import re
import sys

import pytest
import yaml

from tests.commands import make, run

# Each template, and the schema its service publishes (vendored by check-jsonschema).
TEMPLATES = {
    ".github/workflows/ci.yml": "vendor.github-workflows",
    ".gitlab-ci.yml": "vendor.gitlab-ci",
    ".github/renovate.json": "vendor.renovate",
}


@pytest.mark.parametrize(("template", "schema"), TEMPLATES.items())
def test_each_template_is_valid_by_its_services_schema(repo_root, template, schema):
    """check-jsonschema (from the lock), offline, accepts the template against its schema."""
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, template]
    result = run(command, cwd=repo_root)
    assert result.returncode == 0, result.stdout + result.stderr


def _commands(template: str, text: str) -> list[str]:
    """The shell commands a CI template runs: GitHub's steps' `run`, GitLab's jobs' `script`."""
    config = yaml.safe_load(text)
    if template.startswith(".github/"):
        steps = [step for job in config["jobs"].values() for step in job["steps"]]
        return [step["run"] for step in steps if "run" in step]
    jobs = [job for job in config.values() if isinstance(job, dict) and "script" in job]
    return [command for job in jobs for command in job["script"]]


def _make_targets(commands: list[str]) -> set[str]:
    """Every target the `make ...` commands name (their VAR=value words aside)."""
    targets = set()
    for command in commands:
        # `make` where a command starts: the line's start, or after ;, && or ||.
        for line in re.findall(r"(?:^|[;&|])\s*make ([^\n;&|]+)", command, re.M):
            targets |= {word for word in line.split() if "=" not in word}
    return targets


def test_the_ci_templates_call_only_targets_that_exist(repo_root):
    """Every `make TARGET` the CI templates run is one `make help` lists."""
    listed = make(repo_root, "--no-print-directory", "help").stdout
    targets = set(re.findall(r"^  ([a-z][a-z0-9-]*) ", listed.split("Variables:")[0], re.M))
    for template in (".github/workflows/ci.yml", ".gitlab-ci.yml"):
        commands = _commands(template, (repo_root / template).read_text())
        named = _make_targets(commands)
        assert {"check", "lock-check", "image", "docker-verify", "push"} <= named, template
        assert named <= targets, f"{template} names {sorted(named - targets)}"


def test_the_update_bot_finds_the_base_digest_in_both_dockerfiles(repo_root):
    """Renovate's regex manager matches each Dockerfile's pinned base name, tag and digest."""
    config = json.loads((repo_root / ".github/renovate.json").read_text())
    (manager,) = config["customManagers"]
    (pattern,) = manager["matchStrings"]
    python_pattern = pattern.replace("(?<", "(?P<")  # JavaScript's named groups, in Python's
    for variant in ("cpu", "gpu"):
        dockerfile = (repo_root / "docker" / f"{variant}.Dockerfile").read_text()
        found = re.search(python_pattern, dockerfile)
        assert found, variant
        assert found["depName"] == "docker.io/library/debian"
        assert found["currentValue"] == "bookworm-slim"
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", found["currentDigest"])
