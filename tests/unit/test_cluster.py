"""TF_CONFIG is read and checked before training, and a bad one gets one sentence."""

from __future__ import annotations

import json

import pytest

from tests.commands import tfdock
from tfdock.cluster import read_cluster, tf_config_for
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


def test_a_local_workers_tf_config_reads_back_as_its_place_in_the_job():
    """What `tfdock multiworker` gives worker 1 of two is read as worker 1, not the chief."""
    addresses = ["127.0.0.1:2222", "127.0.0.1:2223"]
    task = read_cluster({"TF_CONFIG": tf_config_for(addresses, 1)})
    assert (task.name, task.size, task.is_chief) == ("worker 1", 2, False)
    assert task.address == "127.0.0.1:2223"
    assert task.peers() == {"worker 0": "127.0.0.1:2222"}
