"""`tfdock verify` trains both ways the kit trains, and a broken way fails it."""

from __future__ import annotations

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
    rows = result.stdout.splitlines()
    assert rows[-3].startswith("PASS  smoke fit ")
    assert rows[-2] == (
        "FAIL  smoke graph loop   the graph loop failed: AttributeError: 'Adam' object has no "
        "attribute '_momentums'"
    )
    assert rows[-1] == "5/6 checks passed"
    assert "Traceback" not in result.stderr
