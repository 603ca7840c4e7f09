"""Build a multi-worker job's TF_CONFIG from the Slurm job step a task runs in.

Under ``srun``, every task of a step gets Slurm's step variables (its rank
``SLURM_PROCID``, the step's node list and tasks per node). When ``TF_CONFIG``
is unset there, tfdock writes it from them, so the same ``tfdock train
--strategy multi-worker`` runs on Slurm as on one machine: task 0 is the chief,
and each task listens on a port of its node counted from a base.

TensorFlow's own ``SlurmClusterResolver`` reads the variables (its node list
expansion is Slurm's hostlist syntax, ``node[01-04,07]``, with no ``scontrol``,
which the kit's images lack). Its defaults fail on CPU-only nodes: it counts
GPUs with ``nvidia-smi`` (absent there), and ``gpus_per_node=0`` divides by
zero. So it is given one "GPU" a task, as many as the step has tasks, and
told not to touch ``CUDA_VISIBLE_DEVICES``: the GPUs of a task are Slurm's to
give (``--gpus-per-task``), on GPU nodes and CPU nodes alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tfdock.cluster import TF_CONFIG_ENV
from tfdock.errors import TfdockError

# The variables of a task that srun started (a batch script's own shell has no step list).
STEP_VARIABLES = ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST")
PORT_BASE_ENV = "TFDOCK_PORT_BASE"
# Without TFDOCK_PORT_BASE: a block of ten ports per job, below Linux's ephemeral range
# (32768 up), so that two jobs sharing a node seldom meet: 20000 + 10 x (job id mod 1000).
DEFAULT_PORT_BASE = 20000
PORTS_PER_JOB = 10


def applies(environ: Mapping[str, str]) -> bool:
    """True in a task that srun started."""
    return all(environ.get(name) for name in STEP_VARIABLES)


def tf_config(environ: Mapping[str, str]) -> tuple[str, str]:
    """Return this task's TF_CONFIG, and the line that says where it came from."""
    config, address = _resolve(environ)
    line = (
        f"tfdock: Slurm job {environ.get('SLURM_JOB_ID', '?')}, task {environ['SLURM_PROCID']} "
        f"of {environ['SLURM_STEP_NUM_TASKS']}: {TF_CONFIG_ENV} from Slurm's step, this task "
        f"at {address}"
    )
    return config, line


def port_base(environ: Mapping[str, str]) -> int:
    """The first port of each node's tasks: TFDOCK_PORT_BASE, else one from the job id."""
    text = environ.get(PORT_BASE_ENV, "").strip()
    if not text:
        job = environ.get("SLURM_JOB_ID", "0")
        offset = int(job) % 1000 if job.isdigit() else 0
        return DEFAULT_PORT_BASE + PORTS_PER_JOB * offset
    if not text.isdigit() or not 1024 <= int(text) <= 65000:
        raise TfdockError(
            f"{PORT_BASE_ENV}={text} is not a port from 1024 to 65000; set it to the first "
            f"port of each node's tasks, open between the nodes, e.g. {PORT_BASE_ENV}=23000."
        )
    return int(text)


def _resolve(environ: Mapping[str, str]) -> tuple[str, str]:
    """Return this task's TF_CONFIG and its host:port, or one sentence on a bad environment."""
    resolver = _resolver(environ)
    try:
        spec = resolver.cluster_spec().as_dict()
    except (RuntimeError, ValueError, IndexError) as exc:
        raise _bad_environment(exc) from None
    task_type, index = resolver.get_task_info()
    if task_type is None:
        raise _bad_environment(
            f"SLURM_PROCID={environ['SLURM_PROCID']} is not below "
            f"SLURM_STEP_NUM_TASKS={environ['SLURM_STEP_NUM_TASKS']}"
        )
    address = spec[task_type][index]
    _check_node(environ, address)
    config = {"cluster": spec, "task": {"type": task_type, "index": index}}
    return json.dumps(config), address


def _resolver(environ: Mapping[str, str]) -> Any:
    """TensorFlow's SlurmClusterResolver, set up to need no GPU count (see the module's docs)."""
    import tensorflow as tf

    tasks = environ["SLURM_STEP_NUM_TASKS"]
    if not tasks.isdigit() or int(tasks) < 1:
        raise _bad_environment(f"SLURM_STEP_NUM_TASKS={tasks} is not a number of tasks")
    try:
        return tf.distribute.cluster_resolver.SlurmClusterResolver(
            port_base=port_base(environ),
            gpus_per_node=int(tasks),
            gpus_per_task=1,
            auto_set_gpu=False,
        )
    except (RuntimeError, ValueError) as exc:
        raise _bad_environment(exc) from None


def _check_node(environ: Mapping[str, str], address: str) -> None:
    """Refuse a task that Slurm placed on another node than the one its TF_CONFIG names.

    The resolver fills the nodes in order (block distribution); with
    ``--distribution=cyclic`` a task's address would be another node's.
    """
    node = environ.get("SLURMD_NODENAME")
    host = address.rpartition(":")[0]
    if node and node != host:
        raise TfdockError(
            f"Slurm placed task {environ['SLURM_PROCID']} on {node}, but the cluster built from "
            f"Slurm's step puts it on {host}; submit with block distribution (the default; "
            "remove --distribution=cyclic) so that each node's tasks are numbered together."
        )


def _bad_environment(problem: object) -> TfdockError:
    return TfdockError(
        f"Slurm's step variables do not describe a cluster ({problem}); start each task with "
        f"srun inside the job, or set {TF_CONFIG_ENV} yourself (docs/clusters.md)."
    )
