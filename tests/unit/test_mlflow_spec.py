"""The MLflow pod's processes, rendered in one place (module_utils/mlflow.py)."""

from __future__ import annotations

import configparser
import pathlib
import re

import pytest
import yaml
from ansible_collections.mlops.platform.plugins.module_utils.mlflow import (
    ResolveError,
    auth_config,
    expand_references,
    quota_errors,
    quota_hard,
    resolve_container,
    server_containers,
    service_hosts,
    settings_errors,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
CFG = {"artifacts_destination": "s3://mlflow-artifacts/mlflow", "s3_endpoint_url": "http://minio.minio.svc:9000",
       "region": "us-east-1", "allowed_hosts": service_hosts("mlflow", "mlflow")}
SECRETS = {
    "mlflow-database-secret": {"connection-url": "postgresql+psycopg2://u:p%40ss@db:5432/mlflow"},
    "mlflow-server": {"MLFLOW_AUTH_ADMIN_USERNAME": "admin", "MLFLOW_AUTH_ADMIN_PASSWORD": "pw-123456",
                      "MLFLOW_FLASK_SERVER_SECRET_KEY": "k" * 32, "AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "sk"},
}


def test_version_pins_agree():
    """The role's default version, its image tag and the real-process test's venv are one version."""
    defaults = yaml.safe_load((ROOT / "roles/mlflow/defaults/main.yml").read_text())
    pins = (ROOT / "requirements-mlflow.txt").read_text()
    version = defaults["mlflow_version"]
    assert re.search(rf"^mlflow\[auth\]=={re.escape(version)}$", pins, re.M), "requirements-mlflow.txt drifted"
    assert "{{ mlflow_version }}" in defaults["mlflow_image"]
    for env in ("local", "dev", "staging", "prod"):
        inv = yaml.safe_load((ROOT / f"inventories/{env}/group_vars/all/mlflow.yml").read_text())
        assert inv["mlflow_version"] == version, env


def test_server_command_and_environment():
    spec = server_containers(CFG)
    server = spec["server"]
    assert server["command"][:2] == ["mlflow", "server"]
    assert "--serve-artifacts" in server["command"] and ["--app-name", "basic-auth"] == server["command"][9:11]
    env = {e["name"]: e for e in server["env"]}
    database_ref = {"name": "mlflow-database-secret", "key": "connection-url"}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"] == database_ref
    assert env["MLFLOW_ARTIFACTS_DESTINATION"]["value"] == "s3://mlflow-artifacts/mlflow"
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == "http://minio.minio.svc:9000"
    assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"] == "/etc/mlflow/auth/basic_auth.ini"
    for key in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"):
        assert env[key]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-server"
    # No secret ever in argv: the store URI travels in the environment.
    assert not any("postgresql" in a for a in server["command"])
    assert [c["name"] for c in spec["init"]] == ["db-upgrade", "check-artifacts"]


def test_cloud_identity_drops_static_keys_and_endpoint():
    spec = server_containers({**CFG, "s3_credentials": False, "s3_endpoint_url": "", "auth": False})
    names = [e["name"] for e in spec["server"]["env"]]
    assert "AWS_ACCESS_KEY_ID" not in names and "MLFLOW_S3_ENDPOINT_URL" not in names
    assert "--app-name" not in spec["server"]["command"]


def test_non_s3_destination_has_no_bucket_check():
    spec = server_containers({**CFG, "artifacts_destination": "file:///data"})
    assert [c["name"] for c in spec["init"]] == ["db-upgrade"]


def test_resolve_like_the_kubelet():
    argv, env = resolve_container(server_containers(CFG)["init"][0], SECRETS, {"PATH": "/bin"})
    assert argv[:2] == ["/bin/sh", "-c"] and "MLFLOW_BACKEND_STORE_URI" in argv[2]
    assert env["MLFLOW_BACKEND_STORE_URI"] == SECRETS["mlflow-database-secret"]["connection-url"]
    container = {"command": ["echo", "$(A)", "$(B)", "$$(A)", "$(MISSING)"],
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)-2"}]}
    assert resolve_container(container, {})[0] == ["echo", "1", "1-2", "$(A)", "$(MISSING)"]
    with pytest.raises(ResolveError, match="Secret 'nope' has no key 'k'"):
        resolve_container({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]}, {})
    assert expand_references("a$$b", {}) == "a$b"


def test_auth_config_escapes_percent_for_configparser():
    text = auth_config("postgresql://u:p%40ss@db/mlflow", "EDIT")
    parser = configparser.ConfigParser()
    parser.read_string(text)
    assert parser["mlflow"]["database_uri"] == "postgresql://u:p%40ss@db/mlflow"
    assert parser["mlflow"]["default_permission"] == "EDIT"
    assert "admin_password" not in text


def test_service_hosts_allow_names_with_ports():
    hosts = service_hosts("mlflow", "ml", ["mlflow.example.com"])
    assert {"mlflow.ml.svc.cluster.local", "mlflow.ml.svc.cluster.local:*", "127.0.0.1:*", "mlflow.example.com:*"} <= set(hosts)


def test_settings_errors_name_the_variable():
    errors = settings_errors({"artifacts_destination": "bucket", "port": 0, "workers": 0, "s3_endpoint_url": "minio:9000"})
    text = "\n".join(errors)
    for var in ("mlflow_artifacts_destination", "mlflow_port", "mlflow_workers", "mlflow_s3_endpoint_url"):
        assert var in text
    assert settings_errors(CFG) == []


def _workload(kind, replicas, cpu, memory, init_cpu="0", storage=None):
    spec = {"replicas": replicas, "template": {"spec": {
        "containers": [{"resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}}}],
        "initContainers": [{"resources": {"requests": {"cpu": init_cpu}}}]}}}
    if storage:
        spec["volumeClaimTemplates"] = [{"spec": {"resources": {"requests": {"storage": storage}}}}]
    return {"kind": kind, "spec": spec}


def test_quota_counts_surge_pod_init_containers_and_claims():
    objects = [_workload("Deployment", 1, "500m", "512Mi", init_cpu="2"), _workload("StatefulSet", 1, "250m", "256Mi", storage="5Gi")]
    # Deployment: 2 pods (surge) x max(2 init, 0.5) = 4 CPU requests; StatefulSet 0.25.
    errors = quota_errors(objects, {"requests": {"cpu": "4", "memory": "2Gi", "storage": "4Gi"},
                                    "count": {"pods": 2, "persistentvolumeclaims": 1}})
    text = "\n".join(errors)
    assert "requests.cpu: the pods need 4250m but mlflow_quota.requests.cpu is 4" in text
    assert "requests.storage: the pods need 5Gi" in text
    assert "pods: 3 needed" in text
    assert "requests.memory" not in text
    assert quota_errors(objects, {"requests": {"cpu": "5", "storage": "5Gi"}, "count": {"pods": 3}}) == []


def test_role_defaults_fit_the_role_quota():
    defaults = yaml.safe_load((ROOT / "roles/mlflow/defaults/main.yml").read_text())
    assert quota_hard(defaults["mlflow_quota"]) == {
        "limits.cpu": "4", "limits.memory": "8Gi", "persistentvolumeclaims": "4", "pods": "10",
        "requests.cpu": "2", "requests.memory": "4Gi", "requests.storage": "20Gi", "services.loadbalancers": "0"}
