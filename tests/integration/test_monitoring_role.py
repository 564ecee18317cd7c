"""The monitoring role converged alone against the offline cluster, everything read back from the API server.

The real CRDs of the pinned prometheus-operator module are applied by the role; every custom resource
it renders (Prometheus, Alertmanager, ServiceMonitors, PodMonitors, PrometheusRule) is validated by
the API server against those schemas, also in an explicit server-side dry run; a second converge
changes nothing; check mode reports a changed threshold without writing it; a rule the schema
refuses is refused. The role works in its own namespaces, so the local platform's are untouched.
"""

from __future__ import annotations

import base64
import json
import pathlib
import time

import pytest
import yaml
from ansible_run import recap, run_role
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster

NS, APPS, TEAM = "it-monitoring", "it-monitoring-apps", "it-monitoring-team"
GROUP, VERSION = "monitoring.coreos.com", "v1"


@pytest.fixture(scope="module")
def namespaces(api_client):
    core = client.CoreV1Api(api_client)
    for name in (APPS, TEAM):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield
    for name in (NS, APPS, TEAM):
        try:
            core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
    rbac = client.RbacAuthorizationV1Api(api_client)
    for name in ("prometheus-operator", "prometheus", "kube-state-metrics"):
        for delete in (rbac.delete_cluster_role, rbac.delete_cluster_role_binding):
            try:
                delete(f"mlops-{NS}-{name}")
            except ApiException as exc:
                if exc.status != 404:
                    raise


def role_vars(kubeconfig: str, render_dir: pathlib.Path, **overrides) -> dict:
    variables = {
        "monitoring_kubeconfig": kubeconfig,
        "monitoring_namespace": NS,
        "monitoring_environment": "it",
        "monitoring_teams": [{"name": TEAM, "serving": True}],
        "monitoring_mlflow": {"enabled": True, "namespace": APPS, "service": "mlflow", "port": "http", "path": "/metrics",
                              "basic_auth_secret": "mlflow-server"},
        "monitoring_minio": {"enabled": True, "namespace": APPS, "service": "minio", "port": "api",
                             "path": "/minio/v2/metrics/cluster", "job_prefix": "minio-buckets-"},
        "monitoring_postgres_exporter": {"enabled": True, "image": "quay.io/prometheuscommunity/postgres-exporter:v0.18.1",
                                         "namespace": APPS, "database_secret": "mlflow-database-secret", "sslmode": "disable",
                                         "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                                                       "limits": {"cpu": "50m", "memory": "32Mi"}}},
        "monitoring_wait_timeout": 120,
        "mlops_render_dir": str(render_dir),
    }
    variables.update(overrides)
    return variables


def custom(api_client, kind_plural: str, namespace: str) -> list[dict]:
    return client.CustomObjectsApi(api_client).list_namespaced_custom_object(GROUP, VERSION, namespace, kind_plural)["items"]


def rendered_objects(render_dir: pathlib.Path) -> list[dict]:
    objects = []
    for path in sorted(render_dir.glob("*monitoring*.yaml")):
        objects += [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert objects, f"nothing was recorded in {render_dir}"
    return objects


def test_monitoring_role_converges_idempotently_and_the_api_server_accepts_every_custom_resource(
        tmp_path, kubeconfig, api_client, namespaces):
    render_dir = tmp_path / "rendered"
    render_dir.mkdir()
    first = run_role("mlops.platform.monitoring", tmp_path, role_vars(kubeconfig, render_dir))
    assert first.returncode == 0, first.stdout[-5000:]
    assert recap(first.stdout)["changed"] >= 1
    # Grafana's admin Secret comes from the secrets role, which has not run: the role says so and does not wait.
    assert f"Grafana waits for the Secret {NS}/grafana-admin" in first.stdout

    core = client.CoreV1Api(api_client)
    core.create_namespaced_secret(NS, client.V1Secret(
        metadata=client.V1ObjectMeta(name="grafana-admin"), type="Opaque",
        data={"admin-user": base64.b64encode(b"admin").decode(),
              "admin-password": base64.b64encode(b"it-grafana-password").decode()}))

    # The real CRDs, from the pinned module, are established; every rendered custom resource is stored.
    ext = client.ApiextensionsV1Api(api_client)
    crds = [c for c in ext.list_custom_resource_definition().items if c.spec.group == GROUP]
    assert len(crds) == 10
    for crd in crds:
        assert crd.metadata.labels["app.kubernetes.io/managed-by"] == "mlops.platform"
        assert crd.metadata.annotations["operator.prometheus.io/version"] == "0.93.0"
    prometheus = custom(api_client, "prometheuses", NS)
    assert [p["metadata"]["name"] for p in prometheus] == ["prometheus"]
    assert prometheus[0]["spec"]["ruleSelector"] == {"matchLabels": {"app.kubernetes.io/part-of": "mlops-platform"}}
    assert prometheus[0]["spec"]["externalLabels"] == {"environment": "it"}
    rules = custom(api_client, "prometheusrules", NS)
    alerts = [r["alert"] for g in rules[0]["spec"]["groups"] for r in g["rules"]]
    assert alerts.count("TeamQuotaHigh") == 2 and "SeldonSeldonRuntimeNotReady" in alerts and "MLflowDown" in alerts
    assert sorted(m["metadata"]["name"] for m in custom(api_client, "podmonitors", TEAM)) == [
        "seldon-agent", "seldon-pipelinegateway", "seldon-server"]
    assert [m["metadata"]["name"] for m in custom(api_client, "servicemonitors", TEAM)] == ["seldon-envoy"]

    # Second converge: Grafana's Secret is there, so the role waits until the workloads are ready, and changes nothing.
    second = run_role("mlops.platform.monitoring", tmp_path, role_vars(kubeconfig, render_dir))
    assert second.returncode == 0, second.stdout[-5000:]
    assert recap(second.stdout)["changed"] == 0, second.stdout[-5000:]
    apps = client.AppsV1Api(api_client)
    for namespace, name in ((NS, "prometheus-operator"), (NS, "grafana"), (NS, "kube-state-metrics"),
                            (APPS, "mlflow-postgresql-exporter")):
        deployment = apps.read_namespaced_deployment(name, namespace)
        assert deployment.status.ready_replicas == 1, (namespace, name, deployment.status)

    # An explicit server-side dry run of every custom resource the role sent: the API server validates
    # each against the upstream schema (and would refuse it, see below).
    checked = 0
    for obj in rendered_objects(render_dir):
        if obj["apiVersion"] != f"{GROUP}/{VERSION}":
            continue
        plural = {"Prometheus": "prometheuses", "Alertmanager": "alertmanagers", "ServiceMonitor": "servicemonitors",
                  "PodMonitor": "podmonitors", "PrometheusRule": "prometheusrules"}[obj["kind"]]
        client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
            GROUP, VERSION, obj["metadata"]["namespace"], plural, obj["metadata"]["name"], obj,
            field_manager="mlops.platform", force=True, dry_run="All", _content_type="application/apply-patch+yaml")
        checked += 1
    assert checked >= 15, checked

    # The validation can refuse: a PrometheusRule whose `for` is not a duration.
    rule = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PrometheusRule", "metadata": {"name": "it-bad", "namespace": APPS},
            "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0", "for": "5 minutes"}]}]}}
    with pytest.raises(ApiException) as refused:
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(GROUP, VERSION, APPS, "prometheusrules", rule,
                                                                            dry_run="All")
    assert refused.value.status == 422
    assert "for" in json.loads(refused.value.body)["message"]


def test_check_mode_reports_a_changed_threshold_without_writing_it(tmp_path, kubeconfig, api_client, namespaces):
    render_dir = tmp_path / "rendered"
    render_dir.mkdir()
    converged = run_role("mlops.platform.monitoring", tmp_path, role_vars(kubeconfig, render_dir))
    assert converged.returncode == 0, converged.stdout[-4000:]
    before = custom(api_client, "prometheusrules", NS)[0]
    changed = role_vars(kubeconfig, render_dir, monitoring_quota_thresholds={"warning": 0.7, "critical": 0.9})
    check = run_role("mlops.platform.monitoring", tmp_path, changed, "--check", "--diff")
    assert check.returncode == 0, check.stdout[-4000:]
    assert f"updated PrometheusRule/{NS}/mlops-platform-alerts" in check.stdout, check.stdout[-6000:]
    assert ">= 0.7" in check.stdout  # the diff shows the new threshold
    after = custom(api_client, "prometheusrules", NS)[0]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_a_large_crd_changed_by_hand_is_repaired(tmp_path, kubeconfig, api_client, namespaces):
    """Large CRDs are not dry-run when the server's copy carries the digest of what was applied and still
    holds every field: a field changed by hand fails that test, so the converge repairs it."""
    converged = run_role("mlops.platform.monitoring", tmp_path, role_vars(kubeconfig, tmp_path))
    assert converged.returncode == 0, converged.stdout[-4000:]
    ext = client.ApiextensionsV1Api(api_client)
    name = "prometheuses.monitoring.coreos.com"
    original = ext.read_custom_resource_definition(name).spec.versions[0].schema.open_apiv3_schema.description
    assert ext.read_custom_resource_definition(name).metadata.annotations["mlops.platform/applied-digest"]
    ext.patch_custom_resource_definition(
        name, [{"op": "replace", "path": "/spec/versions/0/schema/openAPIV3Schema/description", "value": "edited by hand"}],
        _content_type="application/json-patch+json")
    repaired = run_role("mlops.platform.monitoring", tmp_path, role_vars(kubeconfig, tmp_path))
    assert repaired.returncode == 0, repaired.stdout[-4000:]
    assert f"updated CustomResourceDefinition/{name}" in repaired.stdout
    assert ext.read_custom_resource_definition(name).spec.versions[0].schema.open_apiv3_schema.description == original
    again = run_role("mlops.platform.monitoring", tmp_path, role_vars(kubeconfig, tmp_path))
    assert recap(again.stdout)["changed"] == 0, again.stdout[-3000:]


def test_bad_thresholds_fail_before_any_change(tmp_path, kubeconfig, api_client, namespaces):
    bad = role_vars(kubeconfig, tmp_path, monitoring_quota_thresholds={"warning": 0.95, "critical": 0.8},
                    monitoring_namespace="it-monitoring-never")
    run = run_role("mlops.platform.monitoring", tmp_path, bad)
    assert run.returncode != 0
    assert "monitoring_quota_thresholds: need 0 < warning < critical <= 1" in run.stdout
    assert "nothing was changed" in run.stdout
    with pytest.raises(ApiException) as missing:
        client.CoreV1Api(api_client).read_namespace("it-monitoring-never")
    assert missing.value.status == 404


def test_the_real_prometheus_operator_reconciles_what_the_role_applied(tmp_path, kubeconfig, api_client, namespaces):
    """The operator built from the pinned module runs as a process against the offline cluster: it accepts
    the role's Prometheus and Alertmanager (StatefulSets that KWOK runs, status Available), generates a
    scrape job for every monitor (MLflow's with basic auth) and mounts the role's rules."""
    import gzip
    import subprocess

    from monitoring_tools import tool
    from servers import free_port, stop

    operator = tool("operator")
    converged = run_role("mlops.platform.monitoring", tmp_path, role_vars(kubeconfig, tmp_path))
    assert converged.returncode == 0, converged.stdout[-4000:]
    reloader = yaml.safe_load((pathlib.Path(__file__).resolve().parents[2] / "roles/monitoring/defaults/main.yml").read_text())[
        "monitoring_config_reloader_image"].replace("{{ monitoring_operator_version }}", "v0.93.0")
    # The operator only generates MLflow's job when the basic-auth Secret it names exists (the mlflow
    # role creates it on the platform): without it the ServiceMonitor is rejected.
    try:
        client.CoreV1Api(api_client).create_namespaced_secret(APPS, client.V1Secret(
            metadata=client.V1ObjectMeta(name="mlflow-server"), type="Opaque",
            data={"MLFLOW_AUTH_ADMIN_USERNAME": base64.b64encode(b"mlflow").decode(),
                  "MLFLOW_AUTH_ADMIN_PASSWORD": base64.b64encode(b"it-mlflow-password").decode()}))
    except ApiException as exc:
        if exc.status != 409:
            raise
    log = (tmp_path / "operator.log").open("w")
    proc = subprocess.Popen([str(operator), f"--namespaces={NS},{APPS},{TEAM}", f"--prometheus-config-reloader={reloader}",
                             f"--web.listen-address=127.0.0.1:{free_port()}", "--log-format=logfmt"],
                            env={"KUBECONFIG": kubeconfig, "PATH": "/usr/bin:/bin"}, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            status = {kind: {c["type"]: c["status"] for c in (custom(api_client, plural, NS)[0].get("status") or {}).get("conditions", [])}
                      for kind, plural in (("Prometheus", "prometheuses"), ("Alertmanager", "alertmanagers"))}
            if all(s.get("Available") == "True" and s.get("Reconciled") == "True" for s in status.values()):
                break
            assert proc.poll() is None, (tmp_path / "operator.log").read_text()[-3000:]
            assert time.monotonic() < deadline, f"not reconciled: {status}\n" + (tmp_path / "operator.log").read_text()[-3000:]
            time.sleep(1)

        apps = client.AppsV1Api(api_client)
        sts = apps.read_namespaced_stateful_set("prometheus-prometheus", NS)
        assert sts.status.ready_replicas == 1
        containers = {c.name: c.image for c in sts.spec.template.spec.containers}
        assert containers["prometheus"] == custom(api_client, "prometheuses", NS)[0]["spec"]["image"]
        # The NetworkPolicy the role puts in serving namespaces admits these pods: its selector matches them.
        policy = client.NetworkingV1Api(api_client).read_namespaced_network_policy("mlops-allow-prometheus", TEAM)
        selector = policy.spec.ingress[0]._from[0].pod_selector.match_labels
        assert selector.items() <= sts.spec.template.metadata.labels.items(), (selector, sts.spec.template.metadata.labels)
        assert apps.read_namespaced_stateful_set("alertmanager-alertmanager", NS).status.ready_replicas == 1

        secret = client.CoreV1Api(api_client).read_namespaced_secret("prometheus-prometheus", NS)
        config = yaml.safe_load(gzip.decompress(base64.b64decode(secret.data["prometheus.yaml.gz"])))
        jobs = {j["job_name"]: j for j in config["scrape_configs"]}
        for expected in (f"serviceMonitor/{APPS}/mlflow/0", f"serviceMonitor/{APPS}/minio/0",
                         f"serviceMonitor/{APPS}/mlflow-postgresql-exporter/0", f"serviceMonitor/{NS}/kube-state-metrics/0",
                         f"podMonitor/{TEAM}/seldon-agent/0", f"podMonitor/{TEAM}/seldon-server/0",
                         f"serviceMonitor/{TEAM}/seldon-envoy/0"):
            assert expected in jobs, sorted(jobs)
        assert jobs[f"serviceMonitor/{APPS}/mlflow/0"]["basic_auth"]["username"] == "mlflow"  # from the MLflow server Secret
        rule_files = client.CoreV1Api(api_client).read_namespaced_config_map("prometheus-prometheus-rulefiles-0", NS).data
        groups = [g["name"] for text in rule_files.values() for g in yaml.safe_load(text)["groups"]]
        assert groups[:2] == ["mlops-platform.quotas", "mlops-platform.seldon"], groups
    finally:
        stop(proc)
        log.close()
