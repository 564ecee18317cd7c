"""The secrets role's filters: missing values by name, and the Secrets of direct mode."""

from __future__ import annotations

import base64
import json

from ansible_collections.mlops.platform.plugins.filter.secrets import secrets_missing, secrets_objects, secrets_specs

SPECS = [
    {"namespace": "team-a", "team": "a", "missing": ["secrets_s3.region"], "missing_training": ["secrets_mlflow.tracking_uri"],
     "secret": {"name": "ml-platform", "type": "Opaque", "data": {"AWS_DEFAULT_REGION": "", "AWS_ACCESS_KEY_ID": "AKIA-EXAMPLE"}}},
    {"namespace": "team-b", "team": "", "secret": {"name": "ghcr", "type": "kubernetes.io/dockerconfigjson",
                                                   "data": {".dockerconfigjson": "{\"auths\": {}}"}}},
]


def test_missing_names_every_empty_value_and_setting_never_a_value():
    missing = secrets_missing(SPECS)
    assert missing == ["secrets_s3.region (for team-a/ml-platform)", "secrets_mlflow.tracking_uri (for team-a/ml-platform)",
                       "team-a/ml-platform.AWS_DEFAULT_REGION"]
    assert not any("AKIA" in name for name in missing)


def test_objects_are_labelled_base64_secrets():
    first, second = secrets_objects(SPECS)
    assert first["metadata"] == {"name": "ml-platform", "namespace": "team-a", "labels": {
        "app.kubernetes.io/managed-by": "mlops.platform", "app.kubernetes.io/part-of": "mlops-platform",
        "mlops.platform/team": "a"}}
    assert base64.b64decode(first["data"]["AWS_ACCESS_KEY_ID"]).decode() == "AKIA-EXAMPLE"
    assert second["type"] == "kubernetes.io/dockerconfigjson" and "mlops.platform/team" not in second["metadata"]["labels"]
    assert base64.b64decode(second["data"][".dockerconfigjson"]).decode() == '{"auths": {}}'


SETTINGS = {
    "platform_secret_name": "ml-platform", "registry_secret_name": "ghcr",
    "s3": {"access_key_id": "AKIA-EXAMPLE", "secret_access_key": "s/k+?", "region": "", "endpoint_url": "http://minio:9000",
           "rclone_provider": "Minio"},
    "mlflow": {"tracking_uri": "http://mlflow:5000", "tracking_username": "u", "tracking_password": None,
               "s3_endpoint_url": "", "flask_server_secret_key": "f" * 16},
    "registry": {"server": "ghcr.io", "username": "bot", "password": "p@ss:/", "email": ""},
    "database": {"enabled": "yes", "name": "mlflow-database-secret", "namespace": "mlflow", "username": "ml/flow",
                 "password": "p w@/:", "host": "db", "port": 5432, "database": "mlflow", "driver": "psycopg2",
                 "scheme": "postgresql+psycopg2", "connection_url": ""},
}
ROWS = [
    {"team": "a", "namespace": "team-a", "training": True, "secrets": ["ml-platform", "ghcr"]},
    {"team": "b", "namespace": "team-b", "training": False, "secrets": ["ml-platform"]},
    {"team": "c", "namespace": "team-c", "training": True, "secrets": []},
]


def test_specs_one_per_namespace_and_secret_with_training_keys_only_where_training():
    specs = secrets_specs(ROWS, SETTINGS)
    assert [(s["namespace"], s["secret"]["name"]) for s in specs] == [
        ("team-a", "ml-platform"), ("team-a", "ghcr"), ("team-b", "ml-platform"), ("mlflow", "mlflow-database-secret")]
    training, serving = specs[0], specs[2]
    assert training["secret"]["data"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"  # empty: the S3 endpoint
    assert "MLFLOW_TRACKING_URI" not in serving["secret"]["data"] and "missing_training" not in serving
    assert training["missing"] == ["secrets_s3.region"] and training["missing_training"] == ["secrets_mlflow.tracking_password"]
    # An unset value is empty, so secrets_missing names it.
    assert training["secret"]["data"]["MLFLOW_TRACKING_PASSWORD"] == ""
    assert "team-a/ml-platform.MLFLOW_TRACKING_PASSWORD" in secrets_missing(specs)


def test_registry_secret_is_a_docker_config_with_the_basic_auth():
    ghcr = secrets_specs(ROWS, SETTINGS)[1]
    auths = json.loads(ghcr["secret"]["data"][".dockerconfigjson"])["auths"]
    assert ghcr["secret"]["type"] == "kubernetes.io/dockerconfigjson"
    assert base64.b64decode(auths["ghcr.io"]["auth"]).decode() == "bot:p@ss:/"
    assert auths["ghcr.io"]["username"] == "bot"


def test_database_secret_url_quotes_the_credentials_and_is_absent_when_disabled():
    database = secrets_specs(ROWS, SETTINGS)[-1]["secret"]["data"]
    assert database["connection-url"] == "postgresql+psycopg2://ml%2Fflow:p%20w%40%2F%3A@db:5432/mlflow"
    assert database["port"] == "5432"
    given = {**SETTINGS, "database": {**SETTINGS["database"], "connection_url": "postgresql://elsewhere/db"}}
    assert secrets_specs([], given)[0]["secret"]["data"]["connection-url"] == "postgresql://elsewhere/db"
    assert secrets_specs([], {**SETTINGS, "database": {**SETTINGS["database"], "enabled": False}}) == []


def test_grafana_admin_secret_for_the_monitoring_role_names_an_empty_password():
    grafana = {"enabled": True, "name": "grafana-admin", "namespace": "monitoring", "admin_user": "admin",
               "admin_password": "a-long-vaulted-password"}
    spec = secrets_specs([], {**SETTINGS, "database": {"enabled": False}, "grafana": grafana})
    assert [(s["namespace"], s["secret"]["name"]) for s in spec] == [("monitoring", "grafana-admin")]
    assert spec[0]["secret"]["data"] == {"admin-user": "admin", "admin-password": "a-long-vaulted-password"}
    assert secrets_missing(spec) == []
    empty = secrets_specs([], {**SETTINGS, "database": {"enabled": False}, "grafana": {**grafana, "admin_password": ""}})
    assert secrets_missing(empty) == ["secrets_grafana.admin_password (for monitoring/grafana-admin)",
                                      "monitoring/grafana-admin.admin-password"]
    assert secrets_specs([], {**SETTINGS, "database": {"enabled": False}, "grafana": {**grafana, "enabled": False}}) == []


def test_an_empty_s3_endpoint_is_aws_itself_so_the_endpoint_keys_are_left_out_and_nothing_is_missing():
    aws = {**SETTINGS, "s3": {**SETTINGS["s3"], "region": "eu-west-1", "endpoint_url": "", "rclone_provider": "AWS"},
           "mlflow": {**SETTINGS["mlflow"], "tracking_password": "t" * 16}}
    specs = secrets_specs(ROWS, aws)
    training, serving = specs[0], specs[2]
    assert training["missing"] == serving["missing"] == training["missing_training"] == []
    for spec in (training, serving):
        assert not set(spec["secret"]["data"]) & {"AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "RCLONE_CONFIG_S3_ENDPOINT"}
    assert training["secret"]["data"]["RCLONE_CONFIG_S3_REGION"] == "eu-west-1"
    # with an endpoint (MinIO) all three are there, MLflow's defaulting to the S3 one
    minio = secrets_specs(ROWS, {**aws, "s3": {**aws["s3"], "endpoint_url": "http://minio:9000"}})[0]["secret"]["data"]
    assert minio["AWS_ENDPOINT_URL"] == minio["MLFLOW_S3_ENDPOINT_URL"] == minio["RCLONE_CONFIG_S3_ENDPOINT"] == "http://minio:9000"
