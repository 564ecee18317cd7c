# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Seldon Core v2 runtimes: validation, spec building, the quota preflight and the apply logic.

Used by the ``seldon_runtime`` module; everything but ``SeldonApi`` and ``converge`` is plain
Python over dicts, unit-tested without a cluster.

- ``validate_params`` checks the module's input (component names against the known set,
  replicas, quantities, DNS names) and returns every problem as a sentence with its fix.
- ``build_runtime`` / ``build_servers`` render the SeldonRuntime and Server objects.
- ``preflight`` works out what every enabled component container and Server container will
  request and limit once the API server has defaulted it (overrides merged over the
  SeldonConfig/ServerConfig base, requests copied from limits, LimitRange defaults filled in)
  and compares that with the namespace's LimitRanges and ResourceQuotas, the way the
  LimitRanger and ResourceQuota admission plugins will. This is seed 001's
  ``must specify limits.cpu`` turned into an error before anything is applied.
"""

from __future__ import annotations

import copy
import difflib
import re
import time
from fractions import Fraction
from typing import Any

from ansible_collections.mlops.platform.plugins.module_utils.kube import ApiError
from ansible_collections.mlops.platform.plugins.module_utils.quantity import (
    QuantityError,
    format_quantity,
    parse_quantity,
)
from ansible_collections.mlops.platform.plugins.module_utils.teams import (
    LABEL_MANAGED_BY,
    LABEL_PART_OF,
    LABEL_TEAM,
    MANAGED_BY,
    PART_OF,
)

GROUP = "mlops.seldon.io"
API_VERSION = f"{GROUP}/v1alpha1"
FIELD_MANAGER = "mlops.platform"

# SeldonRuntime components (override names) and the name of each one's main container.
COMPONENTS = {
    "hodometer": "hodometer",
    "seldon-scheduler": "scheduler",
    "seldon-envoy": "envoy",
    "seldon-dataflow-engine": "dataflow-engine",
    "seldon-modelgateway": "modelgateway",
    "seldon-pipelinegateway": "pipelinegateway",
}
# Components that only work with Kafka (Pipelines); without a bootstrap they only log errors.
KAFKA_COMPONENTS = ("seldon-modelgateway", "seldon-pipelinegateway", "seldon-dataflow-engine")
# The scheduler is a StatefulSet with one PersistentVolumeClaim per replica.
SCHEDULER_VOLUME = "1Gi"
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
# Condition types that say which component is not ready (status.conditions of a SeldonRuntime).
COMPONENT_CONDITIONS = {
    "SchedulerReady": "seldon-scheduler",
    "EnvoyReady": "seldon-envoy",
    "DataflowEngineReady": "seldon-dataflow-engine",
    "ModelGatewayReady": "seldon-modelgateway",
    "PipelineGatewayReady": "seldon-pipelinegateway",
    "HodometerReady": "hodometer",
}

# When the SeldonConfig cannot be read (no controller yet, or no permission), the preflight
# assumes the shape of the setup chart's defaults: requests and limits.memory, no limits.cpu
# (seed 001). Values from the chart's values.yaml where it sets them.
BUILTIN_COMPONENT_RESOURCES: dict[str, dict] = {
    "hodometer": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "32Mi"}},
    "seldon-scheduler": {"requests": {"cpu": "100m", "memory": "1G"}, "limits": {"memory": "1G"}},
    "seldon-envoy": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "128Mi"}},
    "seldon-dataflow-engine": {"requests": {"cpu": "1", "memory": "1G"}, "limits": {"memory": "1G"}},
    "seldon-modelgateway": {"requests": {"cpu": "100m", "memory": "1G"}, "limits": {"memory": "1G"}},
    "seldon-pipelinegateway": {"requests": {"cpu": "100m", "memory": "1G"}, "limits": {"memory": "1G"}},
}
# Server pods: rclone and agent next to the inference server container (named after the
# ServerConfig, mlserver or triton); each replica has a model volume claim.
BUILTIN_SERVER_CONTAINERS: dict[str, dict] = {
    "rclone": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "128Mi"}},
    "agent": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "128Mi"}},
    "server": {"requests": {"cpu": "100m", "memory": "1G"}, "limits": {"memory": "1G"}},
}
SERVER_VOLUME = "1Gi"

# Compute resources the preflight accounts for (quota keys requests.X, limits.X and bare X).
COMPUTE = ("cpu", "memory", "ephemeral-storage")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_INT32_MAX = 2**31 - 1


class SeldonError(Exception):
    """A problem the module reports with fail_json; ``details`` are returned alongside."""

    def __init__(self, msg: str, **details: Any) -> None:
        super().__init__(msg)
        self.details = details


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
def _is_dns_subdomain(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 253 and bool(_DNS1123_SUBDOMAIN.match(value))


def _check_replicas(errors: list[str], field: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > _INT32_MAX:
        errors.append(f"{field}: {value!r} is not a valid replica count. Fix: use a whole number from 0 "
                      "(0 stops the component; disable: true removes it).")


def _check_resources(errors: list[str], field: str, resources: Any) -> None:
    if resources is None:
        return
    if not isinstance(resources, dict) or set(resources) - {"requests", "limits", "claims"}:
        errors.append(f"{field}: must be a mapping with requests and/or limits. Fix: write it like "
                      "{{requests: {{cpu: 100m, memory: 256Mi}}, limits: {{cpu: 500m, memory: 512Mi}}}}.")
        return
    for kind in ("requests", "limits"):
        values = resources.get(kind) or {}
        if not isinstance(values, dict):
            errors.append(f"{field}.{kind}: must be a mapping of resource to quantity. Fix: e.g. {{cpu: 500m}}.")
            continue
        for resource, quantity in values.items():
            try:
                amount = parse_quantity(quantity)
            except QuantityError as exc:
                errors.append(f"{field}.{kind}.{resource}: {exc}. Fix: write a quantity such as 500m or 512Mi.")
                continue
            if amount < 0:
                errors.append(f"{field}.{kind}.{resource}: {quantity!r} is negative. Fix: use 0 or more.")
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    if isinstance(requests, dict) and isinstance(limits, dict):
        for resource in set(requests) & set(limits):
            try:
                if parse_quantity(requests[resource]) > parse_quantity(limits[resource]):
                    errors.append(f"{field}: requests.{resource} {requests[resource]} is above limits.{resource} "
                                  f"{limits[resource]}, which the API server refuses. Fix: lower the request or "
                                  "raise the limit.")
            except QuantityError:
                pass  # reported above


def _check_pod_spec(errors: list[str], field: str, pod_spec: Any) -> None:
    if pod_spec is None:
        return
    if not isinstance(pod_spec, dict):
        errors.append(f"{field}: must be a mapping (a partial PodSpec). Fix: e.g. {{containers: [{{name: scheduler, "
                      "resources: {{limits: {{cpu: 500m}}}}}}]}}.")
        return
    containers = pod_spec.get("containers", [])
    if not isinstance(containers, list):
        errors.append(f"{field}.containers: must be a list. Fix: write the containers as a YAML list.")
        return
    for i, container in enumerate(containers):
        if not isinstance(container, dict) or not isinstance(container.get("name"), str):
            errors.append(f"{field}.containers[{i}]: needs a name; overrides are merged into the component's "
                          "containers by name. Fix: add name: <container>.")
            continue
        _check_resources(errors, f"{field}.containers[{i}].resources", container.get("resources"))


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def validate_params(params: dict) -> list[str]:
    """Every problem in the module's parameters; empty when they are usable."""
    errors: list[str] = []
    for field in ("name", "namespace"):
        if not _is_dns_subdomain(params.get(field)) or (field == "namespace" and (
                len(params[field]) > 63 or not _DNS1123_LABEL.match(params[field]))):
            errors.append(f"{field}: {params.get(field)!r} is not a valid Kubernetes {field}. Fix: use lower-case "
                          "letters, digits and '-', starting and ending with a letter or digit.")
    if params.get("state", "present") == "absent":
        return errors
    if not _is_dns_subdomain(params.get("seldon_config")):
        errors.append(f"seldon_config: {params.get('seldon_config')!r} is not a SeldonConfig name. Fix: use the "
                      "name of a SeldonConfig in the controller namespace, normally 'default'.")
    known = sorted(COMPONENTS)
    seen: set[str] = set()
    for i, override in enumerate(params.get("overrides") or []):
        name = override.get("name")
        field = f"overrides[{i}]"
        if name not in COMPONENTS:
            hint = ("Servers are not runtime components: list them under servers. " if name in ("mlserver", "triton")
                    else _suggest(str(name), known))
            errors.append(f"{field}.name: {name!r} is not a SeldonRuntime component. Fix: {hint}use one of "
                          f"{', '.join(known)}.")
            continue
        if name in seen:
            errors.append(f"{field}.name: {name!r} is overridden twice. Fix: merge the two overrides.")
        seen.add(name)
        _check_replicas(errors, f"{field}.replicas ({name})", override.get("replicas"))
        _check_resources(errors, f"{field}.resources ({name})", override.get("resources"))
        _check_pod_spec(errors, f"{field}.pod_spec ({name})", override.get("pod_spec"))
    server_names: set[str] = set()
    for i, server in enumerate(params.get("servers") or []):
        field = f"servers[{i}]"
        name = server.get("name")
        if not _is_dns_subdomain(name):
            errors.append(f"{field}.name: {name!r} is not a valid Server name. Fix: use a DNS-1123 name such as "
                          "mlserver.")
        elif name in server_names:
            errors.append(f"{field}.name: Server {name!r} is listed twice. Fix: list it once.")
        server_names.add(name)
        if not _is_dns_subdomain(server.get("server_config")):
            errors.append(f"{field}.server_config: {server.get('server_config')!r} is not a ServerConfig name. "
                          "Fix: use mlserver, triton or your own ServerConfig.")
        for key in ("replicas", "min_replicas", "max_replicas"):
            _check_replicas(errors, f"{field}.{key} ({name})", server.get(key))
        low, high = server.get("min_replicas"), server.get("max_replicas")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            errors.append(f"{field} ({name}): min_replicas {low} is above max_replicas {high}. Fix: swap them.")
        _check_resources(errors, f"{field}.resources ({name})", server.get("resources"))
        _check_pod_spec(errors, f"{field}.pod_spec ({name})", server.get("pod_spec"))
    ratio = ((params.get("config") or {}).get("tracing") or {}).get("ratio")
    if ratio is not None:
        try:
            if not 0 <= float(ratio) <= 1:
                raise ValueError
        except (TypeError, ValueError):
            errors.append(f"config.tracing.ratio: {ratio!r} is not a sampling ratio. Fix: use a number from 0 to 1.")
    return errors


def runtime_entries(serving: list, team_overrides: dict, default_overrides: list, disabled: list) -> list[dict]:
    """The seldon_runtime module's ``runtimes``: one entry per serving namespace row, with the team's
    overrides (the default ones otherwise) and ``disable: true`` for every component in ``disabled``."""
    off = [{"name": name, "disable": True} for name in disabled]
    return [{"namespace": item["namespace"], "team": item.get("team"),
             "overrides": list(team_overrides.get(item.get("team"), default_overrides)) + off}
            for item in serving]


# --------------------------------------------------------------------------------------------
# Spec building
# --------------------------------------------------------------------------------------------
def platform_labels(team: str | None = None, extra: dict | None = None) -> dict:
    labels = dict(extra or {})
    labels.update({LABEL_MANAGED_BY: MANAGED_BY, LABEL_PART_OF: PART_OF})
    if team:
        labels[LABEL_TEAM] = team
    return labels


def _with_resources(pod_spec: dict | None, container: str, resources: dict | None) -> dict | None:
    """``pod_spec`` with ``resources`` set on ``container`` (merged into an existing entry)."""
    if not resources:
        return copy.deepcopy(pod_spec) if pod_spec else None
    spec = copy.deepcopy(pod_spec) if pod_spec else {}
    containers = spec.setdefault("containers", [])
    entry = next((c for c in containers if c.get("name") == container), None)
    if entry is None:
        entry = {"name": container}
        containers.append(entry)
    merged = entry.setdefault("resources", {})
    for kind in ("requests", "limits"):
        if resources.get(kind):
            merged[kind] = {**merged.get(kind, {}), **{k: str(v) for k, v in resources[kind].items()}}
    return spec


def _drop_none(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def build_config(config: dict | None) -> dict:
    """``spec.config`` of a SeldonRuntime from the module's snake_case ``config``."""
    config = config or {}
    out: dict[str, Any] = {}
    kafka = config.get("kafka") or {}
    if kafka:
        out["kafkaConfig"] = _drop_none({
            "bootstrap.servers": kafka.get("bootstrap_servers"),
            "topicPrefix": kafka.get("topic_prefix"),
            "consumerGroupIdPrefix": kafka.get("consumer_group_id_prefix"),
            "debug": kafka.get("debug"),
            "consumer": kafka.get("consumer") or None,
            "producer": kafka.get("producer") or None,
            "streams": kafka.get("streams") or None,
            "topics": kafka.get("topics") or None,
        })
    tracing = config.get("tracing") or {}
    if tracing:
        out["tracingConfig"] = _drop_none({
            "disable": tracing.get("disable"),
            "otelExporterEndpoint": tracing.get("otel_exporter_endpoint"),
            "otelExporterProtocol": tracing.get("otel_exporter_protocol"),
            "ratio": None if tracing.get("ratio") is None else str(tracing["ratio"]),
        })
    rclone = config.get("rclone") or {}
    if rclone:
        out["agentConfig"] = {"rclone": _drop_none({
            "config_secrets": rclone.get("config_secrets") or None,
            "config": rclone.get("config") or None,
        })}
    service = config.get("service") or {}
    if service:
        out["serviceConfig"] = _drop_none({
            "grpcServicePrefix": service.get("grpc_service_prefix"),
            "serviceType": service.get("service_type"),
        })
    return out


def build_runtime(params: dict) -> dict:
    """The SeldonRuntime object for validated module parameters."""
    overrides = []
    for override in params.get("overrides") or []:
        name = override["name"]
        item: dict[str, Any] = {"name": name}
        if override.get("disable") is not None:
            item["disable"] = bool(override["disable"])
        if override.get("replicas") is not None:
            item["replicas"] = override["replicas"]
        if override.get("service_type"):
            item["serviceType"] = override["service_type"]
        pod_spec = _with_resources(override.get("pod_spec"), COMPONENTS[name], override.get("resources"))
        if pod_spec:
            item["podSpec"] = pod_spec
        overrides.append(item)
    spec: dict[str, Any] = {"seldonConfig": params.get("seldon_config") or "default"}
    if overrides:
        spec["overrides"] = overrides
    config = build_config(params.get("config"))
    if config:
        spec["config"] = config
    if params.get("disable_auto_update"):
        spec["disableAutoUpdate"] = True
    return {
        "apiVersion": API_VERSION,
        "kind": "SeldonRuntime",
        "metadata": {"name": params["name"], "namespace": params["namespace"],
                     "labels": platform_labels(params.get("team"), params.get("labels"))},
        "spec": spec,
    }


def build_servers(params: dict) -> list[dict]:
    """The Server objects (one per entry of ``servers``) for validated module parameters."""
    servers = []
    for server in params.get("servers") or []:
        spec: dict[str, Any] = {"serverConfig": server.get("server_config") or "mlserver"}
        for key, field in (("replicas", "replicas"), ("min_replicas", "minReplicas"), ("max_replicas", "maxReplicas"),
                           ("capabilities", "capabilities"), ("extra_capabilities", "extraCapabilities")):
            if server.get(key) is not None:
                spec[field] = server[key]
        pod_spec = _with_resources(server.get("pod_spec"), spec["serverConfig"], server.get("resources"))
        if pod_spec:
            spec["podSpec"] = pod_spec
        servers.append({
            "apiVersion": API_VERSION,
            "kind": "Server",
            "metadata": {"name": server["name"], "namespace": params["namespace"],
                         "labels": platform_labels(params.get("team"), params.get("labels"))},
            "spec": spec,
        })
    return servers


# --------------------------------------------------------------------------------------------
# Quota preflight
# --------------------------------------------------------------------------------------------
def _containers_resources(pod_spec: dict | None) -> dict[str, dict]:
    out = {}
    for container in (pod_spec or {}).get("containers") or []:
        if isinstance(container, dict) and container.get("name"):
            out[container["name"]] = copy.deepcopy(container.get("resources") or {})
    return out


def _merge_resources(base: dict, override: dict) -> dict:
    """Strategic merge of two ResourceRequirements: requests and limits merge key by key."""
    merged = copy.deepcopy(base)
    for kind in ("requests", "limits"):
        if override.get(kind):
            merged[kind] = {**merged.get(kind, {}), **override[kind]}
    return merged


def seldon_config_resources(seldon_config: dict | None) -> dict[str, dict[str, dict]]:
    """``{component: {container: resources}}`` from a SeldonConfig object (base of a runtime)."""
    out: dict[str, dict[str, dict]] = {}
    for component in ((seldon_config or {}).get("spec") or {}).get("components") or []:
        out[component.get("name")] = _containers_resources(component.get("podSpec"))
    return out


def planned_pods(params: dict, seldon_config: dict | None = None,
                 server_configs: dict[str, dict] | None = None) -> list[dict]:
    """The pods a runtime (and its Servers) will run: ``[{owner, replicas, containers, claims}]``.

    ``containers`` maps container name to the resources before the API server's defaulting.
    ``seldon_config``/``server_configs`` are the live objects when readable; otherwise the
    chart-shaped built-in defaults stand in. Disabled components are left out, and so are the
    Kafka components when no Kafka bootstrap is configured (the role disables them; left
    enabled they would still be counted here).
    """
    base = seldon_config_resources(seldon_config) if seldon_config else {
        name: {COMPONENTS[name]: copy.deepcopy(res)} for name, res in BUILTIN_COMPONENT_RESOURCES.items()}
    overrides = {o["name"]: o for o in params.get("overrides") or [] if o.get("name") in COMPONENTS}
    pods = []
    for name in COMPONENTS:
        override = overrides.get(name, {})
        if override.get("disable"):
            continue
        replicas = override.get("replicas")
        replicas = 1 if replicas is None else replicas
        containers = copy.deepcopy(base.get(name) or {COMPONENTS[name]: {}})
        pod_spec = _with_resources(override.get("pod_spec"), COMPONENTS[name], override.get("resources"))
        for container, resources in _containers_resources(pod_spec).items():
            containers[container] = _merge_resources(containers.get(container, {}), resources)
        pods.append({"owner": name, "kind": "component", "replicas": replicas, "containers": containers,
                     "claims": [SCHEDULER_VOLUME] if name == "seldon-scheduler" else []})
    for server in params.get("servers") or []:
        config_name = server.get("server_config") or "mlserver"
        live = (server_configs or {}).get(config_name)
        if live:
            containers = _containers_resources((live.get("spec") or {}).get("podSpec"))
        else:
            containers = {config_name if k == "server" else k: copy.deepcopy(v)
                          for k, v in BUILTIN_SERVER_CONTAINERS.items()}
        pod_spec = _with_resources(server.get("pod_spec"), config_name, server.get("resources"))
        for container, resources in _containers_resources(pod_spec).items():
            containers[container] = _merge_resources(containers.get(container, {}), resources)
        replicas = server.get("replicas")
        pods.append({"owner": f"Server/{server['name']}", "kind": "server",
                     "replicas": 1 if replicas is None else replicas, "containers": containers,
                     "claims": [SERVER_VOLUME]})
    return pods


def _limit_range_container_limits(limit_ranges: list[dict]) -> list[dict]:
    """Container limits of LimitRange objects, with the API server's own defaulting applied."""
    items = []
    for lr in limit_ranges:
        for item in (lr.get("spec") or {}).get("limits") or []:
            if item.get("type") != "Container":
                continue
            item = copy.deepcopy(item)
            # The server defaults a LimitRange: default from max, defaultRequest from default.
            default = item.setdefault("default", {})
            for res, value in (item.get("max") or {}).items():
                default.setdefault(res, value)
            default_request = item.setdefault("defaultRequest", {})
            for res, value in default.items():
                default_request.setdefault(res, value)
            item["_name"] = (lr.get("metadata") or {}).get("name", "")
            items.append(item)
    return items


def _fmt(resource: str, value: Fraction) -> str:
    """A quantity for messages; memory that mixes G and Gi gets a rounded Mi/Gi reading too."""
    text = format_quantity(value, binary=resource != "cpu" and value >= 1024)
    if resource != "cpu" and text.isdigit() and value >= 2**20:
        unit, factor = ("Gi", 2**30) if value >= 2**30 else ("Mi", 2**20)
        text += f" (~{float(value / factor):.2f}{unit})"
    return text


def effective_resources(resources: dict, limit_items: list[dict]) -> dict[str, dict[str, Fraction]]:
    """Requests and limits of one container after pod defaulting and the LimitRanger."""
    requests = {k: parse_quantity(v) for k, v in (resources.get("requests") or {}).items()}
    limits = {k: parse_quantity(v) for k, v in (resources.get("limits") or {}).items()}
    # Pod defaulting: a limit without a request makes the request equal to the limit.
    for res, value in limits.items():
        requests.setdefault(res, value)
    for item in limit_items:
        for res, value in (item.get("default") or {}).items():
            limits.setdefault(res, parse_quantity(value))
        for res, value in (item.get("defaultRequest") or {}).items():
            requests.setdefault(res, parse_quantity(value))
    return {"requests": requests, "limits": limits}


def _quota_constraints(quotas: list[dict]) -> list[tuple[str, str, str, Fraction, Fraction]]:
    """``(quota, key, kind, hard, used)`` for every compute or count entry of the quotas."""
    out = []
    for quota in quotas:
        name = (quota.get("metadata") or {}).get("name", "")
        if (quota.get("spec") or {}).get("scopes") or (quota.get("spec") or {}).get("scopeSelector"):
            continue  # scoped quotas (PriorityClass, BestEffort...) are not modelled
        used = (quota.get("status") or {}).get("used") or {}
        for key, hard in ((quota.get("spec") or {}).get("hard") or {}).items():
            out.append((name, key, hard, parse_quantity(hard), parse_quantity(used.get(key, 0))))
    return out


def preflight(params: dict, quotas: list[dict], limit_ranges: list[dict], seldon_config: dict | None = None,
              server_configs: dict[str, dict] | None = None, exists: bool = False) -> dict:
    """Check that the runtime's pods will be admitted under the namespace's quotas and limits.

    Returns ``{errors, warnings, totals, pods}``: ``errors`` are sentences naming the component,
    the container, the resource, the numbers and the fix; ``totals`` what the pods add up to.
    ``exists``: the runtime is already running, so the quotas' ``used`` already includes it.
    """
    errors: list[str] = []
    warnings: list[str] = []
    items = _limit_range_container_limits(limit_ranges)
    constraints = _quota_constraints(quotas)
    pods = planned_pods(params, seldon_config, server_configs)
    totals: dict[str, Fraction] = {}
    ns = params["namespace"]
    for pod in pods:
        owner, replicas = pod["owner"], pod["replicas"]
        for container, resources in pod["containers"].items():
            eff = effective_resources(resources, items)
            where = f"{owner} (container {container})"
            if pod["kind"] == "component":
                fix_for = f"set overrides: [{{name: {owner}, resources: {{limits: {{%s}}}}}}]"
            else:
                fix_for = f"set servers: [{{name: {owner.split('/', 1)[1]}, resources: {{limits: {{%s}}}}}}]"
            for res, request in eff["requests"].items():
                limit = eff["limits"].get(res)
                if limit is not None and request > limit:
                    source = ("the LimitRange default" if res not in (resources.get("limits") or {})
                              else "its limit")
                    fix = fix_for % f"{res}: {_fmt(res, request)}"
                    errors.append(
                        f"{where}: requests.{res} {_fmt(res, request)} is above limits.{res} {_fmt(res, limit)} "
                        f"({source}); the API server refuses the pod. Fix: {fix} or raise the LimitRange default "
                        f"{res} limit in namespace {ns}.")
            for item in items:
                for res, high in (item.get("max") or {}).items():
                    value = eff["limits"].get(res)
                    if value is not None and value > parse_quantity(high):
                        errors.append(f"{where}: limits.{res} {_fmt(res, value)} is above the LimitRange "
                                      f"{item['_name']} max {high}. Fix: lower it, or raise the max.")
                for res, low in (item.get("min") or {}).items():
                    value = eff["requests"].get(res)
                    if value is None or value < parse_quantity(low):
                        errors.append(f"{where}: requests.{res} {'unset' if value is None else _fmt(res, value)} is "
                                      f"below the LimitRange {item['_name']} min {low}. Fix: request at least {low}.")
            for quota, key, _hard_text, _hard, _used in constraints:
                kind, _dot, res = key.rpartition(".")
                if res not in COMPUTE or kind not in ("", "requests", "limits"):
                    continue
                values = eff["limits"] if kind == "limits" else eff["requests"]
                if res not in values:
                    field = "limits" if kind == "limits" else "requests"
                    fix = (fix_for % f"{res}: <quantity>").replace("limits:", f"{field}:")
                    default_key = "default" if field == "limits" else "default_request"
                    errors.append(
                        f"{where}: no {field}.{res}, but ResourceQuota {quota} constrains {key}, so the pod is "
                        f"refused ('must specify {field}.{res}'). Fix: {fix}, or give namespace {ns} a LimitRange "
                        f"with a default {res} {field[:-1]} (team limit_range.{default_key}.{res}).")
            for kind, values in (("requests", eff["requests"]), ("limits", eff["limits"])):
                for res, value in values.items():
                    totals[f"{kind}.{res}"] = totals.get(f"{kind}.{res}", Fraction(0)) + value * replicas
        totals["pods"] = totals.get("pods", Fraction(0)) + replicas
        if pod["claims"]:
            totals["persistentvolumeclaims"] = totals.get("persistentvolumeclaims", Fraction(0)) + \
                replicas * len(pod["claims"])
            totals["requests.storage"] = totals.get("requests.storage", Fraction(0)) + \
                replicas * sum(parse_quantity(c) for c in pod["claims"])
    for quota, key, hard_text, hard, used in constraints:
        wanted = totals.get(key)
        if wanted is None and key in COMPUTE:
            wanted = totals.get(f"requests.{key}")
        if wanted is None:
            continue
        res = key.rpartition(".")[2]
        if wanted > hard:
            errors.append(f"the runtime needs {key} {_fmt(res, wanted)} in total, over ResourceQuota {quota} "
                          f"hard {hard_text}. Fix: lower replicas or resources in the overrides, disable components "
                          f"you do not use, or raise the team's quota for namespace {ns}.")
        elif not exists and used + wanted > hard:
            warnings.append(f"ResourceQuota {quota}: {key} used {_fmt(res, used)} + {_fmt(res, wanted)} for the "
                            f"runtime is over hard {hard_text}; some pods may wait until others stop.")
    return {"errors": errors, "warnings": warnings,
            "totals": {k: format_quantity(v, binary=k.rpartition(".")[2] != "cpu" and v >= 1024)
                       for k, v in sorted(totals.items())},
            "pods": [{"owner": p["owner"], "replicas": p["replicas"]} for p in pods]}


# --------------------------------------------------------------------------------------------
# Comparing and waiting
# --------------------------------------------------------------------------------------------
_VOLATILE_METADATA = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp")


def comparable(obj: dict | None) -> dict:
    """An object without the fields the server changes on its own (status, bookkeeping)."""
    if not obj:
        return {}
    obj = copy.deepcopy(obj)
    obj.pop("status", None)
    meta = obj.get("metadata") or {}
    for key in _VOLATILE_METADATA:
        meta.pop(key, None)
    return obj


def runtime_readiness(obj: dict | None) -> tuple[bool, list[dict]]:
    """``(ready, not_ready_conditions)`` from a SeldonRuntime's status.

    Ready means the ``Ready`` condition is ``True``; the other list names every condition that
    is not ``True`` with the component it belongs to, for a message that says what to look at.
    """
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    pending = [{"type": c.get("type"), "component": COMPONENT_CONDITIONS.get(c.get("type"), ""),
                "status": c.get("status"), "reason": c.get("reason", ""), "message": c.get("message", "")}
               for c in conditions if c.get("status") != "True"]
    return ready, pending


def describe_pending(pending: list[dict]) -> str:
    if not pending:
        return "no conditions reported yet (is the Seldon controller running and watching this namespace?)"
    parts = []
    for p in pending:
        text = p["type"] + (f" ({p['component']})" if p["component"] else "") + f"={p['status']}"
        text += (f" {p['reason']}" if p["reason"] else "") + (f": {p['message']}" if p["message"] else "")
        parts.append(text)
    return "; ".join(parts)


# --------------------------------------------------------------------------------------------
# The API side (the collection's REST client underneath)
# --------------------------------------------------------------------------------------------
class SeldonApi:
    """Reads and writes through the collection's REST client (module_utils.kube); writes are
    server-side dry-runs when ``dry_run`` is set (check mode)."""

    def __init__(self, client: Any, dry_run: bool = False) -> None:
        self.client = client
        self.dry_run = dry_run
        self.writes = 0

    def _known(self, kind: str, api_version: str) -> None:
        if self.client.resource(api_version, kind) is None:
            raise SeldonError(
                f"the API server does not know {kind} ({api_version}). Fix: install the Seldon Core v2 CRDs "
                "first (the mlops.platform.seldon role installs the seldon-core-v2-crds chart).")

    def get(self, kind: str, api_version: str, name: str, namespace: str | None = None) -> dict | None:
        self._known(kind, api_version)
        return self.client.get(api_version, kind, name, namespace)

    def get_optional(self, kind: str, api_version: str, name: str, namespace: str) -> dict | None:
        """Like get, but None also when the kind is unknown or reading is forbidden."""
        try:
            return self.get(kind, api_version, name, namespace)
        except (SeldonError, ApiError):
            return None

    def list(self, kind: str, api_version: str, namespace: str) -> list[dict]:
        self._known(kind, api_version)
        return self.client.list(api_version, kind, namespace)

    def apply(self, obj: dict) -> dict:
        self.writes += 0 if self.dry_run else 1
        self._known(obj["kind"], obj["apiVersion"])
        return self.client.apply(obj, FIELD_MANAGER, force=True, dry_run=self.dry_run)

    def delete(self, kind: str, api_version: str, name: str, namespace: str) -> None:
        self.writes += 0 if self.dry_run else 1
        self._known(kind, api_version)
        self.client.delete(api_version, kind, name, namespace, dry_run=self.dry_run)


def _api_error(exc: Exception, action: str) -> SeldonError:
    return SeldonError(f"{action} failed: {exc}")


def read_preflight_inputs(api: SeldonApi, params: dict) -> dict:
    """The live objects the preflight reads: quotas, limit ranges, SeldonConfig, ServerConfigs."""
    namespace, controller_ns = params["namespace"], params.get("controller_namespace") or "seldon-system"
    server_configs = {}
    for server in params.get("servers") or []:
        name = server.get("server_config") or "mlserver"
        found = api.get_optional("ServerConfig", API_VERSION, name, controller_ns)
        if found:
            server_configs[name] = found
    return {
        "quotas": api.list("ResourceQuota", "v1", namespace),
        "limit_ranges": api.list("LimitRange", "v1", namespace),
        "seldon_config": api.get_optional("SeldonConfig", API_VERSION, params.get("seldon_config") or "default",
                                          controller_ns),
        "server_configs": server_configs,
    }


def converge(api: SeldonApi, params: dict, check_mode: bool, sleep=time.sleep, clock=time.monotonic) -> dict:
    """Bring the runtime (and its Servers) to ``params['state']``; return the module result.

    Raises SeldonError (nothing written) for invalid input, a missing namespace or a failed
    preflight, and after a write when ``wait`` times out.
    """
    errors = validate_params(params)
    if errors:
        raise SeldonError(f"seldon_runtime {params.get('namespace')}/{params.get('name')}: {len(errors)} problem(s), "
                          "nothing was changed: " + " ".join(errors), problems=errors)
    name, namespace = params["name"], params["namespace"]
    try:
        return _converge(api, params, check_mode, sleep, clock)
    except ApiError as exc:
        # Reads the module needs (namespace, quotas, limit ranges, the objects themselves).
        raise _api_error(exc, f"reading what seldon_runtime {namespace}/{name} needs (check the credentials' "
                              "permissions: get namespaces; list resourcequotas and limitranges; get, patch and "
                              "delete seldonruntimes and servers)") from exc


def _converge(api: SeldonApi, params: dict, check_mode: bool, sleep, clock) -> dict:
    name, namespace = params["name"], params["namespace"]
    if api.get("Namespace", "v1", namespace) is None:
        raise SeldonError(f"namespace {namespace!r} does not exist, nothing was changed. Fix: create it first "
                          "(the mlops.platform.team_isolation role creates the namespaces of teams with serving: "
                          "true) or correct the namespace.")
    desired = [build_runtime(params), *build_servers(params)]
    before = {(o["kind"], o["metadata"]["name"]): api.get(o["kind"], API_VERSION, o["metadata"]["name"], namespace)
              for o in desired}
    result: dict[str, Any] = {"changed": False, "preflight": {}}

    if params.get("state") == "absent":
        present = [key for key, obj in before.items() if obj]
        for kind, obj_name in sorted(present, key=lambda k: k[0] != "Server"):  # Servers before the runtime
            try:
                api.delete(kind, API_VERSION, obj_name, namespace)
            except ApiError as exc:
                raise _api_error(exc, f"deleting {kind} {namespace}/{obj_name}") from exc
        result.update(changed=bool(present), runtime={}, servers=[],
                      diff={"before": {"runtime": comparable(before[("SeldonRuntime", name)]),
                                       "servers": [comparable(o) for k, o in before.items() if k[0] == "Server" and o]},
                            "after": {"runtime": {}, "servers": []}})
        return result

    if params.get("preflight", True):
        inputs = read_preflight_inputs(api, params)
        check = preflight(params, inputs["quotas"], inputs["limit_ranges"], inputs["seldon_config"],
                          inputs["server_configs"], exists=before[("SeldonRuntime", name)] is not None)
        check["base"] = "SeldonConfig" if inputs["seldon_config"] else "built-in chart defaults"
        result["preflight"] = check
        if check["errors"]:
            raise SeldonError(
                f"seldon_runtime {namespace}/{name}: the quota preflight found {len(check['errors'])} problem(s); "
                "the pods would be refused, so nothing was applied: " + " ".join(check["errors"]),
                preflight=check)

    after = {}
    for obj in desired:
        key = (obj["kind"], obj["metadata"]["name"])
        try:
            after[key] = api.apply(obj)
        except ApiError as exc:
            raise _api_error(exc, f"applying {obj['kind']} {namespace}/{obj['metadata']['name']}") from exc
    changed = any(comparable(before[k]) != comparable(after[k]) for k in after)
    runtime = after[("SeldonRuntime", name)]
    result.update(
        changed=changed,
        runtime=comparable(runtime),
        servers=[comparable(o) for k, o in after.items() if k[0] == "Server"],
        diff={"before": {"runtime": comparable(before[("SeldonRuntime", name)]),
                         "servers": [comparable(o) for k, o in before.items() if k[0] == "Server" and o]},
              "after": {"runtime": comparable(runtime),
                        "servers": [comparable(o) for k, o in after.items() if k[0] == "Server"]}},
    )
    if params.get("wait") and not check_mode:
        deadline = clock() + params.get("wait_timeout", 300)
        while True:
            current = api.get("SeldonRuntime", API_VERSION, name, namespace)
            ready, pending = runtime_readiness(current)
            if ready:
                result["conditions"] = ((current or {}).get("status") or {}).get("conditions") or []
                break
            if clock() >= deadline:
                raise SeldonError(
                    f"SeldonRuntime {namespace}/{name} was applied but is not Ready after "
                    f"{params.get('wait_timeout', 300)}s: {describe_pending(pending)}. Fix: look at the pods and "
                    f"events in {namespace} (kubectl -n {namespace} get pods,events) and the controller's log.",
                    conditions=pending, changed=changed, runtime=comparable(runtime))
            sleep(params.get("wait_sleep", 5))
    return result
