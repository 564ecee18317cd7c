"""Health evaluation and the report table (module_utils/status.py)."""

from __future__ import annotations

import pytest
from ansible_collections.mlops.platform.plugins.module_utils.status import endpoint, image_version, quota_usage, readiness, table


def deployment(replicas, ready, image="ghcr.io/mlflow/mlflow:v3.1.0"):
    return {"kind": "Deployment", "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"image": image}]}}},
            "status": {"readyReplicas": ready} if ready is not None else {}}


@pytest.mark.parametrize(("obj", "ready", "detail"), [
    (None, False, "missing"),
    (deployment(2, 2), True, "2/2 ready"),
    (deployment(2, 1), False, "1/2 ready"),
    (deployment(1, None), False, "0/1 ready"),
    ({"kind": "StatefulSet", "spec": {"replicas": 1}, "status": {"readyReplicas": 1}}, True, "1/1 ready"),
    ({"kind": "Job", "status": {"succeeded": 1}}, True, "complete"),
    ({"kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True"}]}}, False, "failed"),
    ({"kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}}, False, "Pending"),
    ({"kind": "SeldonRuntime", "status": {"conditions": [{"type": "Ready", "status": "False"}]}}, False, "Ready=False"),
    ({"kind": "SeldonRuntime", "status": {"conditions": [{"type": "Ready", "status": "True"}]}}, True, "Ready=True"),
    ({"kind": "Prometheus", "status": {"conditions": [{"type": "Available", "status": "False"}]}}, False, "Available=False"),
    ({"kind": "Alertmanager", "status": {"conditions": [{"type": "Available", "status": "True"}]}}, True, "Available=True"),
    ({"kind": "Prometheus", "status": {}}, True, "exists"),
    ({"kind": "Secret"}, True, "exists"),
])
def test_readiness(obj, ready, detail):
    assert readiness(obj) == (ready, detail)


def test_image_version_reads_the_tag_not_the_registry_port():
    assert image_version(deployment(1, 1, "registry:5000/mlflow")) == ""
    assert image_version(deployment(1, 1, "registry:5000/mlflow:3.1")) == "3.1"
    assert image_version({"kind": "Deployment", "spec": {}}) == ""


def test_service_endpoint():
    svc = {"kind": "Service", "metadata": {"name": "mlflow", "namespace": "mlflow"}, "spec": {"ports": [{"port": 5000}]}}
    assert endpoint(svc) == "mlflow.mlflow.svc:5000"
    assert endpoint(deployment(1, 1)) == ""


def test_quota_usage_percent():
    quota = {"metadata": {"name": "q"}, "status": {"hard": {"limits.cpu": "8", "pods": "50"}, "used": {"limits.cpu": "2"}}}
    rows = quota_usage([quota])
    assert rows == [
        {"quota": "q", "resource": "limits.cpu", "used": "2", "hard": "8", "percent": 25.0},
        {"quota": "q", "resource": "pods", "used": "0", "hard": "50", "percent": 0.0},
    ]


def test_table_aligns_columns():
    text = table(["A", "LONGER"], [["xxxx", 1]])
    assert text.splitlines() == ["A     LONGER", "----  ------", "xxxx  1"]
