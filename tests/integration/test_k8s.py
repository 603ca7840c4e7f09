"""`make k8s`: manifests valid against Kubernetes' own schemas, whose pods train when started as a cluster would.

No Kubernetes runs here. What a cluster would do with the rendered Job is done with the
engine instead: one container per pod on one network with DNS (CNI's dnsname plugin),
each with the pod's host name, its `<job>-<index>.<service>` DNS name, the manifest's own
args and env (read from the YAML, not restated here), JOB_COMPLETION_INDEX, and the claim
as a shared folder at the manifest's mount path.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import kubernetes_validate
import numpy as np
import pytest
import yaml

from tests import commands
from tests.integration.containers import record_artifact, weights

# The oldest Kubernetes that Indexed Jobs' pod host names need (1.24: GA) is older than the
# schemas shipped; the oldest shipped and the newest are checked.
SCHEMA_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())


def _render(repo_root, *variables: str) -> list[dict]:
    result = commands.make(repo_root, "--no-print-directory", "k8s", *variables)
    assert result.returncode == 0, result.stderr
    return list(yaml.safe_load_all(result.stdout))


def test_the_manifests_validate_against_kubernetes_schemas(repo_root):
    """The Service and the Indexed Job, the GPU request too, pass Kubernetes' strict schemas."""
    documents = _render(repo_root, "K8S_IMAGE=registry.example.com/tfdock@sha256:" + "0" * 64,
                        "WORKERS=4", "K8S_FLAGS=--name mnist-4w --gpus-per-worker 1")  # fmt: skip
    service, job = documents
    for version in SCHEMA_VERSIONS:
        for document in documents:
            kubernetes_validate.validate(document, version, strict=True)
    assert service["spec"]["clusterIP"] == "None"
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 4
    pod = job["spec"]["template"]["spec"]
    assert pod["subdomain"] == service["metadata"]["name"] == "mnist-4w"
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_a_schema_error_is_caught():
    """The validator is strict: a misspelt field fails (so the test above can fail)."""
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"},
           "spec": {"completionz": 2, "template": {"spec": {"containers": []}}}}  # fmt: skip
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, SCHEMA_VERSIONS[-1], strict=True)


@pytest.fixture
def pod_network(engine):
    """A network whose containers find each other by name, as pods do through cluster DNS."""
    name = f"tfdock-k8s-{uuid.uuid4().hex[:8]}"
    commands.run([engine, "network", "create", name], timeout=60).check_returncode()
    yield name
    listed = commands.run([engine, "ps", "--all", "--quiet", "--filter", f"network={name}"])
    for container in listed.stdout.split():
        commands.run([engine, "rm", "--force", container], timeout=120)
    commands.run([engine, "network", "rm", "--force", name], timeout=60)


@pytest.fixture
def claim(tmp_path, mnist_dir) -> Path:
    """The PersistentVolumeClaim's folder: the MNIST files, writable by the image's user."""
    shared = tmp_path / "claim"
    shutil.copytree(mnist_dir, shared / "mnist")
    # What the pod's fsGroup does on a real volume: the image's user (1000) may write.
    for path in [shared, *shared.rglob("*")]:
        shutil.chown(path, 1000, 1000)
    return shared


def _start_pod(engine, network, job, index, claim, environment=()):
    """Start the container that stands for pod INDEX of JOB; return its name."""
    name = job["metadata"]["name"]
    service = job["spec"]["template"]["spec"]["subdomain"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    (mount,) = container["volumeMounts"]
    env = {item["name"]: item["value"] for item in container["env"]}
    env.update({"JOB_COMPLETION_INDEX": str(index), **dict(environment)})
    pod = f"{network}-{name}-{index}"
    command = [engine, "run", "--detach", "--name", pod, "--network", network,
               "--hostname", f"{name}-{index}", "--network-alias", f"{name}-{index}.{service}",
               "--volume", f"{claim}:{mount['mountPath']}", "--no-healthcheck"]  # fmt: skip
    for key, value in env.items():
        command += ["--env", f"{key}={value}"]
    started = commands.run([*command, container["image"], *container["args"]], timeout=120)
    assert started.returncode == 0, started.stderr
    return pod


def _wait(engine, pod) -> tuple[int, str]:
    code = commands.run([engine, "wait", pod], timeout=1500).stdout.strip()
    logs = commands.run([engine, "logs", pod], timeout=60)
    return int(code), logs.stdout + logs.stderr


@pytest.mark.slow
@pytest.mark.container
def test_the_jobs_pods_train_together_to_the_local_jobs_bits(
    repo_root, engine, cpu_image, pod_network, claim, local_two_worker_run
):
    """Two pods of the rendered Job, started as Kubernetes would, train MNIST like the local job."""
    flags = " ".join(local_two_worker_run["flags"])
    _, job = _render(repo_root, f"K8S_IMAGE={cpu_image}", "WORKERS=2", "K8S_FLAGS=--name mnist",
                     f"TRAIN_FLAGS={flags} --data /shared/mnist")  # fmt: skip
    pods = [_start_pod(engine, pod_network, job, index, claim) for index in range(2)]
    ends = [_wait(engine, pod) for pod in pods]
    for code, logs in ends:
        assert code == 0, logs[-3000:]
    assert "tfdock: Kubernetes Job mnist, pod 1 of 2: TF_CONFIG from the Indexed Job, this pod at mnist-1.mnist:2222" in ends[1][1]  # fmt: skip
    run_dir = claim / "runs" / "mnist"
    on_pods = json.loads((run_dir / "metrics.json").read_text())
    on_host = json.loads((local_two_worker_run["run_dir"] / "metrics.json").read_text())
    assert on_pods["test"] == on_host["test"]
    assert on_pods["test"]["accuracy"] >= 0.9
    for ours, theirs in zip(weights(run_dir), weights(local_two_worker_run["run_dir"]), strict=True):  # fmt: skip
        assert np.array_equal(ours, theirs)
    record_artifact("k8s.json", "two_pod_job_test_accuracy", on_pods["test"]["accuracy"])


@pytest.mark.slow
@pytest.mark.container
@pytest.mark.parametrize(
    ("index", "environment", "sentence"),
    [
        (
            5,
            {},
            "tfdock: error: this pod's environment does not describe its place in the job "
            "(JOB_COMPLETION_INDEX=5 is not below TFDOCK_K8S_WORKERS=2); apply the manifests "
            "that `tfdock k8s` renders unchanged, or set TF_CONFIG yourself (docs/clusters.md).",
        ),
        (
            0,
            {"TFDOCK_STARTUP_TIMEOUT": "5"},
            "tfdock: error: worker 1 (mnist-1.mnist:2222) did not start within 5 s; start every "
            "task that TF_CONFIG lists (docs/distribution.md), or allow longer with "
            "TFDOCK_STARTUP_TIMEOUT=SECONDS.",
        ),
    ],
    ids=["wrong-index", "unreachable-peer"],
)
def test_a_pod_that_cannot_join_says_why_in_one_sentence(
    repo_root, engine, cpu_image, pod_network, claim, index, environment, sentence
):
    _, job = _render(repo_root, f"K8S_IMAGE={cpu_image}", "WORKERS=2", "K8S_FLAGS=--name mnist",
                     "TRAIN_FLAGS=--data /shared/mnist")  # fmt: skip
    pod = _start_pod(engine, pod_network, job, index, claim, environment)
    code, logs = _wait(engine, pod)
    assert code == 2
    assert sentence in logs.splitlines()
    assert "Traceback" not in logs
