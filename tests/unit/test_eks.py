"""EKS discovery checks and kubeconfig rendering (module_utils/eks.py)."""

from __future__ import annotations

import base64

import boto3
import pytest
from ansible_collections.mlops.platform.plugins.module_utils.eks import (
    EksError,
    check_cluster,
    presign_token,
    render_kubeconfig,
    user_entry,
    without_token,
)

ACTIVE = {
    "name": "mlops-dev",
    "status": "ACTIVE",
    "version": "1.33",
    "endpoint": "https://abc.eks.example",
    "certificateAuthority": {"data": "Q0E="},
}


def test_active_cluster_in_range_passes():
    check_cluster(ACTIVE, "mlops-dev", "1.27", "1.33")


@pytest.mark.parametrize("status", ["CREATING", "UPDATING", "DELETING", "FAILED", None])
def test_cluster_not_active_is_refused(status):
    with pytest.raises(EksError, match=f"is {status}, not ACTIVE"):
        check_cluster({**ACTIVE, "status": status}, "mlops-dev", "1.27", "1.33")


@pytest.mark.parametrize("version", ["1.26", "1.34", "2.0"])
def test_version_outside_range_is_refused(version):
    with pytest.raises(EksError, match=f"runs Kubernetes {version}, outside the supported range 1.27-1.33"):
        check_cluster({**ACTIVE, "version": version}, "mlops-dev", "1.27", "1.33")


def test_missing_endpoint_is_refused():
    with pytest.raises(EksError, match="has no endpoint"):
        check_cluster({**ACTIVE, "endpoint": ""}, "mlops-dev", "1.27", "1.33")


def test_kubeconfig_has_one_context_pointing_at_the_cluster():
    config = render_kubeconfig(ACTIVE, "dev", {"token": "t"})
    assert config["current-context"] == "dev"
    assert config["clusters"] == [{"name": "dev", "cluster": {"server": ACTIVE["endpoint"], "certificate-authority-data": "Q0E="}}]
    assert config["contexts"][0]["context"] == {"cluster": "dev", "user": "dev"}


def test_exec_user_carries_region_and_profile():
    user = user_entry("mlops-dev", "eu-west-1", "exec", None, "ops")
    assert user["exec"]["args"] == ["eks", "get-token", "--cluster-name", "mlops-dev", "--region", "eu-west-1", "--output", "json"]
    assert user["exec"]["env"] == [{"name": "AWS_PROFILE", "value": "ops"}]


def test_a_new_token_is_not_a_configuration_change():
    one = render_kubeconfig(ACTIVE, "dev", user_entry("mlops-dev", "eu-west-1", "token", "a", None))
    two = render_kubeconfig(ACTIVE, "dev", user_entry("mlops-dev", "eu-west-1", "token", "b", None))
    assert one != two
    assert without_token(one) == without_token(two)
    moved = render_kubeconfig({**ACTIVE, "endpoint": "https://other"}, "dev", {"token": "a"})
    assert without_token(moved) != without_token(one)


def test_token_is_a_presigned_get_caller_identity_with_the_cluster_header(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    sts = boto3.client("sts", region_name="eu-west-1")
    token = presign_token(sts, "mlops-dev")
    assert token.startswith("k8s-aws-v1.")
    assert "=" not in token
    url = base64.urlsafe_b64decode(token.removeprefix("k8s-aws-v1.") + "==").decode()
    assert "Action=GetCallerIdentity" in url
    assert "x-k8s-aws-id" in url
    assert "X-Amz-Expires=900" in url
