"""--strategy is checked against the cluster before training, and a lost worker is named."""

from __future__ import annotations

import pytest

from tfdock.cluster import Cluster
from tfdock.distribute import lost_worker_reason, resolve_strategy
from tfdock.errors import TfdockError

TWO_WORKERS = Cluster("worker", 0, size=2, is_chief=True)


def test_auto_picks_the_strategy_from_the_cluster_and_gpus():
    """auto: multi-worker for a cluster, mirrored for several GPUs, else the default strategy."""
    assert resolve_strategy("auto", TWO_WORKERS, 0) == "multi-worker"
    assert resolve_strategy("auto", None, 2) == "mirrored"
    assert resolve_strategy("auto", None, 1) == "default"
    assert resolve_strategy("auto", None, 0) == "default"


def test_single_process_strategy_refuses_a_cluster():
    """--strategy mirrored with a two-task TF_CONFIG would train two unrelated copies: refused."""
    with pytest.raises(TfdockError, match="use --strategy multi-worker"):
        resolve_strategy("mirrored", TWO_WORKERS, 0)


def test_multi_worker_without_tf_config_is_refused():
    """--strategy multi-worker needs TF_CONFIG and says so."""
    with pytest.raises(TfdockError, match="needs TF_CONFIG"):
        resolve_strategy("multi-worker", None, 0)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            "Graph execution error:\n\nDetected at node CollectiveReduceV2_1 defined at:\n"
            "Collective ops is aborted by: Error reported from /job:worker/task:1: The following "
            "tasks are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\n"
            "The tasks have crashed.",
            "Error reported from /job:worker/task:1: The following tasks are unhealthy "
            "(stopped sending heartbeats): /job:worker/replica:0/task:1",
        ),
        (
            "Graph execution error:\n\nDetected at node X\nCollective ops is aborted by: "
            "recvmsg:Connection reset by peer\nThe error could be from a previous operation.",
            "recvmsg:Connection reset by peer",
        ),
    ],
)
def test_lost_worker_reason_names_what_happened(message, reason):
    """The message of a lost worker quotes TensorFlow's cause, not its boilerplate first line."""
    assert lost_worker_reason(RuntimeError(message)) == reason
