"""TF_CONFIG and --strategy are checked before training, and bad ones get one sentence."""

from __future__ import annotations

import json

import pytest

from tests.commands import tfdock
from tfdock.distribute import lost_worker_reason, read_cluster, resolve_strategy
from tfdock.errors import TfdockError


def _tf_config(task_type="worker", index=0, cluster=None):
    cluster = cluster or {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]}
    return {
        "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})
    }


def test_worker_zero_is_the_chief_without_a_chief_task():
    """With only workers listed, worker 0 writes the artifacts and worker 1 does not."""
    assert read_cluster(_tf_config(index=0)).is_chief
    second = read_cluster(_tf_config(index=1))
    assert not second.is_chief and second.size == 2 and second.name == "worker 1"


def test_a_chief_task_is_the_only_writer():
    """When the cluster names a chief, every worker, worker 0 included, only computes."""
    cluster = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
    assert read_cluster(_tf_config("chief", 0, cluster)).is_chief
    assert not read_cluster(_tf_config("worker", 0, cluster)).is_chief
    assert read_cluster(_tf_config("worker", 0, cluster)).size == 3


def test_unset_tf_config_means_one_process():
    """No TF_CONFIG: no cluster."""
    assert read_cluster({}) is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "is not a JSON object"),
        ('{"task": {"type": "worker", "index": 0}}', 'has no "cluster"'),
        ('{"cluster": {"worker": ["a:1"]}}', 'has no "task"'),
        ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "index 3"),
        ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', '"ps" job'),
    ],
)
def test_malformed_tf_config_is_one_sentence(text, says):
    """Each way TF_CONFIG can be wrong is named, with an example of a right one."""
    with pytest.raises(TfdockError, match="TF_CONFIG") as caught:
        read_cluster({"TF_CONFIG": text})
    assert says in str(caught.value) and '"cluster"' in str(caught.value)


def test_auto_picks_the_strategy_from_the_cluster_and_gpus():
    """auto: multi-worker for a cluster, mirrored for several GPUs, else the default strategy."""
    cluster = read_cluster(_tf_config())
    assert resolve_strategy("auto", cluster, 0) == "multi-worker"
    assert resolve_strategy("auto", None, 2) == "mirrored"
    assert resolve_strategy("auto", None, 1) == "default"
    assert resolve_strategy("auto", None, 0) == "default"


def test_single_process_strategy_refuses_a_cluster():
    """--strategy mirrored with a two-task TF_CONFIG would train two unrelated copies: refused."""
    with pytest.raises(TfdockError, match="use --strategy multi-worker"):
        resolve_strategy("mirrored", read_cluster(_tf_config()), 0)


def test_multi_worker_without_tf_config_is_refused():
    """--strategy multi-worker needs TF_CONFIG and says so."""
    with pytest.raises(TfdockError, match="needs TF_CONFIG"):
        resolve_strategy("multi-worker", None, 0)


def test_cli_malformed_tf_config_exits_2_without_traceback(tmp_path, mnist_dir):
    """`tfdock train` with a broken TF_CONFIG prints one line, exits 2, and writes nothing."""
    env = {"PATH": "/usr/bin:/bin", "TF_CONFIG": "{oops"}
    runs = tmp_path / "runs"
    result = tfdock(
        "train", "--data", str(mnist_dir), "--output-dir", str(runs), env=env, inherit=False
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(
        "tfdock: error: the environment variable TF_CONFIG is not valid JSON"
    )
    assert not runs.exists()


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


def test_each_task_knows_its_address_and_its_peers():
    """A task's own host:port, and every other task by name, as TF_CONFIG lists them."""
    cluster = {"chief": ["a:1"], "worker": ["b:2", "c:3"]}
    task = read_cluster(_tf_config("worker", 1, cluster))
    assert task.address == "c:3"
    assert task.peers() == {"chief 0": "a:1", "worker 0": "b:2"}


@pytest.mark.parametrize("text", ["abc", "0", "-5", "inf", "nan", "1e999"])
def test_a_bad_startup_timeout_is_one_sentence(text):
    """TFDOCK_STARTUP_TIMEOUT must be a finite number of seconds above 0."""
    with pytest.raises(TfdockError, match=rf"^TFDOCK_STARTUP_TIMEOUT={text} is not a number"):
        read_cluster({**_tf_config(), "TFDOCK_STARTUP_TIMEOUT": text})


def test_startup_timeout_defaults_and_reads_seconds():
    """Unset, the wait for peers is 300 s; set, it is the number given."""
    assert read_cluster(_tf_config()).startup_timeout == 300
    assert read_cluster({**_tf_config(), "TFDOCK_STARTUP_TIMEOUT": "2.5"}).startup_timeout == 2.5
