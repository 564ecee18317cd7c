"""secrets_airflow: Airflow's Secret (the processing role's keys), its checks (named by variable, never by value)."""

from __future__ import annotations

import base64

import pytest
from ansible_collections.mlops.platform.plugins.module_utils import processing
from ansible_collections.mlops.platform.plugins.module_utils.secrets import (
    airflow_errors,
    fernet_key_valid,
    secrets_missing,
    secrets_specs,
    variable_errors,
)

FERNET = base64.urlsafe_b64encode(b"k" * 32).decode()
AIRFLOW = {"enabled": True, "name": "airflow", "namespace": "airflow", "database_username": "air flow",
           "database_password": "p@ss/word", "database_host": "pg.example", "database_port": 5432,
           "database_name": "airflow", "database_scheme": "postgresql+psycopg2", "sql_alchemy_conn": "",
           "fernet_key": FERNET, "jwt_secret": "jwt-secret-0123456789", "api_secret_key": "api-secret-0123456789",
           "mlflow_secret_name": "airflow-mlflow"}
MLFLOW = {"tracking_uri": "http://mlflow:5000", "tracking_username": "mlflow", "tracking_password": "tracking-pw"}
SETTINGS = {"platform_secret_name": "ml-platform", "registry_secret_name": "ghcr", "mlflow": MLFLOW}


def specs(airflow: dict) -> list:
    return secrets_specs([], {**SETTINGS, "airflow": airflow})


def test_secret_keys_are_exactly_those_the_airflow_deployments_read():
    secret, mlflow_secret = (s["secret"] for s in specs(AIRFLOW))
    assert (secret["name"], mlflow_secret["name"]) == ("airflow", "airflow-mlflow")
    assert sorted(secret["data"]) == sorted(processing.SECRET_KEYS.values())
    assert secret["data"]["sql_alchemy_conn"] == "postgresql+psycopg2://air%20flow:p%40ss%2Fword@pg.example:5432/airflow"
    assert mlflow_secret["data"] == {"MLFLOW_TRACKING_URI": "http://mlflow:5000", "MLFLOW_TRACKING_USERNAME": "mlflow",
                                     "MLFLOW_TRACKING_PASSWORD": "tracking-pw"}
    assert secrets_missing(specs(AIRFLOW)) == []
    assert specs({**AIRFLOW, "enabled": False}) == []
    assert len(specs({**AIRFLOW, "mlflow_secret_name": ""})) == 1


def test_sql_alchemy_conn_set_wins_and_empty_values_are_named_never_shown():
    conn = "postgresql+psycopg2://u:secret-value@h/db"
    assert specs({**AIRFLOW, "sql_alchemy_conn": conn, "database_password": ""})[0]["secret"]["data"]["sql_alchemy_conn"] == conn
    missing = secrets_missing(specs({**AIRFLOW, "database_password": "", "fernet_key": None, "jwt_secret": ""}))
    assert "secrets_airflow.database_password (for airflow/airflow)" in missing
    assert "secrets_airflow.fernet_key (for airflow/airflow)" in missing
    assert "secrets_airflow.jwt_secret (for airflow/airflow)" in missing
    assert "secrets_mlflow.tracking_password (for airflow/airflow-mlflow)" in secrets_missing(
        secrets_specs([], {**SETTINGS, "mlflow": {**MLFLOW, "tracking_password": ""}, "airflow": AIRFLOW}))


@pytest.mark.parametrize("key, ok", [
    (FERNET, True), (base64.urlsafe_b64encode(b"k" * 31).decode(), False), (base64.urlsafe_b64encode(b"k" * 33).decode(), False),
    ("local-fernet", False), (FERNET.rstrip("="), False), (base64.b64encode(b"\xfb" * 32).decode(), False), ("", False)])
def test_fernet_key_is_32_url_safe_base64_bytes(key, ok):
    assert fernet_key_valid(key) is ok
    if ok:
        from cryptography.fernet import Fernet  # the library Airflow uses: it takes every key this check accepts
        Fernet(key)


def test_weak_values_are_refused_by_name_not_value():
    assert airflow_errors("direct", AIRFLOW) == []
    assert airflow_errors("external", {**AIRFLOW, "fernet_key": "bad"}) == []
    assert airflow_errors("direct", {**AIRFLOW, "enabled": False, "fernet_key": "bad"}) == []
    errors = airflow_errors("direct", {**AIRFLOW, "fernet_key": "not-a-key-value", "jwt_secret": "secret",
                                       "api_secret_key": "short-val"})
    assert [e.split(" ")[0] for e in errors] == ["secrets_airflow.fernet_key", "secrets_airflow.jwt_secret",
                                                 "secrets_airflow.api_secret_key"]
    assert not any(v in " ".join(errors) for v in ("not-a-key-value", "short-val"))
    sqlite = airflow_errors("direct", {**AIRFLOW, "sql_alchemy_conn": "sqlite:////tmp/airflow.db"})
    assert len(sqlite) == 1 and "SQLite" in sqlite[0] and "/tmp/airflow.db" not in sqlite[0]
    assert airflow_errors("direct", {**AIRFLOW, "database_scheme": "mysql+mysqldb"}) == []


def test_variable_errors_check_the_secret_is_where_processing_reads_it():
    values = {"secrets_mode": "direct", "secrets_teams": [], "secrets_mlflow": MLFLOW, "secrets_airflow": AIRFLOW}
    context = {"processing_airflow": True, "processing_airflow_namespace": "airflow", "processing_airflow_secret": "airflow",
               "processing_airflow_env_from_secrets": ["airflow-mlflow"]}
    assert variable_errors(values, context) == []
    assert variable_errors(values, {**context, "processing_airflow": False, "processing_airflow_secret": "x"}) == []
    moved = variable_errors(values, {**context, "processing_airflow_secret": "airflow-db"})
    assert len(moved) == 1 and moved[0].startswith("secrets_airflow: puts Airflow's Secret at airflow/airflow")
    unread = variable_errors(values, {**context, "processing_airflow_env_from_secrets": []})
    assert len(unread) == 1 and unread[0].startswith("secrets_airflow.mlflow_secret_name")
    weak = variable_errors({**values, "secrets_airflow": {**AIRFLOW, "fernet_key": "x" * 44}}, context)
    assert weak and weak[0].startswith("secrets_airflow.fernet_key")


def test_processing_checks_an_absent_airflow_image_as_the_roles_default():
    import pathlib

    import yaml
    defaults = yaml.safe_load((pathlib.Path(__file__).resolve().parents[2] / "roles/processing/defaults/main.yml").read_text())
    assert processing.AIRFLOW_IMAGE == defaults["processing_airflow_image"]
    assert not [e for e in processing.variable_errors({"processing_airflow": True}) if "image" in e]
    assert [e for e in processing.variable_errors({"processing_airflow": True, "processing_airflow_image": ""}) if "image" in e]
