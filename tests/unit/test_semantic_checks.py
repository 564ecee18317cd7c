"""The roles' checks beyond their argument specs (validate_roles' SEMANTIC_CHECKS), on plain values.

The hostile inventories of tests/integration/hostile_inventories.yml run them through site.yml on a
cluster; these pin each check's message and show the valid local values pass.
"""

from __future__ import annotations

import copy
import pathlib

import pytest
import yaml
from ansible_collections.mlops.platform.plugins.action.validate_roles import SEMANTIC_CHECKS, role_spec, semantic_errors, validated
from ansible_collections.mlops.platform.plugins.module_utils import (
    gitops,
    kafka,
    mlflow,
    monitoring,
    processing,
    redis,
    secrets,
    seldon_task,
    storage,
    teams,
)
from ansible_collections.mlops.platform.plugins.module_utils.quantity import size_errors

ROOT = pathlib.Path(__file__).resolve().parents[2]


def local_vars() -> dict:
    out: dict = {}
    for path in sorted((ROOT / "inventories" / "local" / "group_vars" / "all").glob("*.yml")):
        out.update(yaml.safe_load(path.read_text()))
    return out


LOCAL = local_vars()
LOCAL_TEAMS = LOCAL["teams"]


def test_every_checked_role_has_a_spec_and_a_function():
    for role, (module, function) in SEMANTIC_CHECKS.items():
        assert role_spec(role)
        module_obj = {"teams": teams, "storage": storage, "mlflow": mlflow, "monitoring": monitoring, "secrets": secrets,
                      "seldon_task": seldon_task, "kafka": kafka, "gitops": gitops, "redis": redis,
                      "processing": processing}[module]
        assert callable(getattr(module_obj, function))


def test_a_team_may_not_own_a_platform_namespace():
    own = [{**LOCAL_TEAMS[0], "namespaces": ["financial-ml", "mlflow"]}]
    errors = teams.variable_errors({"team_isolation_teams": own}, {"mlflow_namespace": "mlflow"})
    assert errors == ["team 'financial-ml': namespaces[1]: 'mlflow' is a platform namespace (mlflow_namespace), which the "
                      "team would share with the platform's components. Fix: give the team its own namespace."]
    # MinIO's namespace counts only with the minio backend.
    minio = [{**LOCAL_TEAMS[0], "namespaces": ["minio"]}]
    assert teams.variable_errors({"team_isolation_teams": minio}, {"storage_minio_namespace": "minio", "storage_backend": "s3"}) == []
    assert teams.variable_errors({"team_isolation_teams": minio}, {"storage_minio_namespace": "minio", "storage_backend": "minio"})
    assert teams.variable_errors({"team_isolation_teams": LOCAL_TEAMS}, LOCAL) == []


def test_admin_or_edit_shared_between_teams_is_refused_view_is_not():
    a, b = copy.deepcopy(LOCAL_TEAMS)
    b["access"]["view"]["groups"].append("financial-ml-viewers")
    assert teams.validate_teams([a, b]) == []
    b["access"]["edit"]["users"] = ["alice"]
    a["access"]["admin"]["users"] = ["alice"]
    errors = teams.validate_teams([a, b])
    assert errors == ["team 'financial-mlops-pytorch': access.edit.users[0]: 'alice' also has admin or edit access to team "
                      "'financial-ml', so the two teams can change each other's namespaces. Fix: give each team its own "
                      "admin and edit groups and users (sharing view is allowed)."]


@pytest.mark.parametrize(("value", "allow_empty", "expected"), [
    ("10Gi", False, None), ("", True, None), (None, False, None),
    ("-10Gi", False, "storage: '-10Gi' is negative. Fix: write a size above zero such as 10Gi"),
    ("0", True, "storage: '0' is zero. Fix: write a size above zero such as 10Gi, or '' for none"),
    ("", False, "storage: '' is not a Kubernetes quantity"),
    ("ten gigs", False, "storage: 'ten gigs' is not a Kubernetes quantity"),
])
def test_size_errors(value, allow_empty, expected):
    errors = size_errors("storage", value, allow_empty=allow_empty)
    assert errors == [] if expected is None else (len(errors) == 1 and errors[0].startswith(expected))


def test_names_and_sizes_of_the_platform_roles():
    assert mlflow.variable_errors({"mlflow_namespace": "mlflow", "mlflow_replicas": 1}) == []
    assert mlflow.variable_errors({"mlflow_namespace": "kube-public", "mlflow_replicas": -2, "mlflow_postgresql_enabled": True,
                                   "mlflow_postgresql_volume_size": "-1Gi"}) == [
        "mlflow_namespace: 'kube-public' is a Kubernetes system namespace. Fix: give the component its own namespace",
        "mlflow_replicas: -2 is negative. Fix: use 1 or more (0 stops the server)",
        "mlflow_postgresql_volume_size: '-1Gi' is negative. Fix: write a size above zero such as 10Gi"]
    assert storage.variable_errors({"storage_backend": "minio", "storage_minio_volume_size": "-1Gi"}) == [
        "storage_minio_volume_size: '-1Gi' is negative. Fix: write a size above zero such as 10Gi"]
    assert storage.variable_errors({"storage_backend": "s3", "storage_minio_volume_size": "-1Gi"}) == []
    assert monitoring.variable_errors({"monitoring_namespace": "Mon", "monitoring_prometheus_storage_size": ""}) == [
        "monitoring_namespace: 'Mon' is not a DNS-1123 label. Fix: use lower-case letters, digits and '-', e.g. monitoring"]


def seldon_values(**changes) -> dict:
    values = {k: v for k, v in LOCAL.items() if k.startswith("seldon_")}
    return {"seldon_teams": LOCAL_TEAMS, **values, **changes}


# The kafka role's mode, which validate_roles passes as context: with Kafka the pipeline components run.
KAFKA = {"kafka_mode": LOCAL["kafka_mode"]}


def test_the_local_seldon_settings_fit_the_local_team_quotas():
    assert seldon_task.variable_errors(seldon_values(), KAFKA) == []


def test_a_quota_below_the_runtime_is_named_with_the_team_before_anything_is_applied():
    small = copy.deepcopy(LOCAL_TEAMS)
    small[0]["quota"]["count"]["pods"] = 2
    errors = seldon_task.variable_errors(seldon_values(seldon_teams=small), KAFKA)
    assert errors == ["SeldonRuntime financial-ml/seldon: team 'financial-ml': quota: the runtime needs pods 7 in total, over "
                      "ResourceQuota mlops-team-quota hard 2. Fix: lower replicas or resources in the overrides, disable "
                      "components you do not use, or raise the team's quota for namespace financial-ml."]
    # Without the preflight the quota is not weighed; a team default from team_isolation counts when given.
    assert seldon_task.variable_errors(seldon_values(seldon_teams=small, seldon_preflight=False), KAFKA) == []
    # Without Kafka the pipeline components are off, and an override of one is named.
    assert "overrides for seldon-dataflow-engine but no Kafka is configured" in seldon_task.variable_errors(seldon_values())[0]
    defaulted = [{k: v for k, v in small[0].items() if k != "quota"}]
    tiny = {"requests": {"cpu": "8", "memory": "16Gi"}, "limits": {"cpu": "8", "memory": "16Gi"}, "count": {"pods": 3}}
    assert seldon_task.variable_errors(seldon_values(seldon_teams=defaulted), {**KAFKA, "team_isolation_quota_defaults": tiny})


def test_seldon_overrides_and_servers_are_named_by_their_variable():
    errors = seldon_task.variable_errors(seldon_values(
        seldon_namespace="Seldon", seldon_servers=[{"name": "mlserver", "replicas": -1}],
        seldon_team_runtime_overrides={"financial-ml": [{"name": "seldon-schedular"}]}), KAFKA)
    assert errors[0].startswith("seldon_namespace: 'Seldon' is not a DNS-1123 label")
    assert any("seldon_team_runtime_overrides.financial-ml[0].name: 'seldon-schedular' is not a SeldonRuntime component" in e
               for e in errors), errors
    assert any("seldon_servers[0].replicas (mlserver): -1 is not a valid replica count" in e for e in errors), errors
    assert seldon_task.variable_errors(seldon_values(seldon_runtime_overrides=[{"name": "hodometer", "replicas": "two"}]), KAFKA) == [
        "SeldonRuntime financial-ml/seldon: seldon_runtime_overrides[0].replicas (hodometer): 'two' is not a valid replica "
        "count. Fix: use a whole number from 0 (0 stops the component; disable: true removes it)."]
    # The module's own argument spec first, as it would refuse the values.
    wrong_type = seldon_task.variable_errors(seldon_values(seldon_servers=[{"name": "mlserver", "replicas": "two"}]), KAFKA)
    assert len(wrong_type) == 1 and "as the seldon_runtime module reads them" in wrong_type[0] and "replicas" in wrong_type[0]


def test_empty_secret_values_are_named_never_shown():
    values = {k: v for k, v in LOCAL.items() if k.startswith("secrets_")}
    values["secrets_teams"] = LOCAL_TEAMS
    assert secrets.variable_errors(values) == []
    values["secrets_registry"] = {**values["secrets_registry"], "password": ""}
    values["secrets_s3"] = {**values["secrets_s3"], "secret_access_key": None}
    (message,) = secrets.variable_errors(values)
    assert message.startswith(secrets.MISSING)
    assert "secrets_registry.password (for financial-mlops-pytorch/ghcr)" in message
    assert "secrets_s3.secret_access_key (for financial-ml/ml-platform)" in message
    assert LOCAL["secrets_s3"]["access_key_id"] not in message and LOCAL["secrets_mlflow"]["tracking_password"] not in message
    # Other modes do not render the values: nothing to check here.
    assert secrets.variable_errors({**values, "secrets_mode": "external"}) == []


def test_the_checks_see_the_other_roles_values_and_mask_every_secret():
    spec = role_spec("team_isolation")
    _messages, accepted = validated(spec, {"teams": LOCAL_TEAMS, "team_isolation_teams": [{**LOCAL_TEAMS[0], "namespaces": ["monitoring"]}]})
    assert semantic_errors("team_isolation", accepted) == []
    assert semantic_errors("mlops.platform.team_isolation", accepted, {"monitoring_namespace": "monitoring"})
    assert semantic_errors("cluster", {"cluster_name": "x"}) == []


@pytest.mark.parametrize("password", ["prom-operator", "Admin", "short-pw"])
def test_a_weak_grafana_password_is_refused_without_being_shown(password):
    values = {k: v for k, v in LOCAL.items() if k.startswith("secrets_")}
    values["secrets_teams"] = LOCAL_TEAMS
    values["secrets_grafana"] = {**values["secrets_grafana"], "admin_password": password}
    (message,) = secrets.variable_errors(values)
    assert message.startswith("secrets_grafana.admin_password must have 12+ characters") and password not in message
    # Empty: named once, with the empty values; disabled or another mode: not checked.
    values["secrets_grafana"]["admin_password"] = ""
    (message,) = secrets.variable_errors(values)
    assert message.startswith(secrets.MISSING) and "secrets_grafana.admin_password" in message
    assert secrets.grafana_errors("external", {"enabled": True, "admin_password": password}) == []
    assert secrets.grafana_errors("direct", {"enabled": False, "admin_password": password}) == []
