"""site.yml check mode, verify.yml and teardown.yml on the local platform, on a cluster of its own.

The tests bring up a second offline cluster (cluster_name mlops-it-lifecycle, own kubeconfig):
check mode on the empty cluster first, then converge, verify, break one required object,
verify again, tear down twice.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import pytest
from ansible_run import recap

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "roles" / "cluster" / "files" / "offline-cluster.sh"
NAME = "mlops-it-lifecycle"


@pytest.fixture(scope="module")
def lifecycle_cluster(tmp_path_factory):
    kubeconfig = str(tmp_path_factory.mktemp("lifecycle") / "kubeconfig")
    env = {**os.environ, "MLOPS_CLUSTER_NAME": NAME, "MLOPS_KUBECONFIG": kubeconfig, "MLOPS_CLUSTER_NODES": "1"}
    yield ["-i", "inventories/local", "-e", f"cluster_provider=kwok cluster_name={NAME} cluster_kubeconfig={kubeconfig}"], kubeconfig
    subprocess.run([str(CLUSTER), "down"], env=env, capture_output=True, check=False)


def kubectl(kubeconfig: str, *args: str) -> subprocess.CompletedProcess:
    settings = dict(line.split("=", 1) for line in subprocess.run(
        [str(CLUSTER), "env"], capture_output=True, text=True, check=True).stdout.split())
    binary = pathlib.Path(settings["MLOPS_CACHE_DIR"]) / "bin" / f"kubernetes-{settings['K8S_VERSION']}" / "kubectl"
    return subprocess.run([str(binary), "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, check=False)


LABELLED = ("all,namespaces,secrets,configmaps,roles,rolebindings,networkpolicies,resourcequotas,limitranges,"
            "serviceaccounts,persistentvolumeclaims,persistentvolumes,clusterroles,clusterrolebindings")


def labelled(kubeconfig: str) -> list[dict]:
    found = kubectl(kubeconfig, "get", LABELLED, "-A", "-l", "app.kubernetes.io/managed-by=mlops.platform", "-o", "json")
    assert found.returncode == 0, found.stderr
    return json.loads(found.stdout)["items"]


def test_check_mode_before_the_cluster_and_on_an_empty_cluster_predicts_and_writes_nothing(ansible_playbook, lifecycle_cluster):
    args, kubeconfig = lifecycle_cluster
    # Before the cluster exists: every role reports what it would create, and nothing is started.
    before = ansible_playbook("playbooks/site.yml", *args, "--check")
    assert before.returncode == 0, before.stdout[-4000:]
    assert "Would create or start the offline cluster mlops-it-lifecycle" in before.stdout
    assert "Namespace/financial-ml" in before.stdout and recap(before.stdout)["changed"] >= 5
    assert "the cluster does not exist yet" in before.stdout  # the Seldon runtimes, reported not sent
    assert not os.path.exists(kubeconfig)

    env = {**os.environ, "MLOPS_CLUSTER_NAME": NAME, "MLOPS_KUBECONFIG": kubeconfig, "MLOPS_CLUSTER_NODES": "1"}
    up = subprocess.run([str(CLUSTER), "up"], env=env, capture_output=True, text=True, check=False)
    assert up.returncode == 0, up.stderr[-2000:]
    check = ansible_playbook("playbooks/site.yml", *args, "--check", "--diff")
    assert check.returncode == 0, check.stdout[-4000:]
    assert recap(check.stdout)["changed"] >= 5
    for predicted in ("Namespace/financial-ml", "Deployment/mlflow/mlflow", "financial-ml: would create the SeldonRuntime"):
        assert predicted in check.stdout, predicted
    assert labelled(kubeconfig) == []
    assert kubectl(kubeconfig, "get", "crd", "seldonruntimes.mlops.seldon.io").returncode != 0


def test_verify_then_teardown(ansible_playbook, lifecycle_cluster):
    args, kubeconfig = lifecycle_cluster
    # A cluster outside the supported versions stops the run in the cluster role, before any role applies.
    unsupported = ansible_playbook("playbooks/site.yml", *args, "-e", "cluster_version_max=1.30")
    assert unsupported.returncode != 0
    said = unsupported.stdout + unsupported.stderr  # stderr: the error on one line (stdout wraps it)
    assert "runs Kubernetes v1.33." in said and "outside the supported range 1.27-1.30" in said
    assert labelled(kubeconfig) == []

    converge = ansible_playbook("playbooks/site.yml", *args)
    assert converge.returncode == 0, converge.stdout[-4000:]

    healthy = ansible_playbook("playbooks/verify.yml", *args)
    assert healthy.returncode == 0, healthy.stdout[-4000:]
    assert "COMPONENT" in healthy.stdout and "mlflow.mlflow.svc:5000" in healthy.stdout
    assert "financial-ml" in healthy.stdout and "QUOTA" in healthy.stdout

    # Break one required object: verify must fail and name it.
    deleted = kubectl(kubeconfig, "-n", "mlflow", "delete", "deployment", "mlflow", "--wait=true")
    assert deleted.returncode == 0, deleted.stderr
    broken = ansible_playbook("playbooks/verify.yml", *args)
    assert broken.returncode != 0
    assert "component mlflow (Deployment mlflow/mlflow): missing" in broken.stdout

    first = ansible_playbook("playbooks/teardown.yml", *args)
    assert first.returncode == 0, first.stdout[-4000:]
    assert recap(first.stdout)["changed"] >= 1
    assert labelled(kubeconfig) == []
    # Objects without our label are left alone.
    assert kubectl(kubeconfig, "get", "namespace", "kube-system").returncode == 0

    second = ansible_playbook("playbooks/teardown.yml", *args)
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap(second.stdout)["changed"] == 0
