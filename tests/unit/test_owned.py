"""Deletion order of the objects the collection owns (module_utils/owned.py)."""

from __future__ import annotations

from ansible_collections.mlops.platform.plugins.module_utils.owned import describe, ordered, tier, within_namespaces


def obj(kind, name, namespace=None, api_version="v1"):
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"kind": kind, "apiVersion": api_version, "metadata": meta}


CRD = obj("CustomResourceDefinition", "seldonruntimes.mlops.seldon.io", api_version="apiextensions.k8s.io/v1")
RUNTIME = obj("SeldonRuntime", "rt", "team-a", "mlops.seldon.io/v1alpha1")
DEPLOY = obj("Deployment", "mlflow", "mlflow", "apps/v1")
QUOTA = obj("ResourceQuota", "q", "team-a")
NAMESPACE = obj("Namespace", "team-a")
CLUSTER_ROLE = obj("ClusterRole", "r", api_version="rbac.authorization.k8s.io/v1")


def test_custom_resources_first_crds_last():
    names = [describe(o) for o in ordered([CRD, CLUSTER_ROLE, NAMESPACE, QUOTA, DEPLOY, RUNTIME])]
    assert names == [
        "SeldonRuntime/team-a/rt",
        "Deployment/mlflow/mlflow",
        "ResourceQuota/team-a/q",
        "Namespace/team-a",
        "ClusterRole/r",
        "CustomResourceDefinition/seldonruntimes.mlops.seldon.io",
    ]


def test_tiers():
    assert [tier(o) for o in (RUNTIME, DEPLOY, QUOTA, NAMESPACE, CLUSTER_ROLE, CRD)] == [0, 1, 2, 3, 4, 5]


def test_objects_inside_deleted_namespaces():
    assert within_namespaces([RUNTIME, DEPLOY, QUOTA, NAMESPACE], {"team-a"}) == [RUNTIME, QUOTA]
