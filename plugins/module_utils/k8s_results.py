# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Helpers over Kubernetes objects and kubernetes.core.k8s results, shared by the roles.

A batched ``kubernetes.core.k8s`` call (a list of definitions) returns one result per object
under ``result.results`` (or the bare result when the list had one object) and keeps each
object's diff there, where ``--diff`` does not display it. ``changed_objects`` pulls out
what changed so a role can report it.
"""

from __future__ import annotations

from typing import Any


def object_key(obj: dict) -> str:
    """``Kind/namespace/name``, or ``Kind/name`` for cluster-scoped objects."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{obj.get('kind')}/{namespace}/{meta.get('name')}" if namespace else f"{obj.get('kind')}/{meta.get('name')}"


def _per_object_results(registered: Any) -> list[dict]:
    if not isinstance(registered, dict) or registered.get("skipped"):
        return []
    result = registered.get("result")
    if isinstance(result, dict) and isinstance(result.get("results"), list):
        return result["results"]
    return [registered] if "result" in registered else []


def changed_objects(registered: Any) -> list[dict]:
    """``[{object, method, diff}]`` for every object a k8s call changed (or would change)."""
    changes = []
    for item in _per_object_results(registered):
        if not item.get("changed"):
            continue
        changes.append({
            "object": object_key(item.get("result") or {}),
            "method": item.get("method", ""),
            "diff": item.get("diff", {}),
        })
    return changes
