"""`tfdock verify` trains both ways the kit trains, and a broken way fails it."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow")


def test_verify_trains_with_keras_fit_and_with_the_graph_loop():
    """The smoke checks run Keras fit and the graph loop `make train` uses; both lower the loss."""
    from tfdock.verify import check_smoke_fits

    checks = check_smoke_fits()
    assert [check.name for check in checks] == ["smoke fit", "smoke graph loop"]
    assert [check.ok for check in checks] == [True, True], [check.detail for check in checks]
    assert checks[0].detail.startswith("Keras fit, 3 epochs on 512 synthetic images, loss ")
    assert checks[1].detail.startswith("the graph loop, 3 epochs on 512 synthetic images, loss ")


def test_a_broken_graph_loop_fails_verify(repo_root):
    """When the graph loop cannot run (say Keras renamed Adam's moments), verify exits 1 and says so."""
    code = (
        "import sys, tfdock.graph_loop\n"
        "def renamed(*args, **kwargs):\n"
        "    raise AttributeError(\"'Adam' object has no attribute '_momentums'\")\n"
        "tfdock.graph_loop.fit_in_graph = renamed\n"
        "from tfdock.cli import main\n"
        "sys.exit(main(['verify']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=repo_root, timeout=600
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    rows, summary = _table(result.stdout)
    assert rows["smoke graph loop"] == (
        "FAIL",
        "the graph loop failed: AttributeError: 'Adam' object has no attribute '_momentums'",
    )
    # The packages check compares the venv running the tests with the lock: it may fail there
    # (an extra package), but only as package drift. Every other check passes.
    failed = {"smoke graph loop"}
    if rows["packages"][0] == "FAIL":
        assert rows["packages"][1].endswith(" -- run `make setup` to re-sync"), rows["packages"]
        failed.add("packages")
    assert {name for name, (status, _) in rows.items() if status == "FAIL"} == failed, rows
    assert {"python", "packages", "import tensorflow", "gpu", "smoke fit"} <= set(rows), rows
    assert summary == f"{len(rows) - len(failed)}/{len(rows)} checks passed"


def _table(stdout: str) -> tuple[dict[str, tuple[str, str]], str]:
    """Read verify's table, which ends stdout: {name: (PASS or FAIL, detail)} and the summary."""
    *lines, summary = stdout.splitlines()
    rows = {}
    for line in reversed(lines):
        row = re.fullmatch(r"(PASS|FAIL)  (\S+(?: \S+)*) {2,}(.*)", line)
        if row is None:
            break
        rows[row[2]] = (row[1], row[3])
    return dict(reversed(rows.items())), summary
