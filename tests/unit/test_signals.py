"""A child ended by a signal is named by that signal, or by its number where it has none."""

from __future__ import annotations

import signal

from tfdock._signals import signal_name
from tfdock.launch import WorkerExit


def test_a_named_signal_is_named_and_a_real_time_one_is_numbered():
    """SIGKILL is SIGKILL; a real-time signal, which has no name, is "signal N"."""
    assert signal_name(int(signal.SIGKILL)) == "SIGKILL"
    assert signal_name(signal.SIGRTMIN + 2) == f"signal {signal.SIGRTMIN + 2}"


def test_the_launcher_and_the_gpu_probe_name_signals_alike():
    """A worker killed by a real-time signal is described by number, as the GPU probe says it."""
    assert str(WorkerExit(1, -(signal.SIGRTMIN + 2))).endswith(
        f"was killed by signal {signal.SIGRTMIN + 2}"
    )
