# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The monitoring role's objects, alert rules and dashboards, rendered in one place.

Two layers, so a cluster that installs kube-prometheus-stack with Helm and one that cannot
reach a chart get the same platform monitoring:

- ``stack_objects``: what the chart would install, for clusters without it: the Prometheus
  Operator with its ClusterRole rules (read from the pinned upstream module's own files, never
  written here, like its CRDs, which the apply task reads as a List file), the operator, a ``Prometheus``, an ``Alertmanager``, Grafana with its
  datasource and dashboards provisioned from files, and kube-state-metrics (with the custom
  resource metrics of Seldon's runtimes, servers and models).
- ``platform_objects``: what this platform adds in both cases: ServiceMonitors/PodMonitors for
  MLflow, MinIO, the PostgreSQL exporter and the Seldon components of every serving namespace
  (with a NetworkPolicy letting Prometheus through the teams' default deny), the PostgreSQL
  exporter itself, the ``PrometheusRule`` of ``alert_groups`` and the dashboards' ConfigMap.

``alert_groups`` are the rule groups (the ``PrometheusRule`` spec, and what ``promtool check
rules`` and ``promtool test rules`` read); ``settings_errors`` checks the settings before
anything is rendered; ``dashboard_errors`` checks a dashboard against Grafana's dashboard JSON
model; ``dashboard_expressions`` lists every PromQL expression of a dashboard.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.mlops.platform.plugins.module_utils.quantity import size_errors

MANAGED = {"app.kubernetes.io/managed-by": "mlops.platform", "app.kubernetes.io/part-of": "mlops-platform"}
COMPONENT = "monitoring"
# What the Prometheus selects: every ServiceMonitor, PodMonitor and PrometheusRule of the platform.
SELECTOR = {"app.kubernetes.io/part-of": "mlops-platform"}
TEAM_LABEL = "mlops.platform/team"
# kube-state-metrics' name for the namespace label above (non-alphanumerics become underscores).
TEAM_METRIC_LABEL = "label_" + re.sub(r"[^a-zA-Z0-9_]", "_", TEAM_LABEL)
OPERATOR_API = "monitoring.coreos.com/v1"
DASHBOARD_LABEL = "grafana_dashboard"
DURATION = re.compile(r"^(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
PINNED_IMAGE = re.compile(r"^[^\s]+:[^\s:/]+$")

_POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
_CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                       "readOnlyRootFilesystem": True}

# The Seldon Core v2 components' metrics (Seldon's own monitors: prometheus/monitors/*.yaml).
SELDON_MONITORS = (
    # (name, kind, selector labels, port, path)
    ("seldon-agent", "PodMonitor", {"app": "seldon-server"}, "metrics", "/metrics"),
    ("seldon-server", "PodMonitor", {"app": "seldon-server"}, "server-metrics", "/metrics"),
    ("seldon-pipelinegateway", "PodMonitor", {"app.kubernetes.io/name": "seldon-pipelinegateway"}, "metrics", "/metrics"),
    ("seldon-envoy", "ServiceMonitor", {"app": "seldon-mesh"}, "admin", "/stats/prometheus"),
)
SELDON_GVK = {"group": "mlops.seldon.io", "version": "v1alpha1"}
SELDON_KINDS = (("SeldonRuntime", "runtime", "seldonruntimes"), ("Server", "server", "servers"), ("Model", "model", "models"))
# The resources kube-state-metrics exposes (and may list): what the rules and dashboards read.
KSM_RESOURCES = {
    "": ("namespaces", "pods", "resourcequotas", "persistentvolumeclaims", "services"),
    "apps": ("deployments", "statefulsets"),
    "batch": ("jobs",),
}


def labels(name: str, **extra: str) -> dict[str, str]:
    return {**MANAGED, "app.kubernetes.io/name": name, "app.kubernetes.io/component": COMPONENT, **extra}


def _selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": COMPONENT}


def _meta(name: str, namespace: str | None = None, **extra_labels: str) -> dict:
    meta: dict[str, Any] = {"name": name, "labels": labels(name, **extra_labels)}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _fmt(value: float) -> str:
    """A threshold as PromQL writes it: 0.8, not 0.80000000000000004."""
    return format(float(value), "g")


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------
def _duration_errors(where: str, value: Any, allow_zero: bool = True) -> list[str]:
    text = str(value)
    if not text or not DURATION.match(text) or (not allow_zero and not re.search(r"[1-9]", text)):
        return [f"{where}: '{text}' is not a Prometheus duration (e.g. 30s, 5m, 1h30m)"]
    return []


def _threshold_errors(quota: Any) -> list[str]:
    quota = quota if isinstance(quota, Mapping) else {}
    try:
        warning, critical = float(quota.get("warning")), float(quota.get("critical"))
    except (TypeError, ValueError):
        return [f"monitoring_quota_thresholds: warning and critical must be numbers between 0 and 1 "
                f"(got {quota.get('warning')!r}, {quota.get('critical')!r}). Fix: e.g. {{warning: 0.8, critical: 0.95}}"]
    if not 0 < warning < critical <= 1:
        return [f"monitoring_quota_thresholds: need 0 < warning < critical <= 1 (fractions of the quota, 0.8 is 80%); "
                f"got warning {quota.get('warning')}, critical {quota.get('critical')}. Fix: e.g. {{warning: 0.8, critical: 0.95}}"]
    return []


ALERT_FOR_KEYS = ("quota", "seldon", "mlflow", "database", "minio", "bucket")


def _alert_for_errors(durations: Any) -> list[str]:
    durations = durations if isinstance(durations, Mapping) else {}
    errors = [f"monitoring_alert_for.{key}: missing (a Prometheus duration, e.g. 5m; 0m fires at once)"
              for key in ALERT_FOR_KEYS if key not in durations]
    errors += [f"monitoring_alert_for.{key}: unknown (known: {', '.join(ALERT_FOR_KEYS)})"
               for key in sorted(set(durations) - set(ALERT_FOR_KEYS))]
    for key in ALERT_FOR_KEYS:
        if key in durations:
            errors += _duration_errors(f"monitoring_alert_for.{key}", durations[key])
    return errors


def variable_errors(values: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> list[str]:
    """The checks of the role's variables that its argument spec cannot express (ranges, durations,
    names, sizes), run by mlops.platform.validate_roles with the other roles' specs, before anything
    changes (``context``, the other roles' values, is not needed here)."""
    errors: list[str] = []
    if "monitoring_namespace" in values and not DNS_LABEL.match(str(values["monitoring_namespace"])):
        errors.append(f"monitoring_namespace: {values['monitoring_namespace']!r} is not a DNS-1123 label. "
                      "Fix: use lower-case letters, digits and '-', e.g. monitoring")
    errors += size_errors("monitoring_prometheus_storage_size", values.get("monitoring_prometheus_storage_size"), allow_empty=True)
    if "monitoring_quota_thresholds" in values:
        errors += _threshold_errors(values["monitoring_quota_thresholds"])
    if "monitoring_alert_for" in values:
        errors += _alert_for_errors(values["monitoring_alert_for"])
    for key in ("scrape_interval", "evaluation_interval", "retention"):
        name = f"monitoring_prometheus_{key}"
        if name in values:
            errors += _duration_errors(name, values[name], allow_zero=False)
    return errors


def settings_errors(s: Mapping[str, Any]) -> list[str]:
    """Every problem of the settings at once, each naming the variable and the fix."""
    prom = s.get("prometheus", {})
    alerts = s.get("alerts", {})
    errors = variable_errors({"monitoring_quota_thresholds": alerts.get("quota"), "monitoring_alert_for": alerts.get("for"),
                              "monitoring_namespace": s.get("namespace", ""),
                              "monitoring_prometheus_storage_size": prom.get("storage_size"),
                              **{f"monitoring_prometheus_{k}": prom.get(k, "")
                                 for k in ("scrape_interval", "evaluation_interval", "retention")}})
    if s.get("install") not in ("objects", "helm"):
        errors.append(f"monitoring_install: '{s.get('install')}' must be objects or helm")
    for part in ("prometheus", "alertmanager", "grafana"):
        if int(s.get(part, {}).get("replicas", 1)) < 1:
            errors.append(f"monitoring_{part}_replicas: must be at least 1")
    if s.get("install") == "objects":
        for part in ("operator", "prometheus", "alertmanager", "grafana", "kube_state_metrics", "config_reloader"):
            image = str(s.get(part, {}).get("image", ""))
            if not PINNED_IMAGE.match(image):
                errors.append(f"monitoring_{part}_image: '{image}' must carry a pinned tag")
    exporter = s.get("postgres_exporter", {})
    if exporter.get("enabled") and not PINNED_IMAGE.match(str(exporter.get("image", ""))):
        errors.append(f"monitoring_postgres_exporter.image: '{exporter.get('image')}' must carry a pinned tag")
    minio = s.get("targets", {}).get("minio", {})
    if minio.get("enabled") and not re.match(r"^[a-z0-9][-a-z0-9]*$", str(minio.get("job_prefix", ""))):
        errors.append(f"monitoring_minio.job_prefix: '{minio.get('job_prefix')}' must be the start of a Job name "
                      "(lowercase letters, digits and '-'), e.g. minio-buckets-")
    for namespace in s.get("targets", {}).get("seldon_namespaces", []):
        if not DNS_LABEL.match(str(namespace)):
            errors.append(f"monitoring serving namespace '{namespace}' is not a DNS-1123 label (teams: fix the team's namespaces)")
    return errors


# --------------------------------------------------------------------------------------------
# Alert rules
# --------------------------------------------------------------------------------------------
def _quota_ratio() -> str:
    # used / hard per quota and resource, for the namespaces of a team only, with the team as a label.
    team = TEAM_METRIC_LABEL
    return (
        f'label_replace(max by (namespace, resource, resourcequota, {team}) ('
        '(kube_resourcequota{type="used"} / ignoring(type) (kube_resourcequota{type="hard"} > 0))'
        f' * on (namespace) group_left ({team}) max by (namespace, {team}) (kube_namespace_labels{{{team}!=""}})'
        f'), "team", "$1", "{team}", "(.*)")'
    )


def _alert(name: str, expr: str, duration: str, severity: str, summary: str, description: str, **labels_: str) -> dict:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if duration and re.search(r"[1-9]", duration):
        rule["for"] = duration
    rule["labels"] = {"severity": severity, "platform": "mlops-platform", **labels_}
    rule["annotations"] = {"summary": summary, "description": description}
    return rule


def alert_groups(s: Mapping[str, Any]) -> list[dict]:
    """The rule groups of the platform's PrometheusRule (what promtool reads as a rules file)."""
    alerts, targets = s["alerts"], s["targets"]
    quota, durations = alerts["quota"], alerts["for"]
    ratio = _quota_ratio()
    quota_rules = []
    for severity in ("warning", "critical"):
        threshold = _fmt(quota[severity])
        quota_rules.append(_alert(
            "TeamQuotaHigh", f"{ratio} >= {threshold}", durations["quota"], severity,
            "Team {{ $labels.team }} uses {{ $value | humanizePercentage }} of its {{ $labels.resource }} quota",
            "Namespace {{ $labels.namespace }} (team {{ $labels.team }}) uses {{ $value | humanizePercentage }} of "
            f"{{{{ $labels.resource }}}} in ResourceQuota {{{{ $labels.resourcequota }}}} (alerting at {_fmt(quota[severity] * 100)}%). "
            "New pods (model servers, training jobs) will be rejected at admission once it is full: "
            "raise the team's quota in the inventory or scale something down.",
        ))
    groups = [{"name": "mlops-platform.quotas", "rules": quota_rules}]

    seldon_rules = []
    for kind, short, _plural in SELDON_KINDS[:2]:
        metric = f"mlops_seldon_{short}"
        seldon_rules.append(_alert(
            f"Seldon{kind}NotReady",
            f'{metric}_info unless on (namespace, name) ({metric}_condition{{type="Ready"}} == 1)',
            durations["seldon"], "critical" if short == "runtime" else "warning",
            f"{kind} {{{{ $labels.namespace }}}}/{{{{ $labels.name }}}} is not ready",
            f"The {kind} {{{{ $labels.name }}}} in {{{{ $labels.namespace }}}} has not reported Ready=True for "
            f"{durations['seldon']}: models in this namespace cannot be served. Check its status conditions and the "
            "namespace's quota events.",
        ))
    groups.append({"name": "mlops-platform.seldon", "rules": seldon_rules})

    mlflow = targets["mlflow"]
    mlflow_rules = []
    if mlflow["enabled"]:
        selector = f'job="{mlflow["service"]}", namespace="{mlflow["namespace"]}"'
        mlflow_rules.append(_alert(
            "MLflowDown", f"absent(up{{{selector}}} == 1)", durations["mlflow"], "critical",
            "The MLflow tracking server is down",
            f"No MLflow target in {mlflow['namespace']} has answered a scrape for {durations['mlflow']}: "
            "training runs cannot log and models cannot be registered.",
            namespace=mlflow["namespace"],
        ))
    exporter = s["postgres_exporter"]
    if exporter["enabled"]:
        selector = f'job="{exporter["name"]}", namespace="{exporter["namespace"]}"'
        mlflow_rules.append(_alert(
            "MLflowDatabaseUnreachable", f"max by (namespace) (pg_up{{{selector}}}) == 0", durations["database"],
            "critical", "The MLflow database is unreachable",
            f"The PostgreSQL exporter in {exporter['namespace']} cannot reach the MLflow database: the tracking "
            "server fails every request that needs it.",
        ))
        mlflow_rules.append(_alert(
            "MLflowDatabaseExporterDown", f"absent(up{{{selector}}} == 1)", durations["mlflow"], "warning",
            "The MLflow database exporter is down",
            "Nothing scrapes the MLflow database's health: MLflowDatabaseUnreachable cannot fire.",
            namespace=exporter["namespace"],
        ))
    if mlflow_rules:
        groups.append({"name": "mlops-platform.mlflow", "rules": mlflow_rules})

    minio = targets["minio"]
    if minio["enabled"]:
        groups.append({"name": "mlops-platform.storage", "rules": [
            _alert(
                "MinIOBucketProvisioningFailed",
                f'max by (namespace, job_name) (kube_job_status_failed{{namespace="{minio["namespace"]}", '
                f'job_name=~"{minio["job_prefix"]}.*"}}) > 0',
                durations["bucket"], "critical",
                "MinIO bucket provisioning failed",
                "The bucket-provisioning Job {{ $labels.job_name }} failed: the platform's buckets (MLflow artifacts, "
                "team prefixes) may be missing. Read the Job's logs and converge again.",
            ),
            _alert(
                "MinIODown", f'absent(up{{job="{minio["service"]}", namespace="{minio["namespace"]}"}} == 1)',
                durations["minio"], "critical", "MinIO is down",
                f"No MinIO target in {minio['namespace']} has answered a scrape for {durations['minio']}: artifacts "
                "and training data cannot be read or written.",
                namespace=minio["namespace"],
            ),
        ]})
    return groups


# --------------------------------------------------------------------------------------------
# Dashboards
# --------------------------------------------------------------------------------------------
# Panel types of Grafana's built-in panel plugins (a dashboard that names another needs a plugin).
PANEL_TYPES = {"timeseries", "stat", "gauge", "bargauge", "table", "text", "row", "piechart", "state-timeline",
               "status-history", "heatmap", "logs", "alertlist", "dashlist", "barchart", "histogram", "news"}
VARIABLE_TYPES = {"query", "custom", "constant", "datasource", "interval", "textbox", "adhoc"}
# Grafana's own macros, replaced before a query reaches Prometheus.
GRAFANA_MACROS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}


def _panels(dashboard: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    for panel in dashboard.get("panels") or []:
        found.append(panel)
        found += list(panel.get("panels") or [])  # collapsed rows keep their panels inside
    return found


def dashboard_errors(name: str, dashboard: Any) -> list[str]:
    """Problems of a dashboard against Grafana's dashboard JSON model (the fields Grafana requires or checks)."""
    if not isinstance(dashboard, Mapping):
        return [f"{name}: a dashboard is a JSON object"]
    errors = []
    for key, kind in (("title", str), ("uid", str), ("schemaVersion", int), ("panels", list)):
        if not isinstance(dashboard.get(key), kind) or isinstance(dashboard.get(key), bool):
            errors.append(f"{name}: '{key}' must be a {kind.__name__}")
    uid = dashboard.get("uid")
    if isinstance(uid, str) and not re.match(r"^[a-zA-Z0-9_-]{1,40}$", uid):
        errors.append(f"{name}: uid '{uid}' must be 1-40 characters of letters, digits, '-' and '_'")
    if dashboard.get("id") not in (None,):
        errors.append(f"{name}: 'id' must be null in a provisioned dashboard (Grafana assigns it)")
    variables = []
    for i, var in enumerate((dashboard.get("templating") or {}).get("list") or []):
        where = f"{name}: templating.list[{i}]"
        if not isinstance(var, Mapping) or not re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", str(var.get("name", ""))):
            errors.append(f"{where}: needs a 'name' of letters, digits and '_'")
            continue
        variables.append(var["name"])
        if var.get("type") not in VARIABLE_TYPES:
            errors.append(f"{where} ({var['name']}): type '{var.get('type')}' is not one of {sorted(VARIABLE_TYPES)}")
    ids: set = set()
    for panel in _panels(dashboard):
        where = f"{name}: panel {panel.get('id')!r} ({panel.get('title', '')})"
        if not isinstance(panel.get("id"), int) or panel["id"] in ids:
            errors.append(f"{where}: every panel needs a unique integer 'id'")
        ids.add(panel.get("id"))
        if panel.get("type") not in PANEL_TYPES:
            errors.append(f"{where}: type '{panel.get('type')}' is not a built-in panel type")
        pos = panel.get("gridPos")
        if not isinstance(pos, Mapping) or not all(isinstance(pos.get(k), int) and pos.get(k) >= 0 for k in "hwxy"):
            errors.append(f"{where}: gridPos needs integers h, w, x, y >= 0")
        elif pos["w"] < 1 or pos["h"] < 1 or pos["x"] + pos["w"] > 24:
            errors.append(f"{where}: gridPos must fit Grafana's 24 columns (x + w <= 24, w and h >= 1)")
        refs = set()
        for target in panel.get("targets") or []:
            if not isinstance(target, Mapping) or not str(target.get("expr", "")).strip():
                errors.append(f"{where}: every target needs a PromQL 'expr'")
                continue
            if target.get("refId") in refs or not target.get("refId"):
                errors.append(f"{where}: every target needs a unique 'refId'")
            refs.add(target.get("refId"))
            for used in re.findall(r"\$\{?([a-zA-Z_][a-zA-Z0-9_]*)", target["expr"]):
                if used not in variables and used not in GRAFANA_MACROS:
                    errors.append(f"{where}: expr uses ${used}, which is not a dashboard variable")
        if panel.get("type") not in ("row", "text") and not panel.get("targets"):
            errors.append(f"{where}: a {panel.get('type')} panel needs targets")
    return errors


def dashboard_expressions(dashboard: Mapping[str, Any], values: Mapping[str, str] | None = None) -> list[str]:
    """Every PromQL expression of a dashboard (targets and query variables), with the variables and
    Grafana's macros replaced by sample values, ready for a PromQL parser."""
    samples = {**GRAFANA_MACROS, **(values or {})}

    def fill(expr: str) -> str:
        return re.sub(r"\$\{?([a-zA-Z_][a-zA-Z0-9_]*)\}?", lambda m: samples.get(m.group(1), "sample"), expr)

    exprs = [fill(t["expr"]) for p in _panels(dashboard) for t in p.get("targets") or []]
    for var in (dashboard.get("templating") or {}).get("list") or []:
        query = var.get("query")
        query = query.get("query") if isinstance(query, Mapping) else query
        found = re.match(r"^label_values\((.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$", str(query or "").strip())
        if var.get("type") == "query" and found:
            exprs.append(fill(found.group(1)))
    return exprs


# --------------------------------------------------------------------------------------------
# Objects: the platform layer (both install modes)
# --------------------------------------------------------------------------------------------
def _monitor(kind: str, name: str, namespace: str, selector: dict, endpoint: dict, **extra: Any) -> dict:
    key = "podMetricsEndpoints" if kind == "PodMonitor" else "endpoints"
    spec: dict[str, Any] = {"selector": {"matchLabels": selector}, "namespaceSelector": {"matchNames": [namespace]},
                            key: [endpoint], **extra}
    return {"apiVersion": OPERATOR_API, "kind": kind, "metadata": _meta(name, namespace), "spec": spec}


def _postgres_exporter(s: Mapping[str, Any]) -> list[dict]:
    e = s["postgres_exporter"]
    name, ns = e["name"], e["namespace"]

    def secret_env(var: str, key: str) -> dict:
        return {"name": var, "valueFrom": {"secretKeyRef": {"name": e["database_secret"], "key": key}}}

    env = [secret_env("PGHOST", "host"), secret_env("PGPORT", "port"), secret_env("PGDATABASE", "database"),
           secret_env("DATA_SOURCE_USER", "username"), secret_env("DATA_SOURCE_PASS", "password"),
           {"name": "DATA_SOURCE_URI", "value": f"$(PGHOST):$(PGPORT)/$(PGDATABASE)?sslmode={e['sslmode']}"}]
    container = {"name": "postgres-exporter", "image": e["image"], "env": env,
                 "ports": [{"name": "metrics", "containerPort": 9187, "protocol": "TCP"}],
                 "readinessProbe": {"httpGet": {"path": "/", "port": "metrics"}, "periodSeconds": 10},
                 "resources": e["resources"], "securityContext": _CONTAINER_SECURITY}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, ns),
         "spec": {"replicas": 1, "selector": {"matchLabels": _selector(name)},
                  "template": {"metadata": {"labels": labels(name)},
                               "spec": {"automountServiceAccountToken": False, "securityContext": {**_POD_SECURITY, "runAsUser": 65534},
                                        "containers": [container]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, ns),
         "spec": {"selector": _selector(name), "ports": [{"name": "metrics", "port": 9187, "targetPort": "metrics", "protocol": "TCP"}]}},
        _monitor("ServiceMonitor", name, ns, _selector(name), {"port": "metrics", "interval": s["prometheus"]["scrape_interval"]}),
    ]


def _scrape_policy(s: Mapping[str, Any], namespace: str, ports: list[int]) -> dict:
    """Lets Prometheus through a namespace's default-deny NetworkPolicy to the metrics ports."""
    prom_pods = {"matchLabels": {"app.kubernetes.io/name": "prometheus"}} if s["install"] == "objects" else {}
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": _meta("mlops-allow-prometheus", namespace),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": s["namespace"]}},
                      "podSelector": prom_pods}],
            "ports": [{"protocol": "TCP", "port": port} for port in ports]}]},
    }


def platform_objects(s: Mapping[str, Any], dashboards: Mapping[str, str]) -> list[dict]:
    """Monitors, exporter, rules and dashboards: what the platform adds to any Prometheus Operator stack."""
    targets, interval = s["targets"], s["prometheus"]["scrape_interval"]
    objects: list[dict] = []
    mlflow = targets["mlflow"]
    if mlflow["enabled"]:
        endpoint: dict[str, Any] = {"port": mlflow["port"], "path": mlflow["path"], "interval": interval}
        if mlflow.get("basic_auth_secret"):
            endpoint["basicAuth"] = {
                "username": {"name": mlflow["basic_auth_secret"], "key": mlflow["username_key"]},
                "password": {"name": mlflow["basic_auth_secret"], "key": mlflow["password_key"]}}
        objects.append(_monitor("ServiceMonitor", mlflow["service"], mlflow["namespace"], mlflow["selector"], endpoint))
    minio = targets["minio"]
    if minio["enabled"]:
        objects.append(_monitor("ServiceMonitor", minio["service"], minio["namespace"], minio["selector"],
                                {"port": minio["port"], "path": minio["path"], "interval": interval}))
    if s["postgres_exporter"]["enabled"]:
        objects += _postgres_exporter(s)
    for namespace in targets["seldon_namespaces"]:
        for name, kind, selector, port, path in SELDON_MONITORS:
            objects.append(_monitor(kind, name, namespace, selector, {"port": port, "path": path, "interval": interval}))
        # The Seldon pods' metrics ports (agent 9006, server 9500 and 8082, envoy admin 9003).
        objects.append(_scrape_policy(s, namespace, [9003, 9006, 8082, 9500]))
    objects.append({"apiVersion": OPERATOR_API, "kind": "PrometheusRule", "metadata": _meta("mlops-platform-alerts", s["namespace"]),
                    "spec": {"groups": alert_groups(s)}})
    objects.append({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": _meta("grafana-dashboards-mlops", s["namespace"], **{DASHBOARD_LABEL: "1"}),
                    "data": dict(sorted(dashboards.items()))})
    return objects


# --------------------------------------------------------------------------------------------
# Objects: the stack (install: objects), what kube-prometheus-stack would install
# --------------------------------------------------------------------------------------------
def _identity(name: str, ns: str, rules: list[dict]) -> list[dict]:
    """ServiceAccount, ClusterRole and ClusterRoleBinding named ``<ns>-<name>`` cluster-wide."""
    cluster_name = f"mlops-{ns}-{name}"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, ns)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": _meta(cluster_name), "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": _meta(cluster_name),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]},
    ]


def _deployment(name: str, ns: str, part: Mapping[str, Any], container: dict, volumes: list[dict] | None = None,
                annotations: dict | None = None, run_as: int = 65534) -> dict:
    container = {"name": name, "image": part["image"], "resources": part["resources"],
                 "securityContext": _CONTAINER_SECURITY, **container}
    pod: dict[str, Any] = {"serviceAccountName": name, "securityContext": {**_POD_SECURITY, "runAsUser": run_as, "fsGroup": run_as},
                           "containers": [container]}
    if volumes:
        pod["volumes"] = volumes
    template_meta: dict[str, Any] = {"labels": labels(name)}
    if annotations:
        template_meta["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, ns),
            "spec": {"replicas": int(part.get("replicas", 1)), "selector": {"matchLabels": _selector(name)},
                     "template": {"metadata": template_meta, "spec": pod}}}


def _service(name: str, ns: str, port: int, port_name: str = "http", selector: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, ns),
            "spec": {"selector": selector or _selector(name),
                     "ports": [{"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}]}}


def _operator(s: Mapping[str, Any], upstream: Mapping[str, Any]) -> list[dict]:
    ns, op = s["namespace"], s["operator"]
    name = "prometheus-operator"
    args = [f"--prometheus-config-reloader={s['config_reloader']['image']}", "--log-format=json",
            "--web.listen-address=:8080"]
    objects = _identity(name, ns, copy.deepcopy(upstream["operator_cluster_role_rules"]))
    objects.append(_deployment(name, ns, op, {"args": args, "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}))
    objects.append(_service(name, ns, 8080))
    objects.append(_monitor("ServiceMonitor", name, ns, _selector(name), {"port": "http", "interval": s["prometheus"]["scrape_interval"]}))
    return objects


def _prometheus(s: Mapping[str, Any]) -> list[dict]:
    ns, p = s["namespace"], s["prometheus"]
    name = "prometheus"
    rules = [
        {"apiGroups": [""], "resources": ["nodes", "nodes/metrics", "services", "endpoints", "pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
    ]
    select = {"matchLabels": dict(SELECTOR)}
    spec: dict[str, Any] = {
        "image": p["image"], "version": p["image"].rsplit(":", 1)[1], "replicas": int(p["replicas"]),
        "serviceAccountName": name, "retention": p["retention"],
        "scrapeInterval": p["scrape_interval"], "evaluationInterval": p["evaluation_interval"],
        "externalLabels": {"environment": s["environment"]},
        "serviceMonitorSelector": select, "serviceMonitorNamespaceSelector": {},
        "podMonitorSelector": select, "podMonitorNamespaceSelector": {},
        "ruleSelector": select, "ruleNamespaceSelector": {},
        "probeSelector": select, "probeNamespaceSelector": {},
        "alerting": {"alertmanagers": [{"namespace": ns, "name": "alertmanager", "port": "web", "apiVersion": "v2"}]},
        "resources": p["resources"],
        "podMetadata": {"labels": labels(name)},
        "securityContext": {**_POD_SECURITY, "runAsUser": 1000, "runAsGroup": 2000, "fsGroup": 2000},
    }
    if p.get("storage_size"):
        claim: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": p["storage_size"]}}}
        if p.get("storage_class"):
            claim["storageClassName"] = p["storage_class"]
        spec["storage"] = {"volumeClaimTemplate": {"spec": claim}}
    objects = _identity(name, ns, rules)
    objects.append({"apiVersion": OPERATOR_API, "kind": "Prometheus", "metadata": _meta(name, ns), "spec": spec})
    objects.append(_service(name, ns, 9090, "web", {"app.kubernetes.io/name": "prometheus"}))
    objects.append(_monitor("ServiceMonitor", name, ns, _selector(name), {"port": "web", "interval": p["scrape_interval"]}))
    return objects


def alertmanager_config(s: Mapping[str, Any]) -> dict:
    """alertmanager.yaml: the inventory's, or a default that groups by alert and namespace and lets a
    critical alert silence the warning of the same alert, namespace and resource (quota 95% over 80%)."""
    if s["alertmanager"].get("config"):
        return copy.deepcopy(dict(s["alertmanager"]["config"]))
    return {
        "route": {"receiver": "null", "group_by": ["alertname", "namespace"], "group_wait": "30s",
                  "group_interval": "5m", "repeat_interval": "12h"},
        "receivers": [{"name": "null"}],
        "inhibit_rules": [{"source_matchers": ["severity = critical"], "target_matchers": ["severity = warning"],
                           "equal": ["alertname", "namespace", "resource"]}],
    }


def _alertmanager(s: Mapping[str, Any]) -> list[dict]:
    import yaml  # the collection's controller side always has PyYAML

    ns, a = s["namespace"], s["alertmanager"]
    name = "alertmanager"
    config = yaml.safe_dump(alertmanager_config(s), sort_keys=True)
    secret = f"alertmanager-{name}-config"
    return [
        # The configuration may hold receiver credentials: a Secret, hidden in every diff.
        {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(secret, ns), "type": "Opaque",
         "data": {"alertmanager.yaml": base64.b64encode(config.encode()).decode()}},
        {"apiVersion": OPERATOR_API, "kind": "Alertmanager", "metadata": _meta(name, ns), "spec": {
            "image": a["image"], "version": a["image"].rsplit(":", 1)[1], "replicas": int(a["replicas"]),
            "configSecret": secret, "resources": a["resources"], "podMetadata": {"labels": labels(name)},
            "securityContext": {**_POD_SECURITY, "runAsUser": 1000, "runAsGroup": 2000, "fsGroup": 2000}}},
        _service(name, ns, 9093, "web", {"app.kubernetes.io/name": "alertmanager"}),
        _monitor("ServiceMonitor", name, ns, _selector(name), {"port": "web", "interval": s["prometheus"]["scrape_interval"]}),
    ]


def grafana_provisioning(s: Mapping[str, Any]) -> dict[str, str]:
    """Grafana's provisioning files: the Prometheus datasource and the dashboards provider."""
    import yaml

    datasource = {"apiVersion": 1, "datasources": [{
        "name": "Prometheus", "uid": "prometheus", "type": "prometheus", "access": "proxy", "isDefault": True,
        "url": s["grafana"]["prometheus_url"], "jsonData": {"timeInterval": s["prometheus"]["scrape_interval"]}}]}
    provider = {"apiVersion": 1, "providers": [{
        "name": "mlops-platform", "folder": "MLOps platform", "type": "file", "disableDeletion": True,
        "allowUiUpdates": False, "options": {"path": "/var/lib/grafana/dashboards", "foldersFromFilesStructure": False}}]}
    return {"datasources.yaml": yaml.safe_dump(datasource, sort_keys=True),
            "dashboards.yaml": yaml.safe_dump(provider, sort_keys=True)}


def _grafana(s: Mapping[str, Any], dashboards: Mapping[str, str]) -> list[dict]:
    ns, g = s["namespace"], s["grafana"]
    name = "grafana"
    provisioning = grafana_provisioning(s)
    secret = g["admin_secret"]
    env = [{"name": "GF_SECURITY_ADMIN_USER", "valueFrom": {"secretKeyRef": {"name": secret, "key": "admin-user"}}},
           {"name": "GF_SECURITY_ADMIN_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": "admin-password"}}},
           {"name": "GF_PATHS_PROVISIONING", "value": "/etc/grafana/provisioning"},
           {"name": "GF_ANALYTICS_REPORTING_ENABLED", "value": "false"},
           {"name": "GF_ANALYTICS_CHECK_FOR_UPDATES", "value": "false"},
           {"name": "GF_USERS_ALLOW_SIGN_UP", "value": "false"}]
    mounts = [{"name": "data", "mountPath": "/var/lib/grafana"},
              {"name": "tmp", "mountPath": "/tmp"},
              {"name": "datasources", "mountPath": "/etc/grafana/provisioning/datasources", "readOnly": True},
              {"name": "providers", "mountPath": "/etc/grafana/provisioning/dashboards", "readOnly": True},
              {"name": "dashboards", "mountPath": "/var/lib/grafana/dashboards", "readOnly": True}]
    volumes = [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}},
               {"name": "datasources", "configMap": {"name": "grafana-datasources", "items": [{"key": "datasources.yaml", "path": "datasources.yaml"}]}},
               {"name": "providers", "configMap": {"name": "grafana-datasources", "items": [{"key": "dashboards.yaml", "path": "dashboards.yaml"}]}},
               {"name": "dashboards", "configMap": {"name": "grafana-dashboards-mlops"}}]
    container = {"env": env, "volumeMounts": mounts,
                 "ports": [{"name": "http", "containerPort": 3000, "protocol": "TCP"}],
                 "readinessProbe": {"httpGet": {"path": "/api/health", "port": "http"}, "periodSeconds": 10}}
    # A changed datasource or dashboard restarts Grafana, which reads provisioning at start.
    checksum = {"mlops.platform/config-checksum": _digest([provisioning, dict(sorted(dashboards.items()))])}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, ns), "automountServiceAccountToken": False},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("grafana-datasources", ns), "data": provisioning},
        _deployment(name, ns, g, container, volumes, checksum, run_as=472),
        _service(name, ns, 3000),
        _monitor("ServiceMonitor", name, ns, _selector(name), {"port": "http", "interval": s["prometheus"]["scrape_interval"]}),
    ]


def ksm_custom_resource_config() -> dict:
    """kube-state-metrics' custom resource state: an info series and one per status condition
    (1 when True) for every SeldonRuntime, Server and Model, e.g. mlops_seldon_runtime_condition."""
    resources = []
    for kind, short, _plural in SELDON_KINDS:
        resources.append({
            "groupVersionKind": {**SELDON_GVK, "kind": kind},
            "metricNamePrefix": f"mlops_seldon_{short}",
            "labelsFromPath": {"name": ["metadata", "name"], "namespace": ["metadata", "namespace"]},
            "metrics": [
                {"name": "info", "help": f"Every Seldon {kind}.", "each": {"type": "Info", "info": {"labelsFromPath": {}}}},
                {"name": "condition", "help": f"Status conditions of a Seldon {kind} (1 when True).",
                 "each": {"type": "Gauge", "gauge": {
                     "path": ["status", "conditions"], "labelsFromPath": {"type": ["type"]}, "valueFrom": ["status"]}}},
            ],
        })
    return {"kind": "CustomResourceStateMetrics", "spec": {"resources": resources}}


def _kube_state_metrics(s: Mapping[str, Any]) -> list[dict]:
    import yaml

    ns, k = s["namespace"], s["kube_state_metrics"]
    name = "kube-state-metrics"
    rules = [{"apiGroups": [group], "resources": list(resources), "verbs": ["list", "watch"]}
             for group, resources in KSM_RESOURCES.items()]
    rules.append({"apiGroups": [SELDON_GVK["group"]], "resources": [p for _k, _s, p in SELDON_KINDS], "verbs": ["list", "watch"]})
    rules.append({"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]})
    config = yaml.safe_dump(ksm_custom_resource_config(), sort_keys=True)
    args = ["--port=8080", "--telemetry-port=8081",
            "--resources=" + ",".join(sorted(r for rs in KSM_RESOURCES.values() for r in rs)),
            f"--metric-labels-allowlist=namespaces=[{TEAM_LABEL}]",
            "--custom-resource-state-config-file=/etc/kube-state-metrics/custom-resources.yaml"]
    container = {"args": args,
                 "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                           {"name": "telemetry", "containerPort": 8081, "protocol": "TCP"}],
                 "readinessProbe": {"httpGet": {"path": "/readyz", "port": "telemetry"}, "periodSeconds": 10},
                 "volumeMounts": [{"name": "config", "mountPath": "/etc/kube-state-metrics", "readOnly": True}]}
    volumes = [{"name": "config", "configMap": {"name": "kube-state-metrics-custom-resources"}}]
    objects = _identity(name, ns, rules)
    objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("kube-state-metrics-custom-resources", ns),
                    "data": {"custom-resources.yaml": config}})
    objects.append(_deployment(name, ns, k, container, volumes, {"mlops.platform/config-checksum": _digest(config)}))
    objects.append(_service(name, ns, 8080))
    # honorLabels: the namespace label of a series is the object's, not the exporter's.
    objects.append(_monitor("ServiceMonitor", name, ns, _selector(name),
                            {"port": "http", "interval": s["prometheus"]["scrape_interval"], "honorLabels": True}))
    return objects


def stack_objects(s: Mapping[str, Any], upstream: Mapping[str, Any], dashboards: Mapping[str, str]) -> list[dict]:
    """What kube-prometheus-stack installs, for clusters that take the objects instead of the chart; the CRDs
    come beside them, as the List ``crd_list_file`` names (the apply task's ``src``)."""
    ns = s["namespace"]
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {
        **labels(ns), **{f"pod-security.kubernetes.io/{mode}": s["pod_security"] for mode in ("enforce", "audit", "warn")}}}}
    return [namespace, *_operator(s, upstream), *_prometheus(s), *_alertmanager(s),
            *_grafana(s, dashboards), *_kube_state_metrics(s)]


def monitoring_objects(s: Mapping[str, Any], upstream: Mapping[str, Any] | None, dashboards: Mapping[str, str]) -> list[dict]:
    """Every object the role applies: the stack (install: objects) and the platform layer."""
    stack = stack_objects(s, upstream or {}, dashboards) if s["install"] == "objects" else []
    return stack + platform_objects(s, dashboards)


def helm_values(s: Mapping[str, Any]) -> dict:
    """kube-prometheus-stack values (install: helm) that make the chart select the platform layer's
    monitors, rules and dashboards, and take Grafana's admin credentials from the secrets role."""
    select = {"matchLabels": dict(SELECTOR)}
    return {
        "prometheus": {"prometheusSpec": {
            "replicas": int(s["prometheus"]["replicas"]), "retention": s["prometheus"]["retention"],
            "scrapeInterval": s["prometheus"]["scrape_interval"], "evaluationInterval": s["prometheus"]["evaluation_interval"],
            "externalLabels": {"environment": s["environment"]},
            "serviceMonitorSelector": select, "serviceMonitorNamespaceSelector": {},
            "podMonitorSelector": select, "podMonitorNamespaceSelector": {},
            "ruleSelector": select, "ruleNamespaceSelector": {}}},
        "alertmanager": {"alertmanagerSpec": {"replicas": int(s["alertmanager"]["replicas"])},
                         "config": alertmanager_config(s)},
        "grafana": {"admin": {"existingSecret": s["grafana"]["admin_secret"], "userKey": "admin-user", "passwordKey": "admin-password"},
                    "sidecar": {"dashboards": {"enabled": True, "label": DASHBOARD_LABEL, "labelValue": "1",
                                               "searchNamespace": s["namespace"]}}},
        "kube-state-metrics": {
            "metricLabelsAllowlist": [f"namespaces=[{TEAM_LABEL}]"],
            "customResourceState": {"enabled": True, "config": ksm_custom_resource_config()["spec"]},
            "rbac": {"extraRules": [{"apiGroups": [SELDON_GVK["group"]], "resources": [p for _k, _s, p in SELDON_KINDS],
                                     "verbs": ["list", "watch"]}]}},
        # The platform's own rules replace the chart's defaults only where they overlap; keep the chart's.
        "defaultRules": {"create": True},
    }


# --------------------------------------------------------------------------------------------
# Inputs read on the controller
# --------------------------------------------------------------------------------------------
def read_upstream(path: str) -> dict:
    """The operator's release and ClusterRole rules that ``roles/monitoring/files/upstream.sh crds`` wrote, or {}."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("operator_cluster_role_rules") else {}


def crd_list_file(path: str) -> str:
    """The List of the release's CRDs that upstream.sh writes beside the rules file."""
    return re.sub(r"\.json$", "", path) + "-crds.json"


def _crd_list_release(path: str) -> str:
    """``module@version`` of the CRD List, or '' when it is missing or holds no CRDs."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return ""
    items = data.get("items") if isinstance(data, dict) else None
    if not items or any(i.get("kind") != "CustomResourceDefinition" for i in items):
        return ""
    return ((data.get("metadata") or {}).get("annotations") or {}).get("mlops.platform/upstream", "")


def read_dashboards(directory: str, extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    """{file name: JSON text}: the role's dashboard files, then the inventory's extra ones (a dict
    or JSON text each), in name order."""
    import os

    found: dict[str, str] = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json"):
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                found[name] = handle.read()
    for name, value in sorted((extra or {}).items()):
        found[name if name.endswith(".json") else f"{name}.json"] = (
            value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True) + "\n")
    return found


def problems(s: Mapping[str, Any], upstream_path: str, dashboards: Mapping[str, str]) -> list[str]:
    """Everything wrong before any change: the settings, the upstream files, the dashboards."""
    errors = settings_errors(s)
    if s.get("install") == "objects":
        upstream = read_upstream(upstream_path)
        release = _crd_list_release(crd_list_file(upstream_path))
        if not upstream or not release:
            errors.append(f"monitoring_upstream_file: {upstream_path} or its CRD List {crd_list_file(upstream_path)} is "
                          "missing or empty. Fix: run `roles/monitoring/files/upstream.sh crds` (make setup does), "
                          "or set monitoring_install: helm")
        elif upstream.get("version") != s["operator"]["version"] or not release.endswith("@" + s["operator"]["version"]):
            errors.append(f"monitoring_upstream_file: {upstream_path} holds the CRDs of prometheus-operator "
                          f"{upstream.get('version')}, not {s['operator']['version']} (monitoring_operator_version). "
                          "Fix: fetch the matching CRDs (PROMETHEUS_OPERATOR_VERSION=... upstream.sh crds)")
    for name, text in dashboards.items():
        try:
            errors += dashboard_errors(f"dashboard {name}", json.loads(text))
        except ValueError as exc:
            errors.append(f"dashboard {name}: not JSON ({exc})")
    return errors


def role_objects(s: Mapping[str, Any], upstream_path: str, dashboards: Mapping[str, str]) -> list[dict]:
    """``monitoring_objects`` with the operator's rules read here. The CRDs (2.5 MiB) are not among them:
    the apply task names their List as its ``src``, which the module reads itself; through Jinja and the
    task's arguments they cost a no-op converge seconds."""
    return monitoring_objects(s, read_upstream(upstream_path) if s["install"] == "objects" else None, dashboards)
