"""Read this process's place in a multi-worker job from TF_CONFIG, and write a local worker's.

``TF_CONFIG`` is TensorFlow's standard way to tell each process of a
multi-worker job who it is (Kubernetes operators and cloud training services
set it). This module only reads, checks and writes it: distribute.py builds the
strategy, peers.py waits for the other tasks, launch.py starts local workers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tfdock.errors import TfdockError

TF_CONFIG_ENV = "TF_CONFIG"
TASK_TYPES = ("chief", "worker")
TF_CONFIG_EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
STARTUP_TIMEOUT_ENV = "TFDOCK_STARTUP_TIMEOUT"
DEFAULT_STARTUP_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class Cluster:
    """This process's place in a multi-worker job, as TF_CONFIG describes it."""

    task_type: str
    task_index: int
    size: int
    """Number of tasks (chief and workers) that train together."""
    is_chief: bool
    """The one task that writes the run directory's artifacts."""
    addresses: dict[str, list[str]] = field(default_factory=dict)
    """Each task type's host:port addresses, as TF_CONFIG lists them."""
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_SECONDS
    """Seconds to wait for the other tasks to start (TFDOCK_STARTUP_TIMEOUT)."""

    @property
    def name(self) -> str:
        return f"{self.task_type} {self.task_index}"

    @property
    def address(self) -> str:
        """This task's own host:port."""
        return self.addresses[self.task_type][self.task_index]

    def peers(self) -> dict[str, str]:
        """Return {task name: host:port} for every other task of the job."""
        return {
            f"{task_type} {index}": address
            for task_type, addresses in self.addresses.items()
            for index, address in enumerate(addresses)
            if (task_type, index) != (self.task_type, self.task_index)
        }


def read_cluster(environ: Mapping[str, str] | None = None) -> Cluster | None:
    """Parse ``TF_CONFIG`` (and the start-up timeout); None when unset, else one clear sentence."""
    environ = os.environ if environ is None else environ
    text = environ.get(TF_CONFIG_ENV, "").strip()
    if not text:
        return None
    cluster, task = _cluster_and_task(text)
    _check_addresses(cluster)
    task_type, task_index = _check_task(task, cluster)
    is_chief = task_type == "chief" or ("chief" not in cluster and task_index == 0)
    size = sum(len(addresses) for addresses in cluster.values())
    startup_timeout = parse_startup_timeout(environ.get(STARTUP_TIMEOUT_ENV))
    return Cluster(task_type, task_index, size, is_chief, dict(cluster), startup_timeout)


def set_tf_config_from_scheduler() -> str | None:
    """Without TF_CONFIG, in a Slurm step or a Kubernetes Indexed Job's pod, set it from there.

    Returns the line that says so, or None when TF_CONFIG is set or no scheduler started
    this process. A malformed scheduler environment is one sentence.
    """
    if os.environ.get(TF_CONFIG_ENV, "").strip():
        return None
    for scheduler in _schedulers():
        if scheduler.applies(os.environ):
            config, line = scheduler.tf_config(os.environ)
            os.environ[TF_CONFIG_ENV] = config
            return line
    return None


def in_scheduled_task() -> bool:
    """True when a scheduler (a Slurm step, an Indexed Job's pod) started this process."""
    return any(scheduler.applies(os.environ) for scheduler in _schedulers())


def _schedulers() -> tuple[Any, ...]:
    """The modules that read a task's place from its scheduler (imported here: they import this one)."""
    from tfdock import indexed_job, slurm

    return (slurm, indexed_job)


def tf_config_for(addresses: list[str], index: int) -> str:
    """Return worker ``index``'s TF_CONFIG for a job of ``addresses``."""
    return json.dumps(
        {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
    )


def parse_startup_timeout(text: str | None) -> float:
    """Read ``TFDOCK_STARTUP_TIMEOUT`` (seconds); empty means the default."""
    if not text:
        return DEFAULT_STARTUP_TIMEOUT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise TfdockError(
            f"{STARTUP_TIMEOUT_ENV}={text} is not a number of seconds above 0; set it to how "
            f"long a task may wait for the others to start, e.g. {STARTUP_TIMEOUT_ENV}=600."
        )
    return seconds


def _cluster_and_task(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return TF_CONFIG's "cluster" and "task" objects, or say which is missing."""
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad_tf_config(f"is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(config, dict):
        raise _bad_tf_config("is not a JSON object")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise _bad_tf_config('has no "cluster" object listing the tasks\' host:port addresses')
    if not isinstance(task, dict):
        raise _bad_tf_config('has no "task" object saying which task this process is')
    return cluster, task


def _check_addresses(cluster: dict[str, Any]) -> None:
    """Refuse task types tfdock does not train with, and addresses that are not host:port."""
    for task_type, addresses in cluster.items():
        if task_type not in TASK_TYPES:
            raise _bad_tf_config(
                f'names a "{task_type}" job, but tfdock trains with "chief" and "worker" tasks only'
            )
        if (
            not isinstance(addresses, list)
            or not addresses
            or not all(_is_host_port(a) for a in addresses)
        ):
            raise _bad_tf_config(f'lists "{task_type}" addresses that are not "host:port" strings')
    if len(cluster.get("chief", [])) > 1:
        raise _bad_tf_config('lists more than one "chief"')


def _check_task(task: dict[str, Any], cluster: dict[str, Any]) -> tuple[str, int]:
    """Return this task's type and index, when the cluster lists them."""
    task_type, task_index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise _bad_tf_config(f'has task type {task_type!r}, which its "cluster" does not list')
    if not isinstance(task_index, int) or not 0 <= task_index < len(cluster[task_type]):
        raise _bad_tf_config(
            f"has task index {task_index!r}, but its cluster lists {len(cluster[task_type])} "
            f'"{task_type}" address(es), numbered from 0'
        )
    return task_type, task_index


def _is_host_port(address: Any) -> bool:
    if not isinstance(address, str):
        return False
    host, _, port = address.rpartition(":")
    return bool(host) and port.isdigit()


def _bad_tf_config(problem: str) -> TfdockError:
    return TfdockError(
        f"the environment variable {TF_CONFIG_ENV} {problem}; set it to JSON like "
        f"{TF_CONFIG_EXAMPLE} (docs/distribution.md)."
    )
