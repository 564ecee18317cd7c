"""The MLflow pod's processes and the role's objects, rendered in one place (module_utils/mlflow.py)."""

from __future__ import annotations

import base64
import configparser
import pathlib
import re

import pytest
import yaml
from ansible_collections.mlops.platform.plugins.module_utils.mlflow import (
    ResolveError,
    auth_config,
    database_url,
    expand_references,
    mlflow_objects,
    quota_errors,
    quota_hard,
    resolve_container,
    secret_objects,
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


DEFAULTS = yaml.safe_load((ROOT / "roles/mlflow/defaults/main.yml").read_text())
DATABASE = {"username": "ml/flow", "password": "p@ss/w%rd", "host": "db", "port": 5432, "database": "mlflow",
            "driver": "psycopg2", "scheme": "postgresql+psycopg2", "connection_url": ""}
CREDENTIALS = {"admin_username": "admin", "admin_password": "pw-123456", "flask_secret_key": "k" * 32,
               "s3_access_key_id": "id", "s3_secret_access_key": "sk", "database": DATABASE}


def role_settings(**overrides) -> dict:
    """What roles/mlflow/tasks/render.yml passes to mlflow_objects, from the role defaults."""
    settings = {
        "namespace": "mlflow", "name": "mlflow", "image": "ghcr.io/mlflow/mlflow:v3-full", "replicas": 1, "port": 5000,
        "resources": DEFAULTS["mlflow_resources"], "init_resources": DEFAULTS["mlflow_init_resources"],
        "pod_security": "restricted", "quota": DEFAULTS["mlflow_quota"], "service_account_annotations": {},
        "server_secret": "mlflow-server", "database_secret": "mlflow-database-secret", "database_secret_create": True,
        "auth": True, "auth_config_dir": "/etc/mlflow/auth", "auth_default_permission": "READ",
        "ingress": {**DEFAULTS["mlflow_ingress"], "enabled": False},
        "postgresql": {"enabled": True, "image": DEFAULTS["mlflow_postgresql_image"], "volume_size": "5Gi",
                       "storage_class": "", "host_path": "", "resources": DEFAULTS["mlflow_postgresql_resources"]},
        "server": {**CFG, "server_secret": "mlflow-server", "database_secret": "mlflow-database-secret"},
    }
    settings.update(overrides)
    return settings


def _kinds(objects: list[dict]) -> dict[str, dict]:
    return {o["kind"]: o for o in objects}


def _decoded(secrets: list[dict]) -> dict[str, dict[str, str]]:
    return {s["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in s["data"].items()} for s in secrets}


def test_every_secret_reference_is_rendered_and_readable_by_the_server():
    settings = role_settings()
    objects = mlflow_objects(settings)
    assert [o["kind"] for o in objects] == ["Namespace", "ResourceQuota", "ServiceAccount", "Role", "RoleBinding",
                                            "Service", "StatefulSet", "Deployment", "Service"]
    data = _decoded(secret_objects(settings, CREDENTIALS))
    for workload in (o for o in objects if o["kind"] in ("Deployment", "StatefulSet")):
        pod = workload["spec"]["template"]["spec"]
        for container in pod.get("initContainers", []) + pod["containers"]:
            for entry in container["env"]:
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in data[ref["name"]], (workload["kind"], container["name"], ref)
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                assert {i["key"] for i in volume["secret"]["items"]} <= set(data[volume["secret"]["secretName"]])
    role = _kinds(objects)["Role"]
    assert set(role["rules"][0]["resourceNames"]) == set(data) and role["rules"][0]["verbs"] == ["get", "watch"]
    # The server reads the database through the same URL as the auth config, user and password encoded.
    assert data["mlflow-database-secret"]["connection-url"] == "postgresql+psycopg2://ml%2Fflow:p%40ss%2Fw%25rd@db:5432/mlflow"
    parser = configparser.ConfigParser()
    parser.read_string(data["mlflow-server"]["basic_auth.ini"])
    assert parser["mlflow"]["database_uri"] == data["mlflow-database-secret"]["connection-url"]
    assert data["mlflow-database-secret"]["port"] == "5432"


def test_role_default_pods_fit_the_role_quota():
    objects = mlflow_objects(role_settings())
    assert quota_errors(objects, DEFAULTS["mlflow_quota"]) == []
    assert _kinds(objects)["ResourceQuota"]["spec"]["hard"] == quota_hard(DEFAULTS["mlflow_quota"])


def test_external_database_renders_no_postgresql_and_no_database_secret():
    settings = role_settings(database_secret_create=False, postgresql={"enabled": False})
    objects = mlflow_objects(settings)
    assert "StatefulSet" not in _kinds(objects) and "PersistentVolume" not in _kinds(objects)
    assert [s["metadata"]["name"] for s in secret_objects(settings, CREDENTIALS)] == ["mlflow-server"]
    assert database_url({**DATABASE, "connection_url": "postgresql://u:p@h/d"}) == "postgresql://u:p@h/d"


def test_host_path_volume_is_bound_to_the_database_claim():
    pg = {**role_settings()["postgresql"], "host_path": "/var/lib/v", "storage_class": "fast"}
    kinds = _kinds(mlflow_objects(role_settings(postgresql=pg)))
    assert kinds["PersistentVolume"]["spec"]["claimRef"] == {"namespace": "mlflow", "name": "data-mlflow-postgresql-0"}
    assert kinds["StatefulSet"]["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "mlops-host-path"


def test_exposure_identity_and_auth_switches():
    ingress = {"enabled": True, "host": "ml.example", "class_name": "alb", "annotations": {"a/b": "c"}, "tls_secret": "tls"}
    kinds = _kinds(mlflow_objects(role_settings(
        ingress=ingress, auth=False, service_account_annotations={"eks.amazonaws.com/role-arn": "arn:x"},
        server={**CFG, "auth": False})))
    spec = kinds["Ingress"]["spec"]
    assert spec["ingressClassName"] == "alb" and spec["tls"] == [{"hosts": ["ml.example"], "secretName": "tls"}]
    assert spec["rules"][0]["host"] == "ml.example" and kinds["Ingress"]["metadata"]["annotations"] == {"a/b": "c"}
    assert kinds["ServiceAccount"]["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:x"}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp"] and "--app-name" not in pod["containers"][0]["command"]
    plain = _kinds(mlflow_objects(role_settings(ingress={"enabled": True, "host": "ml.example"})))["Ingress"]
    assert "ingressClassName" not in plain["spec"] and "tls" not in plain["spec"] and "annotations" not in plain["metadata"]
