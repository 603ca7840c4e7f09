"""Every test's markers tell the truth, so `-m "not slow"` and `make check` are really fast.

The truth is read from what each test uses: its fixtures, followed through the fixtures they
use (pytest's own closure), as collected by tests/marker_report.py.
"""

from __future__ import annotations

import json
import sys

import pytest

from tests.commands import run

# Fixtures that build an image or bring a dev container up: minutes, on an engine.
BUILDS = {"cpu_image", "gpu_image", "arm64_image", "door", "devcontainer"}
ENGINE = {"engine"} | BUILDS
INDEX = {"index_environment"}


@pytest.fixture(scope="module")
def collected(repo_root, tmp_path_factory) -> list[dict]:
    report = tmp_path_factory.mktemp("markers") / "report.json"
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "tests.marker_report"]
    result = run(command, cwd=repo_root, env={"TFDOCK_MARKER_REPORT": str(report)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(report.read_text())


def _lies(collected: list[dict], wrong) -> list[str]:
    return [test["id"] for test in collected if wrong(set(test["fixtures"]), set(test["markers"]))]


def test_whatever_builds_an_image_or_a_dev_container_is_slow_and_container(collected):
    """A test that builds an image or opens a dev container is marked `slow` and `container`."""
    assert (
        _lies(collected, lambda used, marked: used & BUILDS and not {"slow", "container"} <= marked)
        == []
    )


def test_whatever_needs_an_engine_is_container(collected):
    """A test that starts a container is marked `container`."""
    assert _lies(collected, lambda used, marked: used & ENGINE and "container" not in marked) == []


def test_whatever_needs_the_package_index_is_network(collected):
    """A test that compiles against the real package index is marked `network`."""
    assert _lies(collected, lambda used, marked: used & INDEX and "network" not in marked) == []


def test_unit_tests_are_unmarked_and_use_no_engine(collected):
    """tests/unit is what `make check` runs: no marker, no engine, no index."""
    unit = [test for test in collected if test["id"].startswith("tests/unit/")]
    assert len(unit) > 100
    assert _lies(unit, lambda used, marked: marked or used & (ENGINE | INDEX)) == []


def test_the_fast_tier_builds_nothing(collected):
    """`-m "not slow"` leaves no test that builds an image or opens a dev container."""
    fast = [test for test in collected if "slow" not in test["markers"]]
    assert fast and _lies(fast, lambda used, marked: used & BUILDS) == []
