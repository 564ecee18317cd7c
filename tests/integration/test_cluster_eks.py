"""The cluster role's eks provider against EKS and STS served by a moto server on loopback.

The API server endpoint moto reports does not exist, so these runs set cluster_wait_api=false;
everything up to the kubeconfig is the real code path.
"""

from __future__ import annotations

import base64
import os
import stat
import urllib.parse

import boto3
import pytest
import yaml
from ansible_run import recap

PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  roles:
    - role: mlops.platform.cluster
  post_tasks:
    - name: Show the published facts
      ansible.builtin.debug:
        var: mlops_cluster
"""


@pytest.fixture()
def eks_cluster(moto_endpoint, aws_env):
    eks = boto3.client("eks", endpoint_url=moto_endpoint, region_name="eu-west-1")
    name = "mlops-dev"
    if name not in eks.list_clusters()["clusters"]:
        eks.create_cluster(
            name=name,
            version="1.33",
            roleArn="arn:aws:iam::123456789012:role/eks",
            resourcesVpcConfig={"subnetIds": ["subnet-1", "subnet-2"]},
        )
    return eks.describe_cluster(name=name)["cluster"]


def converge(run_playbook, tmp_path, moto_endpoint, name, *extra):
    playbook = tmp_path / "eks.yml"
    playbook.write_text(PLAYBOOK)
    args = ["-i", "localhost,", "-e", f"cluster_provider=eks cluster_name={name} cluster_eks_region=eu-west-1",
            "-e", f"cluster_eks_endpoint_url={moto_endpoint} cluster_wait_api=false cluster_cache_dir={tmp_path}", *extra]
    return run_playbook(playbook, *args)


def test_kubeconfig_written_for_an_active_cluster_and_second_run_unchanged(ansible_playbook, tmp_path, moto_endpoint, eks_cluster):
    first = converge(ansible_playbook, tmp_path, moto_endpoint, "mlops-dev")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert recap(first.stdout)["changed"] == 1

    path = tmp_path / "eks-mlops-dev.kubeconfig"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    config = yaml.safe_load(path.read_text())
    assert config["current-context"] == "mlops-dev"
    assert config["clusters"][0]["cluster"]["server"] == eks_cluster["endpoint"]
    assert config["clusters"][0]["cluster"]["certificate-authority-data"] == eks_cluster["certificateAuthority"]["data"]
    token = config["users"][0]["user"]["token"]
    assert token.startswith("k8s-aws-v1.")
    url = base64.urlsafe_b64decode(token.removeprefix("k8s-aws-v1.") + "==").decode()
    query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    assert query["Action"] == ["GetCallerIdentity"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0]
    assert token not in first.stdout, "the token must never be printed"

    second = converge(ansible_playbook, tmp_path, moto_endpoint, "mlops-dev")
    assert second.returncode == 0, second.stdout[-3000:]
    assert recap(second.stdout)["changed"] == 0


def test_exec_auth_needs_no_token(ansible_playbook, tmp_path, moto_endpoint, eks_cluster):
    result = converge(ansible_playbook, tmp_path, moto_endpoint, "mlops-dev", "-e", "cluster_eks_auth=exec")
    assert result.returncode == 0, result.stdout[-3000:]
    user = yaml.safe_load((tmp_path / "eks-mlops-dev.kubeconfig").read_text())["users"][0]["user"]
    assert user["exec"]["command"] == "aws"
    assert user["exec"]["args"][:4] == ["eks", "get-token", "--cluster-name", "mlops-dev"]


def test_missing_cluster_fails_clearly_and_writes_nothing(ansible_playbook, tmp_path, moto_endpoint, aws_env):
    result = converge(ansible_playbook, tmp_path, moto_endpoint, "no-such-cluster")
    assert result.returncode != 0
    assert "EKS cluster 'no-such-cluster' not found in region eu-west-1" in result.stdout
    assert "check cluster_name" in result.stdout
    assert not (tmp_path / "eks-no-such-cluster.kubeconfig").exists()


def test_unsupported_version_fails_before_writing(ansible_playbook, tmp_path, moto_endpoint, eks_cluster):
    result = converge(ansible_playbook, tmp_path, moto_endpoint, "mlops-dev", "-e", "cluster_version_max=1.30")
    assert result.returncode != 0
    assert "outside the supported range 1.27-1.30" in result.stdout
    assert not (tmp_path / "eks-mlops-dev.kubeconfig").exists()
