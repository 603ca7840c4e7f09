"""docs/reference.md lists every Make variable and every environment variable the kit reads."""

from __future__ import annotations

import re

import pytest

# Variables the scripts read that are the shell's or set by the scripts themselves.
NOT_SETTINGS = {"HOME", "PWD", "LOCK_LABEL"}


@pytest.fixture(scope="module")
def reference(repo_root) -> str:
    return (repo_root / "docs" / "reference.md").read_text()


def _listed(reference: str, section: str) -> set[str]:
    text = reference.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", text))


def test_every_make_variable_is_on_the_reference_page(repo_root, reference):
    """Each `VARIABLE ?=` of the Makefile is a row of the page's Make table, and nothing else."""
    makefile = (repo_root / "Makefile").read_text()
    settable = set(re.findall(r"^([A-Z][A-Z0-9_]*) \?=", makefile, re.M))
    assert _listed(reference, "Make variables") == settable


def test_every_environment_variable_the_kit_reads_is_on_the_reference_page(repo_root, reference):
    """Each variable named by an `*_ENV` constant in src/ or read by a script is on the page."""
    read = set()
    for path in (repo_root / "src" / "tfdock").glob("*.py"):
        read |= set(re.findall(r'^[A-Z_]+_ENV = "([A-Z_]+)"', path.read_text(), re.M))
        read |= set(re.findall(r'environ\.get\("([A-Z_]+)"', path.read_text()))
    for path in (repo_root / "scripts").glob("*.sh"):
        read |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+):-", path.read_text()))
    makefile = set(
        re.findall(r"^([A-Z][A-Z0-9_]*) \?=", (repo_root / "Makefile").read_text(), re.M)
    )
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", reference))
    assert sorted(read - makefile - NOT_SETTINGS - documented) == []
