"""`tfdock k8s`'s refusals, and TF_CONFIG from an Indexed Job pod's environment (`tfdock task`).

The manifests themselves are checked against Kubernetes' schemas, and their pods run, in
tests/integration/test_k8s.py.
"""

from __future__ import annotations

import json

import pytest

from tests.commands import tfdock

SHOW_TF_CONFIG = ["python", "-c", "import os; print(os.environ['TF_CONFIG'])"]
DIGEST = "registry.example.com/tfdock@sha256:" + "0" * 64


def _pod(**variables: str | None) -> dict[str, str | None]:
    """Pod 1 of the 3-pod job `mnist`, as the rendered manifest and Kubernetes set it up."""
    pod = {
        "JOB_COMPLETION_INDEX": "1",
        "TFDOCK_K8S_JOB": "mnist",
        "TFDOCK_K8S_SERVICE": "mnist",
        "TFDOCK_K8S_WORKERS": "3",
        "TFDOCK_PORT_BASE": "2222",
        "TF_CONFIG": None,
        "SLURM_PROCID": None,
    }
    return {**pod, **variables}


def test_each_pod_gets_the_same_cluster_and_its_own_index():
    result = tfdock("task", *SHOW_TF_CONFIG, env=_pod())
    assert result.returncode == 0, result.stderr
    line, config = result.stdout.splitlines()
    assert line == (
        "tfdock: Kubernetes Job mnist, pod 1 of 3: TF_CONFIG from the Indexed Job, this pod at "
        "mnist-1.mnist:2222"
    )
    assert json.loads(config) == {
        "cluster": {"worker": [f"mnist-{i}.mnist:2222" for i in range(3)]},
        "task": {"type": "worker", "index": 1},
    }


@pytest.mark.parametrize(
    ("variables", "problem"),
    [
        ({"JOB_COMPLETION_INDEX": "3"}, "JOB_COMPLETION_INDEX=3 is not below TFDOCK_K8S_WORKERS=3"),
        ({"JOB_COMPLETION_INDEX": None}, "JOB_COMPLETION_INDEX=(unset) is not a whole number of at least 0"),
        ({"TFDOCK_K8S_SERVICE": ""}, "TFDOCK_K8S_JOB and TFDOCK_K8S_SERVICE must name the Job and its Service"),
        ({"TFDOCK_PORT_BASE": "x"}, "TFDOCK_PORT_BASE=x is not a whole number of at least 1"),
    ],
)  # fmt: skip
def test_a_pod_environment_that_is_wrong_is_one_sentence(variables, problem):
    result = tfdock("task", *SHOW_TF_CONFIG, env=_pod(**variables))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"tfdock: error: this pod's environment does not describe its place in the job "
        f"({problem}); apply the manifests that `tfdock k8s` renders unchanged, or set "
        "TF_CONFIG yourself (docs/clusters.md)."
    )


@pytest.mark.parametrize(
    ("arguments", "sentence"),
    [
        ([], "name the image the pods run, by digest as `make push` prints it, e.g. --image "
             "registry.example.com/team/tfdock@sha256:... (make k8s K8S_IMAGE=...)."),
        (["--image", DIGEST, "--name", "Mnist_2"],
         "--name Mnist_2 is not a Kubernetes name: use lower-case letters, digits and '-', "
         "starting with a letter, at most 52 characters, e.g. --name mnist-2w."),
        (["--image", DIGEST, "--mount", "shared"],
         "--mount shared is not an absolute path in the pod, e.g. /shared."),
    ],
)  # fmt: skip
def test_k8s_refuses_what_kubernetes_would_in_one_sentence(arguments, sentence):
    result = tfdock("k8s", *arguments)
    assert result.returncode == 2
    assert result.stderr.strip() == f"tfdock: error: {sentence}"
    assert result.stdout == ""
