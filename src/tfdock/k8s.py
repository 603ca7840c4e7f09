"""Render the Kubernetes manifests of an N-worker training job: an Indexed Job and its Service.

Kubernetes documents this shape for a Job whose pods talk to each other
("Job with Pod-to-Pod Communication"): an Indexed Job (completionMode Indexed,
parallelism = completions = N) whose pods name a headless Service as their
subdomain, so pod i answers at ``<job>-<i>.<service>``. JobSet builds the same
objects; Kubeflow's TFJob did too before Trainer v2 dropped it (docs/clusters.md).
Every pod runs ``tfdock task``, which writes its TF_CONFIG from its index
(indexed_job.py): no hand-written cluster list. Pod 0 is the chief and writes
the run folder on the PersistentVolumeClaim that every pod mounts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from tfdock.errors import TfdockError
from tfdock.indexed_job import JOB_ENV, PORT_ENV, SERVICE_ENV, WORKERS_ENV

# A DNS-1123 label, with room for "-<index>" in the pods' host names (63 characters).
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,50}[a-z0-9])?$")
DEFAULT_PORT = 2222
IMAGE_USER_ID = 1000


@dataclass(frozen=True)
class JobSpec:
    """What the manifests say: the job, its image, its size and its storage."""

    name: str
    image: str
    workers: int
    claim: str
    mount: str = "/shared"
    port: int = DEFAULT_PORT
    cpu: str = "2"
    memory: str = "4Gi"
    gpus_per_worker: int = 0
    train_flags: list[str] = field(default_factory=list)

    @property
    def run_dir(self) -> str:
        return f"{self.mount.rstrip('/')}/runs/{self.name}"


def render(spec: JobSpec) -> str:
    """Return the Service and the Job as one YAML stream, or one sentence on a bad setting."""
    _check(spec)
    return yaml.safe_dump_all([_service(spec), _job(spec)], sort_keys=False)


def _check(spec: JobSpec) -> None:
    if not _NAME.match(spec.name):
        raise TfdockError(
            f"--name {spec.name} is not a Kubernetes name: use lower-case letters, digits and "
            "'-', starting with a letter, at most 52 characters, e.g. --name mnist-2w."
        )
    if not spec.image or any(c.isspace() for c in spec.image):
        raise TfdockError(
            "name the image the pods run, by digest as `make push` prints it, e.g. "
            "--image registry.example.com/team/tfdock@sha256:... (make k8s K8S_IMAGE=...)."
        )
    if not spec.mount.startswith("/"):
        raise TfdockError(f"--mount {spec.mount} is not an absolute path in the pod, e.g. /shared.")


def _service(spec: JobSpec) -> dict[str, Any]:
    """The headless Service that gives each pod its DNS name, ready or not."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": spec.name, "labels": _labels(spec)},
        "spec": {
            "clusterIP": "None",
            # The tasks look each other up while they start, before any is "ready".
            "publishNotReadyAddresses": True,
            "selector": {"job-name": spec.name},
            "ports": [{"name": "grpc", "port": spec.port, "targetPort": spec.port}],
        },
    }


def _job(spec: JobSpec) -> dict[str, Any]:
    """The Indexed Job: N pods at once, none retried alone (the workers restart together)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": spec.name, "labels": _labels(spec)},
        "spec": {
            "completionMode": "Indexed",
            "completions": spec.workers,
            "parallelism": spec.workers,
            # One lost pod fails the job; applying it again resumes from the last epoch.
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": _labels(spec)},
                "spec": _pod(spec),
            },
        },
    }


def _pod(spec: JobSpec) -> dict[str, Any]:
    return {
        "subdomain": spec.name,
        "restartPolicy": "Never",
        # The image's user (uid 1000, group users) can write the claim.
        "securityContext": {"fsGroup": IMAGE_USER_ID},
        "containers": [_container(spec)],
        "volumes": [{"name": "shared", "persistentVolumeClaim": {"claimName": spec.claim}}],
    }


def _container(spec: JobSpec) -> dict[str, Any]:
    train = ["tfdock", "train", "--strategy", "multi-worker", "--run-dir", spec.run_dir]
    resources: dict[str, Any] = {
        "requests": {"cpu": spec.cpu, "memory": spec.memory},
        "limits": {"memory": spec.memory},
    }
    if spec.gpus_per_worker:
        resources["limits"]["nvidia.com/gpu"] = spec.gpus_per_worker
    return {
        "name": "worker",
        "image": spec.image,
        # The image's entrypoint (tini) stays; args replace its default command (the lab).
        "args": ["tfdock", "task", *train, *spec.train_flags],
        "env": [
            {"name": JOB_ENV, "value": spec.name},
            {"name": SERVICE_ENV, "value": spec.name},
            {"name": WORKERS_ENV, "value": str(spec.workers)},
            {"name": PORT_ENV, "value": str(spec.port)},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "ports": [{"name": "grpc", "containerPort": spec.port}],
        "resources": resources,
        "volumeMounts": [{"name": "shared", "mountPath": spec.mount}],
    }


def _labels(spec: JobSpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": "tfdock", "app.kubernetes.io/instance": spec.name}
