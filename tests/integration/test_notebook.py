"""The quickstart notebook runs headlessly, offline, and reaches the quickstart's accuracy."""

from __future__ import annotations

import re
import time

import nbformat
import pytest
from nbclient import NotebookClient

from tests.integration.containers import ARTIFACTS

NOTEBOOK = "notebooks/quickstart.ipynb"


def _text(cell) -> str:
    """Return everything a cell printed (streams and plain-text results)."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)


@pytest.mark.slow
def test_quickstart_notebook_runs_offline_and_reaches_97_percent(repo_root, mnist_dir, monkeypatch):
    """Executed top to bottom on the offline MNIST, the notebook shows the digits and >= 97% test accuracy."""
    monkeypatch.setenv("TFDOCK_DATA", str(mnist_dir))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.read(repo_root / NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
        "the notebook is committed with outputs; clear them"
    )
    started = time.perf_counter()
    NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(repo_root / "notebooks")}},
    ).execute()
    elapsed = time.perf_counter() - started
    ARTIFACTS.mkdir(exist_ok=True)
    nbformat.write(notebook, ARTIFACTS / "quickstart.executed.ipynb")

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert not [o for c in code for o in c.outputs if o["output_type"] == "error"]
    printed = "\n".join(_text(cell) for cell in code)
    assert f"loaded from {mnist_dir}" in printed
    assert "x_train (60000, 28, 28) uint8" in printed
    assert "x_test  (10000, 28, 28) y_test (10000,)" in printed
    assert "pixel range now 0.0 - 1.0" in printed
    figures = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 1, "the cell showing a few digits draws one figure"
    assert len(re.findall(r"Epoch \d/5", printed)) == 5
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", printed).group(1))
    assert accuracy >= 0.97, f"test accuracy {accuracy}"
    (ARTIFACTS / "notebook.txt").write_text(
        f"test accuracy {accuracy:.4f}; executed in {elapsed:.0f} s\n"
    )
