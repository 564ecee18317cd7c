# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Health of the platform read back from the API server: pure evaluation and a text table."""

from __future__ import annotations

from typing import Any

from ansible_collections.mlops.platform.plugins.module_utils.quantity import parse_quantity

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")


def _conditions(obj: dict) -> dict[str, str]:
    return {c.get("type"): c.get("status") for c in (obj.get("status") or {}).get("conditions") or []}


def image_version(obj: dict) -> str:
    """The tag of the first container image of a workload, or ''."""
    spec = obj.get("spec") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    image = containers[0].get("image", "") if containers else ""
    tail = image.rsplit("/", 1)[-1]
    return tail.split(":", 1)[1] if ":" in tail else ""


def readiness(obj: dict | None) -> tuple[bool, str]:
    """(ready, detail) for any object we create; an object that does not exist is not ready."""
    if obj is None:
        return False, "missing"
    kind = obj.get("kind")
    status = obj.get("status") or {}
    if kind in ("Deployment", "StatefulSet"):
        want = (obj.get("spec") or {}).get("replicas", 1)
        have = status.get("readyReplicas") or 0
        return have >= want, f"{have}/{want} ready"
    if kind == "DaemonSet":
        want, have = status.get("desiredNumberScheduled", 0), status.get("numberReady", 0)
        return have >= want, f"{have}/{want} ready"
    if kind == "Job":
        if status.get("succeeded"):
            return True, "complete"
        return False, "failed" if _conditions(obj).get("Failed") == "True" else "running"
    if kind == "PersistentVolumeClaim":
        phase = status.get("phase", "Pending")
        return phase == "Bound", phase
    conditions = _conditions(obj)
    # Ready (Seldon and most controllers) or Available (the Prometheus Operator's Prometheus and
    # Alertmanager); without either (no controller reconciles it) the object only exists.
    for condition in ("Ready", "Available"):
        if condition in conditions:
            return conditions[condition] == "True", f"{condition}={conditions[condition]}"
    return True, "exists"


def endpoint(obj: dict | None) -> str:
    """In-cluster address of a Service, '' for other kinds."""
    if not obj or obj.get("kind") != "Service":
        return ""
    meta, spec = obj["metadata"], obj.get("spec") or {}
    ports = spec.get("ports") or []
    port = f":{ports[0]['port']}" if ports else ""
    return f"{meta['name']}.{meta.get('namespace', 'default')}.svc{port}"


def quota_usage(quotas: list[dict]) -> list[dict]:
    """Per resource: used, hard and percent, from ResourceQuota status."""
    rows = []
    for quota in quotas:
        status = quota.get("status") or {}
        hard, used = status.get("hard") or {}, status.get("used") or {}
        for resource in sorted(hard):
            try:
                total = parse_quantity(hard[resource])
                share = float(parse_quantity(used.get(resource, "0")) / total * 100) if total else 0.0
            except ValueError:
                share = 0.0
            rows.append({"quota": quota["metadata"]["name"], "resource": resource, "used": used.get(resource, "0"),
                         "hard": hard[resource], "percent": round(share, 1)})
    return rows


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(value.ljust(widths[i]) for i, value in enumerate(row)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
