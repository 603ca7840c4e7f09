"""Name the signal that ended a child process, for the one sentence that reports it."""

from __future__ import annotations

import signal


def signal_name(number: int) -> str:
    """Name a signal (SIGABRT), or give its number where it has no name (real-time ones)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
