"""A pytest plugin that writes each collected test's markers and fixtures as JSON.

tests/unit/test_markers.py runs `pytest --collect-only -p tests.marker_report` with
TFDOCK_MARKER_REPORT naming the file, then checks every test's markers against what it uses.
"""

from __future__ import annotations

import json
import os

MARKERS = {"slow", "container", "network", "gpu"}


def pytest_collection_finish(session) -> None:
    report = [
        {
            "id": item.nodeid,
            "markers": sorted({marker.name for marker in item.iter_markers()} & MARKERS),
            "fixtures": sorted(item.fixturenames),
        }
        for item in session.items
    ]
    with open(os.environ["TFDOCK_MARKER_REPORT"], "w") as file:
        json.dump(report, file)
