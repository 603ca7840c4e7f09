"""`make help`, the Makefile and the README's reference say the same thing."""

from __future__ import annotations

import fnmatch
import re

import pytest

from tests.commands import make

# A rule with a line of help: "target: prerequisites ## help".
RULE = re.compile(r"^([a-z][a-z0-9-]*):([^#\n]*)## ", re.M)


@pytest.fixture(scope="module")
def help_text(repo_root) -> str:
    result = make(repo_root, "--no-print-directory", "help")
    assert result.returncode == 0, result.stderr
    return result.stdout


def _help_section(help_text: str, title: str) -> list[str]:
    section = help_text.split(f"{title}:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in section.splitlines()]


def _readme_targets(readme: str) -> list[str]:
    """The targets the README's table names, in order, each once."""
    names = []
    for row in re.findall(r"^\| `make [^\n]*", readme, re.M):
        names += re.findall(r"`make ([a-z][a-z0-9-]*)", row.split("|")[1])
    return list(dict.fromkeys(names))


def _readme_variables(readme: str) -> list[str]:
    paragraph = readme.split("Variables, in `make help`'s order:", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"`([A-Z][A-Z0-9_]*)`", paragraph)


def test_readme_lists_the_targets_make_help_lists_in_its_order(repo_root, help_text):
    """The README's target table is `make help`'s list: the same targets, the same order."""
    readme = (repo_root / "README.md").read_text()
    assert _readme_targets(readme) == _help_section(help_text, "Targets")


def test_readme_and_make_help_list_every_variable_the_makefile_reads(repo_root, help_text):
    """Each variable the Makefile lets a user set is in `make help` and the README, in one order."""
    makefile = (repo_root / "Makefile").read_text()
    settable = re.findall(r"^([A-Z][A-Z0-9_]*) \?=", makefile, re.M)
    assert {"GPU", "BASE_IMAGE_ARM64"} <= set(settable)
    assert _help_section(help_text, "Variables") == settable
    assert _readme_variables((repo_root / "README.md").read_text()) == settable


def _needs_venv(target: str, rules: dict[str, str]) -> bool:
    """Whether TARGET's prerequisites, followed through other rules, include the venv."""
    prerequisites = rules.get(target, "")
    if "$(ENVIRONMENT)" in prerequisites:
        return True
    return any(_needs_venv(name, rules) for name in prerequisites.split() if name in rules)


def test_readme_names_the_targets_that_make_no_venv(repo_root):
    """Every target that runs the venv's tools makes it first; the README names the others."""
    makefile = (repo_root / "Makefile").read_text()
    rules = {name: prerequisites for name, prerequisites in RULE.findall(makefile)}
    readme = (repo_root / "README.md").read_text()
    sentence = readme.split("These need no venv and do not make one:", 1)[1].split(".", 1)[0]
    patterns = re.findall(r"`([a-z*-]+)`", sentence)
    for target in rules:
        recipe = makefile.split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
        uses_venv = "$(BIN)" in recipe and target != "setup"
        named = any(fnmatch.fnmatchcase(target, pattern) for pattern in patterns)
        if uses_venv:
            assert _needs_venv(target, rules), f"{target} runs $(BIN) without making the venv"
        if target != "setup":
            assert named != _needs_venv(target, rules), target
