# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Finding and removing the objects this collection labelled, in a safe order."""

from __future__ import annotations

OWNED_SELECTOR = "app.kubernetes.io/managed-by=mlops.platform"
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod"}
# Built-in API groups; anything else is served by a CRD or an aggregated API.
BUILTIN_GROUPS = {
    "", "apps", "batch", "autoscaling", "policy", "networking.k8s.io", "rbac.authorization.k8s.io", "storage.k8s.io",
    "scheduling.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io", "node.k8s.io",
    "admissionregistration.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io", "certificates.k8s.io",
    "flowcontrol.apiserver.k8s.io", "resource.k8s.io", "authentication.k8s.io", "authorization.k8s.io",
}


def group_of(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def tier(obj: dict) -> int:
    """Deletion order: custom resources first (their controllers may still finalize them), then
    workloads, other namespaced objects, namespaces, cluster-scoped objects, and CRDs last."""
    kind, namespaced = obj["kind"], bool(obj["metadata"].get("namespace"))
    if kind == "CustomResourceDefinition":
        return 5
    if group_of(obj["apiVersion"]) not in BUILTIN_GROUPS:
        return 0
    if kind in WORKLOADS:
        return 1
    if kind == "Namespace":
        return 3
    return 2 if namespaced else 4


def ordered(objects: list[dict]) -> list[dict]:
    return sorted(objects, key=lambda o: (tier(o), o["kind"], o["metadata"].get("namespace") or "", o["metadata"]["name"]))


def describe(obj: dict) -> str:
    meta = obj["metadata"]
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['kind']}/{where}{meta['name']}"


def within_namespaces(objects: list[dict], namespaces: set[str]) -> list[dict]:
    """Objects that deleting those namespaces removes anyway; no need to delete them one by one."""
    return [o for o in objects if o["metadata"].get("namespace") in namespaces]
