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


def _subset(want: Any, have: Any) -> bool:
    """``want`` is contained in ``have``: dict keys recursively, lists item by item."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_subset(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(map(_subset, want, have))
    return want == have


def mismatches(desired: list[dict], live: list[dict], fields: tuple[str, ...] = ("spec", "rules", "subjects", "roleRef"),
               ignore_kinds: tuple[str, ...] = ("LimitRange",)) -> list[str]:
    """What differs between rendered objects and the objects read back from the API server.

    Every desired object must exist, carry its labels, and have equal ``fields``. Kinds whose
    spec the API server defaults (``ignore_kinds``; a LimitRange gets defaultRequest from
    default) are compared on the keys we set only.
    """
    by_key = {object_key(o): o for o in live}
    problems = []
    for obj in desired:
        key = object_key(obj)
        found = by_key.get(key)
        if found is None:
            problems.append(f"{key}: missing")
            continue
        want_labels = (obj.get("metadata") or {}).get("labels") or {}
        have_labels = (found.get("metadata") or {}).get("labels") or {}
        for label, value in want_labels.items():
            if have_labels.get(label) != value:
                problems.append(f"{key}: label {label}={have_labels.get(label)!r}, expected {value!r}")
        for field in fields:
            if field not in obj:
                continue
            want, have = obj[field], found.get(field)
            same = _subset(want, have) if obj.get("kind") in ignore_kinds else want == have
            if not same:
                problems.append(f"{key}: {field} is {have!r}, expected {want!r}")
    return problems
