"""Build a multi-worker job's TF_CONFIG inside a pod of a Kubernetes Indexed Job.

The manifests that ``tfdock k8s`` renders (k8s.py) run N pods of one Indexed
Job. Kubernetes gives each pod its index (``JOB_COMPLETION_INDEX``) and, with
the Job's headless Service as the pods' subdomain, a DNS name
``<job>-<index>.<service>`` (Kubernetes' documented pattern for Indexed Jobs
whose pods talk to each other). The manifest tells each pod the job's name, its
Service, its size and the port (``TFDOCK_K8S_*``, ``TFDOCK_PORT_BASE``); this
module writes the cluster from them: every pod the same list, pod 0 the chief.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from tfdock.cluster import TF_CONFIG_ENV
from tfdock.errors import TfdockError

INDEX_ENV = "JOB_COMPLETION_INDEX"
JOB_ENV = "TFDOCK_K8S_JOB"
SERVICE_ENV = "TFDOCK_K8S_SERVICE"
WORKERS_ENV = "TFDOCK_K8S_WORKERS"
PORT_ENV = "TFDOCK_PORT_BASE"


def applies(environ: Mapping[str, str]) -> bool:
    """True in a pod of the Indexed Job that `tfdock k8s` renders."""
    return bool(environ.get(WORKERS_ENV))


def tf_config(environ: Mapping[str, str]) -> tuple[str, str]:
    """Return this pod's TF_CONFIG, and the line that says where it came from."""
    workers = _whole(environ, WORKERS_ENV, low=1)
    index = _whole(environ, INDEX_ENV, low=0)
    if index >= workers:
        raise _bad_pod(f"{INDEX_ENV}={index} is not below {WORKERS_ENV}={workers}")
    job, service = environ.get(JOB_ENV, ""), environ.get(SERVICE_ENV, "")
    if not job or not service:
        raise _bad_pod(f"{JOB_ENV} and {SERVICE_ENV} must name the Job and its Service")
    port = _whole(environ, PORT_ENV, low=1)
    addresses = [f"{job}-{i}.{service}:{port}" for i in range(workers)]
    config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
    line = (
        f"tfdock: Kubernetes Job {job}, pod {index} of {workers}: {TF_CONFIG_ENV} from the "
        f"Indexed Job, this pod at {addresses[index]}"
    )
    return json.dumps(config), line


def _whole(environ: Mapping[str, str], name: str, *, low: int) -> int:
    text = environ.get(name, "").strip()
    if not text.isdigit() or int(text) < low:
        raise _bad_pod(f"{name}={text or '(unset)'} is not a whole number of at least {low}")
    return int(text)


def _bad_pod(problem: str) -> TfdockError:
    return TfdockError(
        f"this pod's environment does not describe its place in the job ({problem}); "
        "apply the manifests that `tfdock k8s` renders unchanged, or set "
        f"{TF_CONFIG_ENV} yourself (docs/clusters.md)."
    )
