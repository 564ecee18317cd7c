"""The monitoring role's rendering without a cluster: settings checks, objects, dashboards.

The rules and dashboards' PromQL are proven with the real promtool and Prometheus in
tests/integration/test_monitoring_*.py; here the logic that decides what is rendered.
"""

from __future__ import annotations

import copy
import json
import pathlib

import pytest
from ansible_collections.mlops.platform.plugins.module_utils import monitoring as m

ROOT = pathlib.Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "roles" / "monitoring" / "files" / "dashboards"

SETTINGS = {
    "namespace": "monitoring", "install": "objects", "environment": "local", "pod_security": "restricted",
    "operator": {"image": "quay.io/prometheus-operator/prometheus-operator:v0.93.0", "version": "v0.93.0", "resources": {}},
    "config_reloader": {"image": "quay.io/prometheus-operator/prometheus-config-reloader:v0.93.0"},
    "prometheus": {"image": "quay.io/prometheus/prometheus:v3.16.0", "replicas": 1, "retention": "15d", "storage_size": "",
                   "storage_class": "", "scrape_interval": "30s", "evaluation_interval": "30s", "resources": {}},
    "alertmanager": {"image": "quay.io/prometheus/alertmanager:v0.35.0", "replicas": 1, "resources": {}, "config": {}},
    "grafana": {"image": "docker.io/grafana/grafana:12.3.1", "replicas": 1, "resources": {}, "admin_secret": "grafana-admin",
                "prometheus_url": "http://prometheus.monitoring.svc:9090"},
    "kube_state_metrics": {"image": "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.17.0", "resources": {}},
    "postgres_exporter": {"enabled": True, "name": "mlflow-postgresql-exporter", "namespace": "mlflow", "sslmode": "disable",
                          "image": "quay.io/prometheuscommunity/postgres-exporter:v0.18.1",
                          "database_secret": "mlflow-database-secret", "resources": {}},
    "targets": {
        "mlflow": {"enabled": True, "namespace": "mlflow", "service": "mlflow", "port": "http", "path": "/metrics",
                   "basic_auth_secret": "mlflow-server", "selector": {"app.kubernetes.io/name": "mlflow"},
                   "username_key": "MLFLOW_AUTH_ADMIN_USERNAME", "password_key": "MLFLOW_AUTH_ADMIN_PASSWORD"},
        "minio": {"enabled": True, "namespace": "minio", "service": "minio", "port": "api", "path": "/minio/v2/metrics/cluster",
                  "job_prefix": "minio-buckets-", "selector": {"app.kubernetes.io/name": "minio"}},
        "seldon_namespaces": ["team-a", "team-b"]},
    "alerts": {"quota": {"warning": 0.8, "critical": 0.95},
               "for": {"quota": "5m", "seldon": "10m", "mlflow": "5m", "database": "2m", "minio": "5m", "bucket": "0m"}},
}
# Input data in the shape upstream.sh writes (the real files are read in the integration tests).
UPSTREAM = {
    "version": "v0.93.0",
    "operator_cluster_role_rules": [{"apiGroups": ["monitoring.coreos.com"], "resources": ["*"], "verbs": ["*"]}],
}
CRD_LIST = {"apiVersion": "v1", "kind": "List",
            "metadata": {"annotations": {"mlops.platform/upstream": "github.com/prometheus-operator/prometheus-operator@v0.93.0"}},
            "items": [{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                       "metadata": {"name": "prometheusrules.monitoring.coreos.com"}, "spec": {}}]}


def upstream_files(directory: pathlib.Path, upstream: dict | None = None, crds: dict | None = None) -> str:
    path = directory / "prometheus-operator-v0.93.0.json"
    path.write_text(json.dumps(UPSTREAM if upstream is None else upstream))
    pathlib.Path(m.crd_list_file(str(path))).write_text(json.dumps(CRD_LIST if crds is None else crds))
    return str(path)


def settings(**changes) -> dict:
    s = copy.deepcopy(SETTINGS)
    for path, value in changes.items():
        node = s
        *parents, leaf = path.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return s


def dashboards() -> dict[str, str]:
    return m.read_dashboards(str(DASHBOARDS))


def test_valid_settings_have_no_problems():
    assert m.settings_errors(SETTINGS) == []


@pytest.mark.parametrize(("change", "expected"), [
    ({"alerts__quota": {"warning": 0.95, "critical": 0.8}}, "monitoring_quota_thresholds: need 0 < warning < critical <= 1"),
    ({"alerts__quota": {"warning": 0.8, "critical": 1.5}}, "got warning 0.8, critical 1.5"),
    ({"alerts__quota": {"warning": 0, "critical": 0.9}}, "monitoring_quota_thresholds: need 0 < warning"),
    ({"alerts__quota": {"warning": "high", "critical": 0.9}}, "warning and critical must be numbers"),
    ({"alerts__for": {**SETTINGS["alerts"]["for"], "quota": "5 minutes"}}, "monitoring_alert_for.quota: '5 minutes' is not"),
    ({"alerts__for": {**SETTINGS["alerts"]["for"], "typo": "5m"}}, "monitoring_alert_for.typo: unknown"),
    ({"alerts__for": {"quota": "5m"}}, "monitoring_alert_for.seldon: missing"),
    ({"prometheus__scrape_interval": "0s"}, "monitoring_prometheus_scrape_interval: '0s' is not"),
    ({"prometheus__retention": "two weeks"}, "monitoring_prometheus_retention: 'two weeks'"),
    ({"grafana__image": "docker.io/grafana/grafana"}, "monitoring_grafana_image: 'docker.io/grafana/grafana' must carry a pinned tag"),
    ({"namespace": "Monitoring"}, "monitoring_namespace: 'Monitoring' is not a DNS-1123 label"),
    ({"targets__minio__job_prefix": "minio.*"}, "monitoring_minio.job_prefix: 'minio.*'"),
    ({"prometheus__replicas": 0}, "monitoring_prometheus_replicas: must be at least 1"),
])
def test_each_bad_setting_is_named_with_its_fix(change, expected):
    errors = m.settings_errors(settings(**change))
    assert any(expected in e for e in errors), errors


def test_variable_errors_check_only_what_is_given():
    assert m.variable_errors({}) == []
    assert m.variable_errors({"monitoring_quota_thresholds": {"warning": 0.5, "critical": 0.6}}) == []
    assert len(m.variable_errors({"monitoring_quota_thresholds": {"warning": 0.7, "critical": 0.6},
                                  "monitoring_prometheus_evaluation_interval": "soon"})) == 2


def test_problems_name_a_missing_or_mismatched_upstream_file(tmp_path):
    missing = m.problems(SETTINGS, str(tmp_path / "none.json"), dashboards())
    assert any("upstream.sh crds" in p and "none.json" in p for p in missing), missing
    (tmp_path / "old").mkdir()
    other = upstream_files(tmp_path / "old", {**UPSTREAM, "version": "v0.90.0"})
    assert any("holds the CRDs of prometheus-operator v0.90.0, not v0.93.0" in p for p in m.problems(SETTINGS, other, dashboards()))
    (tmp_path / "nolist").mkdir()
    no_list = upstream_files(tmp_path / "nolist", crds={"kind": "List", "items": []})
    assert any("-crds.json is missing or empty" in p for p in m.problems(SETTINGS, no_list, dashboards()))
    (tmp_path / "ok").mkdir()
    assert m.problems(SETTINGS, upstream_files(tmp_path / "ok"), dashboards()) == []
    # With Helm the chart brings the CRDs: no upstream file needed.
    assert m.problems(settings(install="helm"), str(tmp_path / "none.json"), dashboards()) == []


def test_objects_are_labelled_and_pods_meet_restricted():
    objects = m.monitoring_objects(SETTINGS, UPSTREAM, dashboards())
    for obj in objects:
        meta = obj["metadata"]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "mlops.platform", meta
        assert meta["labels"]["app.kubernetes.io/part-of"] == "mlops-platform", meta
    pods = [o["spec"]["template"]["spec"] for o in objects if o["kind"] == "Deployment"]
    assert len(pods) == 4
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["resources"] == {} or "limits" in container["resources"]
    namespace = next(o for o in objects if o["kind"] == "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_operator_rules_are_the_upstream_files_and_the_crds_are_not_rendered():
    objects = m.monitoring_objects(SETTINGS, UPSTREAM, dashboards())
    assert not [o for o in objects if o["kind"] == "CustomResourceDefinition"], "the CRDs are the apply task's src"
    role = next(o for o in objects if o["kind"] == "ClusterRole" and o["metadata"]["name"] == "mlops-monitoring-prometheus-operator")
    assert role["rules"] == UPSTREAM["operator_cluster_role_rules"]


def test_upstream_sh_labels_the_crds_as_the_role_labels_what_it_renders():
    """The CRD List of make setup (upstream.sh crds): the release's CRDs, unchanged but for the labels."""
    import subprocess

    path = subprocess.run([str(ROOT / "roles/monitoring/files/upstream.sh"), "path", "crds"], capture_output=True, text=True,
                          check=True).stdout.strip()
    listed = json.loads(pathlib.Path(m.crd_list_file(path)).read_text())
    assert listed["metadata"]["annotations"]["mlops.platform/upstream"].endswith("@" + SETTINGS["operator"]["version"])
    assert len(listed["items"]) == 10
    for crd in listed["items"]:
        assert crd["metadata"]["labels"].items() >= m.labels("prometheus-operator").items(), crd["metadata"]["name"]
        assert crd["spec"]["group"] == "monitoring.coreos.com"


def test_helm_mode_renders_only_the_platform_layer():
    objects = m.monitoring_objects(settings(install="helm"), None, dashboards())
    kinds = {o["kind"] for o in objects}
    assert kinds == {"ServiceMonitor", "PodMonitor", "Deployment", "Service", "NetworkPolicy", "PrometheusRule", "ConfigMap"}
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"] == ["mlflow-postgresql-exporter"]
    values = m.helm_values(settings(install="helm"))
    assert values["grafana"]["admin"]["existingSecret"] == "grafana-admin"
    assert values["prometheus"]["prometheusSpec"]["ruleSelector"] == {"matchLabels": {"app.kubernetes.io/part-of": "mlops-platform"}}


def test_every_serving_namespace_gets_the_seldon_monitors_and_a_scrape_policy():
    objects = m.platform_objects(SETTINGS, dashboards())
    for namespace in ("team-a", "team-b"):
        names = sorted(o["metadata"]["name"] for o in objects if o["metadata"].get("namespace") == namespace)
        assert names == ["mlops-allow-prometheus", "seldon-agent", "seldon-envoy", "seldon-pipelinegateway", "seldon-server"]
        policy = next(o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["namespace"] == namespace)
        source = policy["spec"]["ingress"][0]["from"][0]
        assert source["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}


def test_mlflow_monitor_uses_the_admin_basic_auth_and_minio_rules_follow_the_backend():
    objects = m.platform_objects(SETTINGS, dashboards())
    monitor = next(o for o in objects if o["kind"] == "ServiceMonitor" and o["metadata"]["name"] == "mlflow")
    assert monitor["spec"]["endpoints"][0]["basicAuth"]["password"] == {"name": "mlflow-server", "key": "MLFLOW_AUTH_ADMIN_PASSWORD"}
    names = [r["alert"] for g in m.alert_groups(SETTINGS) for r in g["rules"]]
    assert "MinIOBucketProvisioningFailed" in names
    no_minio = settings(targets__minio__enabled=False, postgres_exporter__enabled=False)
    names = [r["alert"] for g in m.alert_groups(no_minio) for r in g["rules"]]
    assert "MinIOBucketProvisioningFailed" not in names and "MLflowDatabaseUnreachable" not in names
    assert "MLflowDown" in names


def test_quota_thresholds_are_the_inventory_values():
    rules = m.alert_groups(settings(alerts__quota={"warning": 0.75, "critical": 0.9}))[0]["rules"]
    assert [r["labels"]["severity"] for r in rules] == ["warning", "critical"]
    assert rules[0]["expr"].endswith(">= 0.75") and rules[1]["expr"].endswith(">= 0.9")
    assert "alerting at 75%" in rules[0]["annotations"]["description"]


def test_a_zero_for_fires_at_once():
    rules = {r["alert"]: r for g in m.alert_groups(SETTINGS) for r in g["rules"]}
    assert "for" not in rules["MinIOBucketProvisioningFailed"]
    assert rules["SeldonSeldonRuntimeNotReady"]["for"] == "10m"


def test_a_changed_dashboard_or_datasource_restarts_grafana():
    def checksum(boards):
        objects = m.monitoring_objects(SETTINGS, UPSTREAM, boards)
        grafana = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "grafana")
        return grafana["spec"]["template"]["metadata"]["annotations"]["mlops.platform/config-checksum"]

    boards = dashboards()
    assert checksum(boards) == checksum(dict(boards))
    assert checksum(boards) != checksum({**boards, "extra.json": "{}"})


def test_the_shipped_dashboards_follow_grafanas_dashboard_model():
    boards = dashboards()
    assert sorted(boards) == ["mlops-platform.json", "mlops-team.json"]
    for name, text in boards.items():
        assert m.dashboard_errors(name, json.loads(text)) == []
        assert len(m.dashboard_expressions(json.loads(text))) >= 8


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda d: d["panels"][1].update(id=d["panels"][0]["id"]), "unique integer 'id'"),
    (lambda d: d["panels"][0]["gridPos"].update(x=20, w=8), "24 columns"),
    (lambda d: d["panels"][0].update(type="graph-v9"), "not a built-in panel type"),
    (lambda d: d["panels"][0]["targets"][0].update(expr=""), "needs a PromQL 'expr'"),
    (lambda d: d["panels"][0]["targets"].append(dict(d["panels"][0]["targets"][0])), "unique 'refId'"),
    (lambda d: d["panels"][0]["targets"][0].update(expr="up{namespace=\"$nope\"}"), "$nope, which is not a dashboard variable"),
    (lambda d: d.update(uid="x" * 41), "uid"),
    (lambda d: d.update(id=7), "'id' must be null"),
    (lambda d: d.pop("schemaVersion"), "'schemaVersion' must be a int"),
    (lambda d: d["templating"]["list"][0].update(type="magic"), "type 'magic'"),
])
def test_dashboard_model_violations_are_named(mutate, expected):
    board = json.loads((DASHBOARDS / "mlops-team.json").read_text())
    mutate(board)
    errors = m.dashboard_errors("mlops-team.json", board)
    assert any(expected in e for e in errors), errors


def test_extra_dashboards_are_added_and_checked():
    boards = m.read_dashboards(str(DASHBOARDS), {"custom": {"title": "x"}})
    assert "custom.json" in boards
    assert any("dashboard custom.json: 'uid' must be a str" in p for p in m.problems(settings(install="helm"), "", boards))


def test_the_role_pins_what_upstream_sh_fetches_and_builds():
    """make setup fetches the CRDs with upstream.sh's defaults: the role must ask for the same release,
    and its Prometheus image must be the release promtool and the test server are built from."""
    import re
    import subprocess

    import yaml

    env = dict(line.split("=", 1) for line in subprocess.run(
        [str(ROOT / "roles/monitoring/files/upstream.sh"), "env"], capture_output=True, text=True, check=True).stdout.split())
    defaults = yaml.safe_load((ROOT / "roles/monitoring/defaults/main.yml").read_text())
    assert defaults["monitoring_operator_version"] == env["PROMETHEUS_OPERATOR_VERSION"]
    minor = re.match(r"^v0\.3(\d\d)\.(\d+)$", env["PROMETHEUS_MODULE_VERSION"])
    assert defaults["monitoring_prometheus_image"].endswith(f":v3.{int(minor.group(1))}.{minor.group(2)}")
