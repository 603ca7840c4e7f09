"""The images start from a base pinned by digest, and record it in their labels."""

from __future__ import annotations

import re

import pytest

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def _arg_defaults(text: str) -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_default_base_is_debian_bookworm_slim_by_digest(repo_root, variant):
    """FROM is debian:bookworm-slim at a pinned sha256 digest, and LABELs record both parts."""
    text = (repo_root / "docker" / f"{variant}.Dockerfile").read_text()
    defaults = _arg_defaults(text)
    assert defaults["BASE_NAME"] == "docker.io/library/debian:bookworm-slim"
    assert DIGEST.match(defaults["BASE_DIGEST"]), defaults["BASE_DIGEST"]
    base, *stages = re.findall(r"^FROM .*$", text, re.M)
    assert base == "FROM ${BASE_NAME}@${BASE_DIGEST} AS system"
    assert stages == [
        "FROM system AS lock-layers",
        "FROM system AS runtime",
        "FROM runtime AS dev",
        "FROM runtime",
    ], "every later stage is on the base; the last, the default, is the runtime image"
    assert 'org.opencontainers.image.base.name="${BASE_NAME}"' in text
    assert 'org.opencontainers.image.base.digest="${BASE_DIGEST}"' in text


def test_docs_name_the_pinned_digest_and_its_source(repo_root):
    """docs/images.md gives the digest the Dockerfiles pin, where it came from and how to move it."""
    digest = _arg_defaults((repo_root / "docker" / "cpu.Dockerfile").read_text())["BASE_DIGEST"]
    docs = (repo_root / "docs" / "images.md").read_text()
    assert digest in docs
    assert "docker-library/repo-info" in docs
    assert "move it forward" in docs


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_every_stage_declares_the_args_it_uses(repo_root, variant):
    """A stage sees only the ARGs it declares (not its parent stage's): an undeclared one is empty."""
    text = (repo_root / "docker" / f"{variant}.Dockerfile").read_text()
    code = re.sub(r"^\s*#.*\n", "", text, flags=re.M)  # the instructions, without comments
    froms = re.findall(r"^FROM .*$", code, re.M)
    stages = dict(zip(froms, re.split(r"^FROM .*$", code, flags=re.M)[1:], strict=True))
    for stage in stages.values():
        declared = set(re.findall(r"^ARG (\w+)", stage, re.M))
        set_by_env = set(re.findall(r"^\s*(?:ENV\s+)?(\w+)=", stage, re.M))
        used = set(re.findall(r"\$\{(\w+)\}", stage))
        assert used - declared - set_by_env - {"PATH"} == set(), stage[:200]
    for line in ("FROM system AS runtime", "FROM runtime AS dev"):  # both run as the image's user
        assert stages[line].strip().endswith("ARG TFDOCK_UID\nUSER ${TFDOCK_UID}"), line
    assert stages["FROM runtime"].strip() == "", "the default adds nothing"
