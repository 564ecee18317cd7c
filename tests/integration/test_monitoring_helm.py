"""The monitoring role's Helm path (monitoring_install: helm) on the offline cluster, air-gapped.

kube-prometheus-stack cannot be downloaded here, so the test packages a chart of our own with the
real chart's name and the pinned version: its crds/ are the upstream CRDs the platform layer needs
(ServiceMonitor, PodMonitor, PrometheusRule, as the real chart ships them; all ten would not fit
Helm's 1 MiB release Secret in a chart this simple), and its one template records its values. The
role installs it from the archive with the helm that scripts/helm.sh builds, then applies the
platform layer (monitors, rules, dashboards) in one call. Read back from the API server and helm.
"""

from __future__ import annotations

import json
import pathlib
import subprocess

import pytest
import yaml
from ansible_collections.mlops.platform.plugins.module_utils import monitoring
from ansible_run import recap, run_role
from kubernetes import client
from kubernetes.client.rest import ApiException
from monitoring_tools import UPSTREAM

pytestmark = pytest.mark.cluster

ROOT = pathlib.Path(__file__).resolve().parents[2]
NS, TEAM = "it-monitoring-helm", "it-monitoring-helm-team"
VERSION = yaml.safe_load((ROOT / "roles/monitoring/defaults/main.yml").read_text())["monitoring_chart_version"]
RECORD = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Chart.Name }}-values
data:
  chart: "{{ .Chart.Name }}-{{ .Chart.Version }}"
  values: {{ toJson .Values | quote }}
"""


def package(helm: str, workdir: pathlib.Path, version: str) -> pathlib.Path:
    chart = workdir / "kube-prometheus-stack"
    (chart / "templates").mkdir(parents=True)
    (chart / "crds").mkdir()
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: kube-prometheus-stack\nversion: {version}\n")
    (chart / "values.yaml").write_text("{}\n")
    (chart / "templates" / "record.yaml").write_text(RECORD)
    rules_file = subprocess.run([str(UPSTREAM), "path", "crds"], capture_output=True, text=True, check=True).stdout.strip()
    for crd in json.loads(pathlib.Path(monitoring.crd_list_file(rules_file)).read_text())["items"]:
        if crd["spec"]["names"]["kind"] in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
            (chart / "crds" / f"{crd['metadata']['name']}.yaml").write_text(yaml.safe_dump(crd))
    dest = workdir / "dist"
    subprocess.run([helm, "package", str(chart), "--destination", str(dest)], check=True, capture_output=True)
    return dest / f"kube-prometheus-stack-{version}.tgz"


@pytest.fixture(scope="module")
def archive(helm, tmp_path_factory) -> pathlib.Path:
    return package(helm, tmp_path_factory.mktemp("kps"), VERSION)


@pytest.fixture(scope="module")
def team(api_client):
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=TEAM)))
    yield
    for name in (NS, TEAM):
        try:
            core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def role_vars(kubeconfig: str, helm: str, archive: pathlib.Path, **overrides) -> dict:
    return {"monitoring_install": "helm", "monitoring_kubeconfig": kubeconfig, "monitoring_namespace": NS,
            "monitoring_chart_archive": str(archive), "monitoring_helm_binary": helm, "monitoring_helm_timeout": "2m",
            "monitoring_environment": "it-helm", "monitoring_teams": [{"name": TEAM, "serving": True}],
            "monitoring_mlflow": {"enabled": False}, "monitoring_minio": {"enabled": False},
            "monitoring_postgres_exporter": {"enabled": False}, **overrides}


def test_air_gapped_kube_prometheus_stack_then_the_platform_layer(helm, archive, team, kubeconfig, api_client, tmp_path):
    first = run_role("mlops.platform.monitoring", tmp_path, role_vars(kubeconfig, helm, archive))
    assert first.returncode == 0, first.stdout[-5000:]
    assert recap(first.stdout)["changed"] >= 2

    record = client.CoreV1Api(api_client).read_namespaced_config_map("kube-prometheus-stack-values", NS).data
    assert record["chart"] == f"kube-prometheus-stack-{VERSION}"
    values = json.loads(record["values"])
    # The chart selects the platform layer, takes Grafana's credentials from the secrets role's Secret,
    # and exports Seldon's custom resources and the teams' namespace label.
    selector = {"matchLabels": {"app.kubernetes.io/part-of": "mlops-platform"}}
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["ruleSelector"] == spec["serviceMonitorSelector"] == spec["podMonitorSelector"] == selector
    assert spec["externalLabels"] == {"environment": "it-helm"}
    assert values["grafana"]["admin"]["existingSecret"] == "grafana-admin"
    assert values["grafana"]["sidecar"]["dashboards"]["label"] == "grafana_dashboard"
    assert values["kube-state-metrics"]["metricLabelsAllowlist"] == ["namespaces=[mlops.platform/team]"]
    assert values["kube-state-metrics"]["customResourceState"]["enabled"] is True

    # The chart's CRDs serve the platform layer the role applied after Helm.
    objects = client.CustomObjectsApi(api_client)
    rules = objects.list_namespaced_custom_object("monitoring.coreos.com", "v1", NS, "prometheusrules")["items"]
    assert [r["metadata"]["name"] for r in rules] == ["mlops-platform-alerts"]
    monitors = objects.list_namespaced_custom_object("monitoring.coreos.com", "v1", TEAM, "podmonitors")["items"]
    assert sorted(m["metadata"]["name"] for m in monitors) == ["seldon-agent", "seldon-pipelinegateway", "seldon-server"]
    dashboards = client.CoreV1Api(api_client).read_namespaced_config_map("grafana-dashboards-mlops", NS)
    assert dashboards.metadata.labels["grafana_dashboard"] == "1"
    # The stack itself came from the chart: the role applied none of it.
    assert client.AppsV1Api(api_client).list_namespaced_deployment(NS).items == []

    second = run_role("mlops.platform.monitoring", tmp_path, role_vars(kubeconfig, helm, archive))
    assert second.returncode == 0, second.stdout[-5000:]
    assert recap(second.stdout)["changed"] == 0, second.stdout[-5000:]
    listed = subprocess.run([helm, "list", "-n", NS, "-o", "json", "--kubeconfig", kubeconfig],
                            capture_output=True, text=True, check=True)
    assert [(r["name"], r["revision"], r["status"]) for r in json.loads(listed.stdout)] == [
        ("kube-prometheus-stack", "1", "deployed")]


def test_an_archive_of_another_version_is_refused_before_helm_runs(helm, team, kubeconfig, api_client, tmp_path):
    other = package(helm, tmp_path / "other", "1.0.0")
    run = run_role("mlops.platform.monitoring", tmp_path, role_vars(kubeconfig, helm, other, monitoring_namespace="it-never"))
    assert run.returncode != 0
    assert f"is missing or is not the {VERSION} chart" in run.stdout
    with pytest.raises(ApiException) as missing:
        client.CoreV1Api(api_client).read_namespace("it-never")
    assert missing.value.status == 404
