# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""EKS discovery and kubeconfig rendering, kept free of Ansible so it is unit-testable."""

from __future__ import annotations

import base64

from ansible_collections.mlops.platform.plugins.module_utils.kube import parse_minor

TOKEN_PREFIX = "k8s-aws-v1."
# STS presigned URLs for EKS are accepted for 15 minutes; ask for the longest allowed.
TOKEN_EXPIRES = 900


class EksError(Exception):
    """A problem the user can fix; the message names the setting."""


def minor_version(version: str) -> tuple[int, int]:
    parsed = parse_minor(version)
    if parsed is None:
        raise EksError(f"cannot read a Kubernetes version from {version!r}")
    return parsed


def check_cluster(cluster: dict, name: str, version_min: str, version_max: str) -> None:
    """Fail unless the described cluster is ACTIVE and its version is in [min, max] (major.minor)."""
    status = cluster.get("status")
    if status != "ACTIVE":
        raise EksError(
            f"EKS cluster {name!r} is {status}, not ACTIVE: wait for it to finish "
            f"(aws eks wait cluster-active --name {name}) or pick another cluster_name"
        )
    version = cluster.get("version", "")
    have = minor_version(version)
    if not minor_version(version_min) <= have <= minor_version(version_max):
        raise EksError(
            f"EKS cluster {name!r} runs Kubernetes {version}, outside the supported range "
            f"{version_min}-{version_max}: upgrade the cluster or change cluster_version_min/cluster_version_max"
        )
    for key in ("endpoint", "certificateAuthority"):
        if not cluster.get(key):
            raise EksError(f"EKS cluster {name!r} has no {key} yet: wait until it is ACTIVE and reachable")


def user_entry(cluster_name: str, region: str, auth: str, token: str | None, profile: str | None) -> dict:
    """The kubeconfig `user` for this cluster: a static token or an `aws eks get-token` exec entry."""
    if auth == "token":
        return {"token": token}
    args = ["eks", "get-token", "--cluster-name", cluster_name, "--region", region, "--output", "json"]
    exec_entry: dict = {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws", "args": args}
    if profile:
        exec_entry["env"] = [{"name": "AWS_PROFILE", "value": profile}]
    return {"exec": exec_entry}


def render_kubeconfig(cluster: dict, context: str, user: dict) -> dict:
    """A one-context kubeconfig for the described cluster."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": context,
                "cluster": {
                    "server": cluster["endpoint"],
                    "certificate-authority-data": cluster["certificateAuthority"]["data"],
                },
            }
        ],
        "users": [{"name": context, "user": user}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    }


def without_token(kubeconfig: dict | None) -> dict | None:
    """The kubeconfig with static tokens blanked: a refreshed token is not a configuration change."""
    if not isinstance(kubeconfig, dict):
        return kubeconfig
    copy = dict(kubeconfig)
    users = []
    for entry in kubeconfig.get("users") or []:
        user = dict((entry or {}).get("user") or {})
        if "token" in user:
            user["token"] = "<token>"
        users.append({**entry, "user": user})
    copy["users"] = users
    return copy


def token_from_presigned_url(url: str) -> str:
    """The bearer token EKS accepts: the presigned STS GetCallerIdentity URL, base64url without padding."""
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode("utf-8")).decode("ascii").rstrip("=")


def presign_token(sts_client, cluster_name: str) -> str:
    """Generate an EKS token with boto3 alone (no AWS CLI): sign GetCallerIdentity with x-k8s-aws-id."""

    def add_cluster_header(request, **_kwargs):
        request.headers["x-k8s-aws-id"] = cluster_name

    sts_client.meta.events.register("before-sign.sts.GetCallerIdentity", add_cluster_header)
    try:
        url = sts_client.generate_presigned_url(
            "get_caller_identity", Params={}, ExpiresIn=TOKEN_EXPIRES, HttpMethod="GET"
        )
    finally:
        sts_client.meta.events.unregister("before-sign.sts.GetCallerIdentity", add_cluster_header)
    return token_from_presigned_url(url)
