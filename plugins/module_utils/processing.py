# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The processing layer of seed 004: the Spark operator (kubeflow) and the Flink Kubernetes Operator.

Each operator runs in its own namespace with a Deployment, its ServiceAccount and RBAC, and watches only
the team namespaces that enable it (each team's ``processing: {spark: true, flink: true}``). Its rights
in a team namespace are a namespaced Role bound to its ServiceAccount there - never a cluster-wide grant
on team workloads. Per enabled team namespace the role renders:

- ServiceAccounts ``spark`` (drivers) and ``flink`` (JobManagers) with the Roles their pods need (pods,
  services, configmaps, claims; Flink also its TaskManager Deployments);
- a Role+RoleBinding that lets the team's admin and edit subjects create SparkApplications,
  ScheduledSparkApplications, FlinkDeployments and FlinkSessionJobs in that namespace only (view
  subjects read them); no ClusterRole is ever bound to a team.

``example_objects`` renders a SparkApplication and a FlinkDeployment per enabled namespace from the
role's sizes - what a team would submit; the tests dry-run them against the upstream CRDs and their
pods' resources against the team's LimitRange and quota. ``resource_errors`` checks those sizes against
every enabled team's LimitRange and quota before anything is applied (``variable_errors``, run by
``validate_roles`` and the role's first task).
"""

from __future__ import annotations

import math
import os
import re
from fractions import Fraction
from typing import Any

from ansible_collections.mlops.platform.plugins.module_utils.quantity import (
    QuantityError,
    canonical_quantity,
    format_quantity,
    parse_quantity,
)
from ansible_collections.mlops.platform.plugins.module_utils.teams import (
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_PART_OF,
    LABEL_TEAM,
    MANAGED_BY,
    PART_OF,
    merge_defaults,
    namespace_errors,
    normalize_team,
    validate_teams,
)

COMPONENT = "processing"
SPARK_API = "sparkoperator.k8s.io/v1beta2"
FLINK_API = "flink.apache.org/v1beta1"
RBAC_API = "rbac.authorization.k8s.io/v1"
ENGINES = ("spark", "flink")
TEAM_PROCESSING_KEYS = set(ENGINES)
SPARK_POD_KEYS = {"cpu", "cpu_limit", "memory", "memory_overhead"}
FLINK_POD_KEYS = {"cpu", "memory"}
# Names of what the role owns in every enabled team namespace.
SUBMIT_ROLE = "mlops-processing-edit"
VIEW_ROLE = "mlops-processing-view"
SPARK_DRIVER_ROLE = "mlops-spark-driver"
FLINK_JOB_ROLE = "mlops-flink-job"
SPARK_OPERATOR_ROLE = "mlops-spark-operator"
FLINK_OPERATOR_ROLE = "mlops-flink-operator"
SPARK_OPERATOR = "spark-operator-controller"
FLINK_OPERATOR = "flink-kubernetes-operator"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Spark's default memory overhead of a JVM pod: max(10 % of the memory, 384 MiB).
SPARK_MIN_OVERHEAD = 384 * 1024 * 1024
MIB = 1024 * 1024
# Kinds the role applies; pruning looks at these (label app.kubernetes.io/component=processing).
PRUNE_KINDS = (
    ("v1", "ServiceAccount"), ("v1", "ConfigMap"), ("v1", "Service"), ("apps/v1", "Deployment"), (RBAC_API, "Role"), (RBAC_API, "RoleBinding"),
    (RBAC_API, "ClusterRole"), (RBAC_API, "ClusterRoleBinding"),
)

ALL_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]
READ_VERBS = ["get", "list", "watch"]
TEAM_RESOURCES = {
    "spark": ("sparkoperator.k8s.io", ["sparkapplications", "scheduledsparkapplications"]),
    "flink": ("flink.apache.org", ["flinkdeployments", "flinksessionjobs", "flinkstatesnapshots"]),
}


def _labels(name: str, team: str | None = None) -> dict:
    labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_PART_OF: PART_OF, LABEL_COMPONENT: COMPONENT,
              "app.kubernetes.io/name": name}
    if team:
        labels[LABEL_TEAM] = team
    return labels


def _meta(name: str, namespace: str | None, label: str, team: str | None = None) -> dict:
    meta = {"name": name, "labels": _labels(label, team)}
    if namespace:
        meta["namespace"] = namespace
    return meta


# --------------------------------------------------------------------------------------------
# Pod sizes: what the operators make of a SparkApplication's or a FlinkDeployment's resources
# --------------------------------------------------------------------------------------------
def spark_pod(size: dict) -> dict:
    """Requests and limits of a Spark driver or executor pod of this size.

    The operator asks cpu ``coreRequest`` (limit ``coreLimit``) and memory ``memory + memoryOverhead``
    as both request and limit; the overhead defaults to max(10 %, 384 MiB) as in Spark.
    """
    memory = parse_quantity(size["memory"])
    overhead = parse_quantity(size["memory_overhead"]) if size.get("memory_overhead") else max(memory / 10, SPARK_MIN_OVERHEAD)
    overhead = Fraction(math.ceil(overhead / MIB) * MIB)
    total = format_quantity(memory + overhead, binary=True)
    return {"requests": {"cpu": canonical_quantity(size["cpu"]), "memory": total},
            "limits": {"cpu": canonical_quantity(size.get("cpu_limit") or size["cpu"]), "memory": total},
            "overhead": format_quantity(overhead, binary=True)}


def flink_pod(size: dict) -> dict:
    """Requests and limits of a JobManager or TaskManager pod: the operator sets both to the resource (limit factor 1)."""
    both = {"cpu": canonical_quantity(size["cpu"]), "memory": canonical_quantity(size["memory"])}
    return {"requests": dict(both), "limits": dict(both)}


def _spark_memory(quantity: Any) -> str:
    """A Kubernetes quantity in Spark's (and Flink's) JVM notation, where ``m`` is MiB: 512Mi -> ``512m``."""
    return f"{math.ceil(parse_quantity(quantity) / MIB)}m"


def app_pods(settings: dict) -> dict[str, list[tuple[str, dict]]]:
    """Per engine, the pods one example application starts: (pod name, requests/limits)."""
    spark, flink = settings["spark_application"], settings["flink_deployment"]
    return {
        "spark": [("driver", spark_pod(spark["driver"]))]
        + [("executor", spark_pod(spark["executor"]))] * int(spark["executor"].get("instances", 1)),
        "flink": [("jobmanager", flink_pod(flink["jobmanager"]))]
        + [("taskmanager", flink_pod(flink["taskmanager"]))] * int(flink["taskmanager"].get("replicas", 1)),
    }


def _size_errors(where: str, size: Any, keys: set, required: tuple) -> list[str]:
    if not isinstance(size, dict):
        return [f"{where}: must be a mapping with {', '.join(sorted(keys))}"]
    errors = [f"{where}: unknown key(s) {', '.join(sorted(str(k) for k in size if k not in keys | {'instances', 'replicas'}))}. "
              f"Fix: use {', '.join(sorted(keys))}"] if set(size) - keys - {"instances", "replicas"} else []
    for key in required:
        if key not in size:
            errors.append(f"{where}.{key}: missing. Fix: give it, e.g. {'500m' if 'cpu' in key else '512Mi'}")
    for key in keys & set(size):
        if size[key] in ("", None) and key in ("cpu_limit", "memory_overhead"):
            continue
        try:
            if parse_quantity(size[key]) <= 0:
                errors.append(f"{where}.{key}: {size[key]!r} is not above zero")
        except QuantityError as exc:
            errors.append(f"{where}.{key}: {exc}")
    for key in ("instances", "replicas"):
        if key in size and not (isinstance(size[key], int) and not isinstance(size[key], bool) and size[key] >= 1):
            errors.append(f"{where}.{key}: {size[key]!r} is not a positive integer")
    if not errors and "cpu_limit" in size and size["cpu_limit"] and parse_quantity(size["cpu_limit"]) < parse_quantity(size["cpu"]):
        errors.append(f"{where}.cpu_limit: {size['cpu_limit']} is below cpu {size['cpu']}. Fix: a limit at least the request")
    return errors


def app_size_errors(settings: dict) -> list[str]:
    """Shape problems of processing_spark_application / processing_flink_deployment."""
    errors: list[str] = []
    spark, flink = settings.get("spark_application") or {}, settings.get("flink_deployment") or {}
    for part in ("driver", "executor"):
        errors += _size_errors(f"processing_spark_application.{part}", spark.get(part), SPARK_POD_KEYS, ("cpu", "memory"))
    for part in ("jobmanager", "taskmanager"):
        errors += _size_errors(f"processing_flink_deployment.{part}", flink.get(part), FLINK_POD_KEYS, ("cpu", "memory"))
    return errors


def _fit_errors(where: str, pod: str, resources: dict, limit_range: dict) -> list[str]:
    errors = []
    for resource, top in (limit_range.get("max") or {}).items():
        value = resources["limits"].get(resource)
        if value is not None and parse_quantity(value) > parse_quantity(top):
            errors.append(f"{where}: the {pod} pod's {resource} limit {value} is above the team's LimitRange max {top}")
    for resource, bottom in (limit_range.get("min") or {}).items():
        value = resources["requests"].get(resource)
        if value is not None and parse_quantity(value) < parse_quantity(bottom):
            errors.append(f"{where}: the {pod} pod's {resource} request {value} is below the team's LimitRange min {bottom}")
    return errors


def _quota_errors(where: str, pods: list[tuple[str, dict]], quota: dict) -> list[str]:
    errors = []
    for kind in ("requests", "limits"):
        for resource, hard in (quota.get(kind) or {}).items():
            used = sum((parse_quantity(pod[kind][resource]) for _name, pod in pods if resource in pod[kind]), Fraction(0))
            if used > parse_quantity(hard):
                errors.append(f"{where}: one application's {kind}.{resource} "
                              f"{format_quantity(used, binary=resource == 'memory')} is above the team's quota {hard}")
    pods_quota = (quota.get("count") or {}).get("pods")
    if pods_quota is not None and len(pods) > int(pods_quota):
        errors.append(f"{where}: one application starts {len(pods)} pods, the team's quota allows {pods_quota}")
    return errors


def resource_errors(plan: dict, settings: dict) -> list[str]:
    """The example applications' pods against the LimitRange and quota of every team that enables the engine."""
    if app_size_errors(settings):
        return []
    pods = app_pods(settings)
    errors: list[str] = []
    variable = {"spark": "processing_spark_application", "flink": "processing_flink_deployment"}
    for team in plan["teams"]:
        for engine in ENGINES:
            if not team[engine]:
                continue
            where = f"{variable[engine]} in team '{team['name']}'"
            for pod, resources in dict(pods[engine]).items():
                errors += _fit_errors(where, pod, resources, team["limit_range"])
            errors += _quota_errors(where, pods[engine], team["quota"])
    return [f"{e}. Fix: make the application smaller or raise the team's limit_range/quota" for e in dict.fromkeys(errors)]


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
def team_processing_errors(teams: Any) -> list[str]:
    """Problems of every team's ``processing`` key."""
    if validate_teams(teams):
        return []  # the team model's own messages are the team_isolation check's
    errors = []
    for team in teams or []:
        value = team.get("processing")
        if value is None:
            continue
        where = f"team '{team['name']}': processing"
        if not isinstance(value, dict):
            errors.append(f"{where}: must be a mapping such as {{spark: true, flink: true}}")
            continue
        extra = sorted(str(k) for k in value if k not in TEAM_PROCESSING_KEYS)
        if extra:
            errors.append(f"{where}: unknown key(s) {', '.join(extra)}. Fix: use {', '.join(ENGINES)}")
        errors += [f"{where}.{k}: {value[k]!r} is not a boolean. Fix: true or false"
                   for k in ENGINES if k in value and not isinstance(value[k], bool)]
    return errors


def role_settings(values: dict) -> dict:
    """The settings of the plan and the objects from the role's variables (processing_*)."""
    enabled = bool(values.get("processing_enabled", False))
    return {
        "spark": bool(values.get("processing_spark", enabled)),
        "flink": bool(values.get("processing_flink", enabled)),
        "instance": values.get("processing_instance", "processing"),
        "spark_namespace": values.get("processing_spark_namespace", "spark-operator"),
        "flink_namespace": values.get("processing_flink_namespace", "flink-operator"),
        "spark_operator_image": values.get("processing_spark_operator_image", ""),
        "flink_operator_image": values.get("processing_flink_operator_image", ""),
        "operator_resources": values.get("processing_operator_resources") or {},
        "spark_service_account": values.get("processing_spark_service_account", "spark"),
        "flink_service_account": values.get("processing_flink_service_account", "flink"),
        "spark_application": values.get("processing_spark_application") or {},
        "flink_deployment": values.get("processing_flink_deployment") or {},
        "team_defaults": values.get("processing_team_defaults") or {},
        "airflow": bool(values.get("processing_airflow", False)),
        "airflow_namespace": values.get("processing_airflow_namespace", "airflow"),
        # Absent (validate_roles passes only the values an inventory sets): the role's default.
        "airflow_image": values.get("processing_airflow_image", AIRFLOW_IMAGE),
        "airflow_secret": values.get("processing_airflow_secret", "airflow"),
        "airflow_env": values.get("processing_airflow_env") or {},
        "airflow_env_from_secrets": list(values.get("processing_airflow_env_from_secrets") or []),
        "airflow_resources": values.get("processing_airflow_resources") or {},
        "airflow_dags": values.get("processing_airflow_dags") or {},
    }


def variable_errors(values: dict, context: dict | None = None) -> list[str]:
    """The processing role's checks beyond its argument spec, run by mlops.platform.validate_roles."""
    context = {**(context or {}), **values}
    settings = role_settings(values)
    errors: list[str] = []
    if settings["airflow"]:
        errors += namespace_errors("processing_airflow_namespace", settings["airflow_namespace"])
        errors += dag_errors(settings["airflow_dags"])
        if not settings["airflow_image"]:
            errors.append("processing_airflow_image: empty. Fix: the Airflow image of the pinned version, e.g. "
                          "docker.io/apache/airflow:3.3.2")
    if not (settings["spark"] or settings["flink"]):
        return errors
    for engine in ENGINES:
        if settings[engine]:
            errors += namespace_errors(f"processing_{engine}_namespace", settings[f"{engine}_namespace"])
    if not (isinstance(settings["instance"], str) and len(settings["instance"]) <= 63 and _DNS_LABEL.match(settings["instance"])):
        errors.append(f"processing_instance: {settings['instance']!r} is not a DNS-1123 label. Fix: e.g. processing")
    used = [(f"processing_{e}_namespace", settings[f"{e}_namespace"]) for e in (*ENGINES, "airflow") if settings[e]]
    for i, (name, namespace) in enumerate(used):
        errors += [f"{name}: the same as {other}. Fix: give each component its own namespace"
                   for other, taken in used[:i] if taken == namespace]
    crds = values.get("processing_crds_file", "")
    if crds and not os.path.isfile(crds):
        errors.append(f"processing_crds_file: {crds} does not exist. Fix: run roles/processing/files/operators.sh crds "
                      "(make setup does), or set it to '' where the operators' Helm charts installed the CRDs")
    errors += app_size_errors(settings)
    teams = values.get("processing_teams", context.get("teams", []))
    found = team_processing_errors(teams)
    errors += found
    if not found and not validate_teams(teams):
        if not settings["team_defaults"]:
            settings["team_defaults"] = {k: context.get(f"team_isolation_{k}_defaults") for k in ("quota", "limit_range")}
        plan = processing_plan(teams, settings)
        errors += resource_errors(plan, settings)
        team_namespaces = {row["namespace"] for row in plan["namespaces"]}
        errors += [f"processing_{engine}_namespace: {settings[f'{engine}_namespace']!r} is a team namespace. "
                   "Fix: give the operator a namespace of its own" for engine in (*ENGINES, "airflow")
                   if settings[engine] and settings[f"{engine}_namespace"] in team_namespaces]
    return errors


# --------------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------------
def processing_plan(teams: list | None, settings: dict) -> dict:
    """Teams and their namespaces with the engines each enables (a team's key, and the role's switch)."""
    defaults = merge_defaults(settings.get("team_defaults"))
    planned, rows = [], []
    for raw in teams or []:
        team = normalize_team(raw, defaults)
        wanted = raw.get("processing") or {}
        engines = {engine: bool(settings[engine] and wanted.get(engine, False)) for engine in ENGINES}
        planned.append({"name": team["name"], **engines, "limit_range": team["limit_range"], "quota": team["quota"]})
        if not any(engines.values()):
            continue
        for namespace in team["namespaces"]:
            rows.append({"team": team["name"], "namespace": namespace, **engines, "access": team["access"],
                         "service_accounts": team["service_accounts"]})
    return {"teams": planned, "namespaces": rows,
            "spark_namespaces": [r["namespace"] for r in rows if r["spark"]],
            "flink_namespaces": [r["namespace"] for r in rows if r["flink"]]}


# --------------------------------------------------------------------------------------------
# Objects
# --------------------------------------------------------------------------------------------
def _binding(name: str, namespace: str, label: str, role_kind: str, subjects: list, team: str | None = None) -> dict:
    return {"apiVersion": RBAC_API, "kind": "RoleBinding", "metadata": _meta(name, namespace, label, team),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name}, "subjects": subjects}


def _role(name: str, namespace: str | None, label: str, rules: list, team: str | None = None) -> dict:
    kind = "Role" if namespace else "ClusterRole"
    return {"apiVersion": RBAC_API, "kind": kind, "metadata": _meta(name, namespace, label, team), "rules": rules}


def _sa_subject(name: str, namespace: str) -> dict:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def _people(row: dict, levels: tuple) -> list:
    subjects = []
    for level in levels:
        subjects += [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": g} for g in row["access"][level]["groups"]]
        subjects += [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": u} for u in row["access"][level]["users"]]
        subjects += [_sa_subject(sa["name"], row["namespace"]) for sa in row["service_accounts"] if sa["access"] == level]
    return subjects


def spark_operator_rules() -> list:
    """The rules the upstream chart gives the controller in a job namespace (spark-operator.controller.policyRules)."""
    writes = ["get", "list", "watch", "create", "update", "patch", "delete"]
    return [
        {"apiGroups": [""], "resources": ["pods"], "verbs": [*writes, "deletecollection"]},
        {"apiGroups": [""], "resources": ["configmaps", "persistentvolumeclaims", "services"], "verbs": writes},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "update", "patch"]},
        {"apiGroups": ["extensions", "networking.k8s.io"], "resources": ["ingresses"],
         "verbs": ["get", "list", "watch", "create", "update", "delete"]},
        {"apiGroups": ["sparkoperator.k8s.io"], "resources": ["sparkapplications", "scheduledsparkapplications", "sparkconnects"],
         "verbs": writes},
        {"apiGroups": ["sparkoperator.k8s.io"],
         "resources": [f"{r}/{s}" for r in ("sparkapplications", "scheduledsparkapplications", "sparkconnects")
                       for s in ("status", "finalizers")], "verbs": ["get", "update", "patch"]},
    ]


def flink_operator_rules() -> list:
    """What the Flink operator needs in a watched namespace (the upstream chart's Role, verbs spelled out)."""
    writes = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
    return [
        {"apiGroups": [""], "resources": ["pods", "services", "events", "configmaps", "secrets"], "verbs": writes},
        {"apiGroups": ["apps"], "resources": ["deployments", "deployments/finalizers", "deployments/scale", "replicasets"],
         "verbs": writes},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": writes},
        {"apiGroups": ["flink.apache.org"],
         "resources": [f"{r}{s}" for r in ("flinkdeployments", "flinksessionjobs", "flinkstatesnapshots")
                       for s in ("", "/status", "/finalizers")], "verbs": writes},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": writes},
    ]


def _security_context(user: int) -> tuple[dict, dict]:
    pod = {"runAsNonRoot": True, "runAsUser": user, "runAsGroup": user, "fsGroup": user, "seccompProfile": {"type": "RuntimeDefault"}}
    container = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return pod, container


def _deployment(name: str, namespace: str, label: str, service_account: str, container: dict, volumes: list, user: int) -> dict:
    selector = {"app.kubernetes.io/name": label, "app.kubernetes.io/instance": name}
    pod_sc, container_sc = _security_context(user)
    meta = _meta(name, namespace, label)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": 1, "selector": {"matchLabels": selector},
                     "template": {"metadata": {"labels": {**meta["labels"], **selector}},
                                  "spec": {"serviceAccountName": service_account, "securityContext": pod_sc,
                                           "containers": [{**container, "securityContext": container_sc}],
                                           **({"volumes": volumes} if volumes else {})}}}}


def spark_operator_objects(plan: dict, settings: dict) -> list[dict]:
    ns, label, sa = settings["spark_namespace"], "spark-operator", SPARK_OPERATOR
    # Never empty: an empty --namespaces makes the controller watch every namespace.
    watched = plan["spark_namespaces"] or [ns]
    lock = f"{SPARK_OPERATOR}-lock"
    cluster_role = f"mlops-{settings['instance']}-{SPARK_OPERATOR}"
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(ns, None, label)},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(sa, ns, label)},
        # The controller's only cluster-wide reads (as the chart's ClusterRole with job namespaces set).
        _role(cluster_role, None, label, [
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
            {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["get"]}]),
        {"apiVersion": RBAC_API, "kind": "ClusterRoleBinding", "metadata": _meta(cluster_role, None, label),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
         "subjects": [_sa_subject(sa, ns)]},
        _role(SPARK_OPERATOR, ns, label, [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [lock], "verbs": ["get", "update"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "update", "patch"]}]),
        _binding(SPARK_OPERATOR, ns, label, "Role", [_sa_subject(sa, ns)]),
        _deployment(SPARK_OPERATOR, ns, label, sa, {
            "name": "spark-operator-controller", "image": settings["spark_operator_image"], "imagePullPolicy": "IfNotPresent",
            "args": ["controller", "start", f"--namespaces={','.join(watched)}", "--controller-threads=10",
                     "--enable-ui-service=true", "--enable-metrics=true", "--metrics-bind-address=:8080",
                     "--metrics-endpoint=/metrics", "--leader-election=true", f"--leader-election-lock-name={lock}",
                     f"--leader-election-lock-namespace={ns}"],
            "ports": [{"name": "metrics", "containerPort": 8080}],
            "livenessProbe": {"httpGet": {"port": 8081, "scheme": "HTTP", "path": "/healthz"}},
            "readinessProbe": {"httpGet": {"port": 8081, "scheme": "HTTP", "path": "/readyz"}},
            "resources": settings["operator_resources"]}, [], 185),
    ]
    return objects


FLINK_CONFIG = """\
# Written by mlops.platform (roles/processing): the operator watches the team namespaces that enable Flink.
kubernetes.operator.watched.namespaces: {watched}
kubernetes.operator.leader-election.enabled: true
kubernetes.operator.leader-election.lease-name: {name}-lease
kubernetes.operator.health.probe.enabled: true
kubernetes.operator.health.probe.port: 8085
kubernetes.operator.metrics.reporter.prom.factory.class: org.apache.flink.metrics.prometheus.PrometheusReporterFactory
kubernetes.operator.metrics.reporter.prom.port: 9999
"""
FLINK_LOG4J = """\
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = ConsoleAppender
appender.console.name = ConsoleAppender
appender.console.type = CONSOLE
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
"""


def flink_operator_objects(plan: dict, settings: dict) -> list[dict]:
    ns, label, sa = settings["flink_namespace"], "flink-kubernetes-operator", FLINK_OPERATOR
    watched = plan["flink_namespaces"] or [ns]
    config = f"{FLINK_OPERATOR}-config"
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(ns, None, label)},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(sa, ns, label)},
        _role(FLINK_OPERATOR, ns, label, [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ALL_VERBS},
            {"apiGroups": [""], "resources": ["configmaps", "events"], "verbs": ALL_VERBS}]),
        _binding(FLINK_OPERATOR, ns, label, "Role", [_sa_subject(sa, ns)]),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(config, ns, label),
         "data": {"config.yaml": FLINK_CONFIG.format(watched=",".join(watched), name=FLINK_OPERATOR),
                  "log4j-operator.properties": FLINK_LOG4J, "log4j-console.properties": FLINK_LOG4J}},
        _deployment(FLINK_OPERATOR, ns, label, sa, {
            "name": "flink-kubernetes-operator", "image": settings["flink_operator_image"], "imagePullPolicy": "IfNotPresent",
            "command": ["/docker-entrypoint.sh", "operator"],
            "env": [{"name": "OPERATOR_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "OPERATOR_NAME", "value": FLINK_OPERATOR},
                    {"name": "FLINK_CONF_DIR", "value": "/opt/flink/conf"},
                    {"name": "FLINK_PLUGINS_DIR", "value": "/opt/flink/plugins"},
                    {"name": "LOG_CONFIG", "value": "-Dlog4j.configurationFile=/opt/flink/conf/log4j-operator.properties"}],
            "ports": [{"name": "health", "containerPort": 8085}, {"name": "metrics", "containerPort": 9999}],
            "livenessProbe": {"httpGet": {"port": "health", "path": "/"}, "initialDelaySeconds": 30},
            "startupProbe": {"httpGet": {"port": "health", "path": "/"}, "failureThreshold": 30, "periodSeconds": 10},
            "volumeMounts": [{"name": "config", "mountPath": "/opt/flink/conf"}],
            "resources": settings["operator_resources"]},
            [{"name": "config", "configMap": {"name": config}}], 9999),
    ]


def team_objects(plan: dict, settings: dict) -> list[dict]:
    """Per enabled team namespace: the job ServiceAccounts and Roles, the operators' Roles, the team's own Roles."""
    objects: list[dict] = []
    for row in plan["namespaces"]:
        ns, team = row["namespace"], row["team"]
        if row["spark"]:
            sa = settings["spark_service_account"]
            objects += [
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(sa, ns, "spark", team)},
                _role(SPARK_DRIVER_ROLE, ns, "spark", [
                    {"apiGroups": [""], "resources": ["pods", "services", "configmaps", "persistentvolumeclaims"],
                     "verbs": [*ALL_VERBS, "deletecollection"]}], team),
                _binding(SPARK_DRIVER_ROLE, ns, "spark", "Role", [_sa_subject(sa, ns)], team),
                _role(SPARK_OPERATOR_ROLE, ns, "spark-operator", spark_operator_rules(), team),
                _binding(SPARK_OPERATOR_ROLE, ns, "spark-operator", "Role", [_sa_subject(SPARK_OPERATOR, settings["spark_namespace"])], team),
            ]
        if row["flink"]:
            sa = settings["flink_service_account"]
            objects += [
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(sa, ns, "flink", team)},
                _role(FLINK_JOB_ROLE, ns, "flink", [
                    {"apiGroups": [""], "resources": ["pods", "configmaps"], "verbs": [*ALL_VERBS, "deletecollection"]},
                    {"apiGroups": ["apps"], "resources": ["deployments", "deployments/finalizers"], "verbs": ALL_VERBS}], team),
                _binding(FLINK_JOB_ROLE, ns, "flink", "Role", [_sa_subject(sa, ns)], team),
                _role(FLINK_OPERATOR_ROLE, ns, "flink-kubernetes-operator", flink_operator_rules(), team),
                _binding(FLINK_OPERATOR_ROLE, ns, "flink-kubernetes-operator", "Role",
                         [_sa_subject(FLINK_OPERATOR, settings["flink_namespace"])], team),
            ]
        groups = [TEAM_RESOURCES[e] for e in ENGINES if row[e]]
        write = [{"apiGroups": [g], "resources": r, "verbs": ALL_VERBS} for g, r in groups]
        write += [{"apiGroups": [g], "resources": [f"{x}/status" for x in r], "verbs": READ_VERBS} for g, r in groups]
        read = [{"apiGroups": [g], "resources": [*r, *(f"{x}/status" for x in r)], "verbs": READ_VERBS} for g, r in groups]
        for name, rules, levels in ((SUBMIT_ROLE, write, ("admin", "edit")), (VIEW_ROLE, read, ("view",))):
            objects.append(_role(name, ns, COMPONENT, rules, team))
            subjects = _people(row, levels)
            if subjects:
                objects.append(_binding(name, ns, COMPONENT, "Role", subjects, team))
    return objects


# --------------------------------------------------------------------------------------------
# Airflow: api-server, scheduler (which migrates the metadata database first) and DAG processor
# --------------------------------------------------------------------------------------------
AIRFLOW = "airflow"
AIRFLOW_DAGS = "airflow-dags"
AIRFLOW_IMAGE = "docker.io/apache/airflow:3.3.2"  # the role's default (defaults/main.yml, files/airflow-requirements.txt)
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor")
# A ConfigMap holds at most 1 MiB; the DAGs must fit (with room for the object's metadata).
MAX_DAG_BYTES = 1000 * 1024
_CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
# The keys of processing_airflow_secret (the secrets role's secrets_airflow writes exactly these). [api] secret_key:
# one value for every component, or the API server cannot read the scheduler's task logs.
SECRET_KEYS = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sql_alchemy_conn", "AIRFLOW__CORE__FERNET_KEY": "fernet_key",
               "AIRFLOW__API_AUTH__JWT_SECRET": "jwt_secret", "AIRFLOW__API__SECRET_KEY": "api_secret_key"}


def dag_files(paths: list) -> dict:
    """``{file name: content}`` of the DAG files (the role's files/dags/*.py, found on the controller)."""
    out = {}
    for path in sorted(paths or []):
        with open(path, encoding="utf-8") as handle:
            out[os.path.basename(path)] = handle.read()
    return out


def dag_errors(dags: Any) -> list[str]:
    if not isinstance(dags, dict):
        return ["processing_airflow_dags: must be a mapping of file name to DAG source"]
    errors = [f"processing_airflow_dags: {name!r} is not a ConfigMap key. Fix: rename the file (letters, digits, '-', '_', '.')"
              for name in dags if not _CONFIGMAP_KEY.match(str(name))]
    size = sum(len(str(v).encode()) for v in dags.values())
    if size > MAX_DAG_BYTES:
        errors.append(f"processing_airflow_dags: {size} bytes of DAGs do not fit in one ConfigMap ({MAX_DAG_BYTES}). "
                      "Fix: ship fewer or smaller DAG files, or a git-sync sidecar")
    return errors


def airflow_objects(settings: dict) -> list[dict]:
    """A minimal Airflow 3 in its namespace: the DAGs as a ConfigMap, the metadata database, Fernet key and API
    JWT secret from the Secret ``airflow_secret`` (never rendered here), LocalExecutor."""
    ns, image = settings["airflow_namespace"], settings["airflow_image"]
    api = f"{AIRFLOW}-api-server"
    env = [{"name": name, "valueFrom": {"secretKeyRef": {"name": settings["airflow_secret"], "key": key}}}
           for name, key in SECRET_KEYS.items()]
    env += [{"name": "AIRFLOW__CORE__EXECUTOR", "value": "LocalExecutor"},
            {"name": "AIRFLOW__CORE__LOAD_EXAMPLES", "value": "False"},
            {"name": "AIRFLOW__CORE__DAGS_FOLDER", "value": "/opt/airflow/dags"},
            {"name": "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "value": f"http://{api}.{ns}.svc:8080/execution/"}]
    env += [{"name": str(k), "value": str(v)} for k, v in sorted(settings["airflow_env"].items())]
    env_from = [{"secretRef": {"name": name, "optional": True}} for name in settings["airflow_env_from_secrets"]]
    mounts = [{"name": "dags", "mountPath": "/opt/airflow/dags", "readOnly": True}]
    volumes = [{"name": "dags", "configMap": {"name": AIRFLOW_DAGS}}]
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(ns, None, AIRFLOW)},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(AIRFLOW, ns, AIRFLOW)},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(AIRFLOW_DAGS, ns, AIRFLOW),
         "data": dict(sorted(settings["airflow_dags"].items()))},
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta(api, ns, AIRFLOW),
         "spec": {"selector": {"app.kubernetes.io/name": AIRFLOW, "app.kubernetes.io/instance": api},
                  "ports": [{"name": "http", "port": 8080, "targetPort": "http"}]}},
    ]
    for component in AIRFLOW_COMPONENTS:
        name = f"{AIRFLOW}-{component}"
        container = {"name": component, "image": image, "imagePullPolicy": "IfNotPresent", "args": [component],
                     "env": env, **({"envFrom": env_from} if env_from else {}), "volumeMounts": mounts,
                     "resources": settings["airflow_resources"]}
        if component == "api-server":
            container["ports"] = [{"name": "http", "containerPort": 8080}]
            container["readinessProbe"] = {"httpGet": {"port": "http", "path": "/api/v2/monitor/health"}}
        deployment = _deployment(name, ns, AIRFLOW, AIRFLOW, container, volumes, 50000)
        if component == "scheduler":
            # The schema first: the scheduler starts on a migrated metadata database (idempotent).
            deployment["spec"]["template"]["spec"]["initContainers"] = [
                {**{k: v for k, v in container.items() if k not in ("volumeMounts",)}, "name": "migrate-database",
                 "args": ["db", "migrate"], "securityContext": deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]}]
        objects.append(deployment)
    return objects


def processing_objects(plan: dict, settings: dict) -> list[dict]:
    """Everything the role applies, namespaces first (one k8s_bundle call)."""
    objects: list[dict] = []
    if settings["spark"]:
        objects += spark_operator_objects(plan, settings)
    if settings["flink"]:
        objects += flink_operator_objects(plan, settings)
    objects += team_objects(plan, settings)
    if settings.get("airflow"):
        objects += airflow_objects(settings)
    # The instance label scopes the role's pruning to its own objects: a second instance on the same
    # cluster (another set of operator namespaces, a test's) is left alone.
    for obj in objects:
        obj["metadata"]["labels"][LABEL_INSTANCE] = settings["instance"]
    return sorted(objects, key=lambda o: o["kind"] != "Namespace")


def teardown_jobs(teams: list | None, values: dict) -> list[dict]:
    """The teams' job kinds per enabled namespace, to delete while the operators still run: their finalizers
    need them, and a namespace whose FlinkDeployment keeps a finalizer no operator removes never goes away."""
    settings = {**role_settings(values), "team_defaults": {}}
    plan = processing_plan(teams, settings)
    kinds = {"spark": [(SPARK_API, "ScheduledSparkApplication"), (SPARK_API, "SparkApplication")],
             "flink": [(FLINK_API, "FlinkSessionJob"), (FLINK_API, "FlinkDeployment"), (FLINK_API, "FlinkStateSnapshot")]}
    return [{"namespace": row["namespace"], "api_version": api, "kind": kind}
            for row in plan["namespaces"] for engine in ENGINES if row[engine] for api, kind in kinds[engine]]


# --------------------------------------------------------------------------------------------
# What a team submits (test fixtures and the README's example)
# --------------------------------------------------------------------------------------------
def spark_application(namespace: str, team: str, settings: dict, name: str = "spark-pi") -> dict:
    app = settings["spark_application"]

    def part(size: dict) -> dict:
        pod = spark_pod(size)
        out = {"cores": max(1, math.ceil(parse_quantity(size["cpu"]))), "coreRequest": pod["requests"]["cpu"],
               "coreLimit": pod["limits"]["cpu"], "memory": _spark_memory(size["memory"]),
               "memoryOverhead": _spark_memory(pod["overhead"]), "labels": _labels("spark", team),
               "securityContext": {"runAsNonRoot": True, "runAsUser": 185, "runAsGroup": 185,
                                   "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                   "seccompProfile": {"type": "RuntimeDefault"}}}
        return out

    driver = {**part(app["driver"]), "serviceAccount": settings["spark_service_account"]}
    executor = {**part(app["executor"]), "instances": int(app["executor"].get("instances", 1))}
    return {"apiVersion": SPARK_API, "kind": "SparkApplication", "metadata": _meta(name, namespace, "spark", team),
            "spec": {"type": "Scala", "mode": "cluster", "image": app["image"], "imagePullPolicy": "IfNotPresent",
                     "mainClass": "org.apache.spark.examples.SparkPi",
                     "mainApplicationFile": "local:///opt/spark/examples/jars/spark-examples.jar", "arguments": ["100"],
                     "sparkVersion": str(app["spark_version"]), "restartPolicy": {"type": "Never"},
                     "driver": driver, "executor": executor}}


def flink_deployment(namespace: str, team: str, settings: dict, name: str = "state-machine") -> dict:
    app = settings["flink_deployment"]

    def resource(size: dict) -> dict:
        return {"cpu": float(parse_quantity(size["cpu"])), "memory": _spark_memory(size["memory"])}

    return {"apiVersion": FLINK_API, "kind": "FlinkDeployment", "metadata": _meta(name, namespace, "flink", team),
            "spec": {"image": app["image"], "flinkVersion": app["flink_version"],
                     "serviceAccount": settings["flink_service_account"],
                     "flinkConfiguration": {"taskmanager.numberOfTaskSlots": "1"},
                     "jobManager": {"replicas": 1, "resource": resource(app["jobmanager"])},
                     "taskManager": {"replicas": int(app["taskmanager"].get("replicas", 1)), "resource": resource(app["taskmanager"])},
                     "job": {"jarURI": "local:///opt/flink/examples/streaming/StateMachineExample.jar",
                             "parallelism": int(app["taskmanager"].get("replicas", 1)), "upgradeMode": "stateless"}}}


def example_objects(plan: dict, settings: dict) -> list[dict]:
    """One SparkApplication and one FlinkDeployment per namespace that enables the engine."""
    objects = []
    for row in plan["namespaces"]:
        if row["spark"]:
            objects.append(spark_application(row["namespace"], row["team"], settings))
        if row["flink"]:
            objects.append(flink_deployment(row["namespace"], row["team"], settings))
    return objects


def example_pods(plan: dict, settings: dict) -> list[dict]:
    """Pods shaped like those the operators start for the examples (resources as they compute them), to dry-run
    against a team namespace's LimitRange and quota admission."""
    pods = []
    for row in plan["namespaces"]:
        for engine in ENGINES:
            if not row[engine]:
                continue
            for i, (pod, resources) in enumerate(app_pods(settings)[engine]):
                pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": _meta(f"{engine}-{pod}-{i}", row["namespace"], engine, row["team"]),
                             "spec": {"serviceAccountName": settings[f"{engine}_service_account"],
                                      "containers": [{"name": pod, "image": settings["spark_application"]["image"] if engine == "spark"
                                                      else settings["flink_deployment"]["image"],
                                                      "resources": {"requests": resources["requests"], "limits": resources["limits"]}}]}})
    return pods
