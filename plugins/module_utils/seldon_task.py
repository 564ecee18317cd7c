# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The seldon_runtime task: argument spec and the two passes over all runtimes.

Shared by the module and its controller-side action (plugin_utils/on_controller.py).
"""

from __future__ import annotations

import copy
import os
import re

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.mlops.platform.plugins.module_utils.bundle import connect, load_definitions, record, render_only
from ansible_collections.mlops.platform.plugins.module_utils.kube import Failed, KubeError
from ansible_collections.mlops.platform.plugins.module_utils.seldon import (
    API_VERSION,
    KAFKA_COMPONENTS,
    SeldonApi,
    SeldonError,
    build_runtime,
    build_servers,
    converge,
    preflight,
    runtime_entries,
    validate_params,
)
from ansible_collections.mlops.platform.plugins.module_utils.teams import (
    LIMIT_RANGE_NAME,
    QUOTA_NAME,
    admission_specs,
    namespace_errors,
    normalize_teams,
    role_defaults,
    team_namespaces,
    validate_teams,
)

SERVICE_TYPES = ["ClusterIP", "NodePort", "LoadBalancer"]
OVERRIDE_OPTIONS = dict(
    name=dict(type="str", required=True),
    replicas=dict(type="int"),
    disable=dict(type="bool"),
    service_type=dict(type="str", choices=SERVICE_TYPES),
    resources=dict(type="dict"),
    pod_spec=dict(type="dict"),
)


ARGUMENT_SPEC = dict(
    kubeconfig=dict(type="path"),
    context=dict(type="str"),
    render_dir=dict(type="path"),
    render_only=dict(type="bool", default=False),
    cluster_exists=dict(type="bool", default=True),
    name=dict(type="str", required=True),
    namespace=dict(type="str"),
    runtimes=dict(type="list", elements="dict", options=dict(
        namespace=dict(type="str", required=True),
        team=dict(type="str"),
        overrides=dict(type="list", elements="dict"),
        kafka=dict(type="dict"),
    )),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    seldon_config=dict(type="str", default="default"),
    overrides=dict(type="list", elements="dict", default=[], options=copy.deepcopy(OVERRIDE_OPTIONS)),
    config=dict(type="dict", options=dict(
        kafka=dict(type="dict", options=dict(
            bootstrap_servers=dict(type="str"),
            topic_prefix=dict(type="str"),
            consumer_group_id_prefix=dict(type="str"),
            debug=dict(type="str"),
            consumer=dict(type="dict"),
            producer=dict(type="dict"),
            streams=dict(type="dict"),
            topics=dict(type="dict"),
        )),
        tracing=dict(type="dict", options=dict(
            disable=dict(type="bool"),
            otel_exporter_endpoint=dict(type="str"),
            otel_exporter_protocol=dict(type="str", choices=["grpc", "http"]),
            ratio=dict(type="str"),
        )),
        rclone=dict(type="dict", options=dict(
            config_secrets=dict(type="list", elements="str", no_log=False),
            config=dict(type="list", elements="str"),
        )),
        service=dict(type="dict", options=dict(
            grpc_service_prefix=dict(type="str"),
            service_type=dict(type="str", choices=SERVICE_TYPES),
        )),
    )),
    disable_auto_update=dict(type="bool", default=False),
    servers=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True),
        server_config=dict(type="str", default="mlserver"),
        replicas=dict(type="int"),
        min_replicas=dict(type="int"),
        max_replicas=dict(type="int"),
        capabilities=dict(type="list", elements="str"),
        extra_capabilities=dict(type="list", elements="str"),
        resources=dict(type="dict"),
        pod_spec=dict(type="dict"),
    )),
    team=dict(type="str"),
    labels=dict(type="dict", default={}),
    preflight=dict(type="bool", default=True),
    controller_namespace=dict(type="str", default="seldon-system"),
    wait=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=300),
    wait_sleep=dict(type="int", default=5),
)


def runtime_params(params: dict) -> list[dict]:
    """One parameter set per runtime: the top-level settings with each runtime's namespace, team, overrides."""
    if not params["runtimes"]:
        return [params]
    for index, item in enumerate(params["runtimes"]):
        for number, override in enumerate(item["overrides"] or []):
            unknown = sorted(set(override) - set(OVERRIDE_OPTIONS))
            if unknown or "name" not in override:
                raise SeldonError(f"runtimes[{index}].overrides[{number}]: unknown key(s) {unknown} or no name; "
                                  f"use {', '.join(OVERRIDE_OPTIONS)}, as in overrides")
            for key in OVERRIDE_OPTIONS:
                override.setdefault(key, None)
    return [{**params, "namespace": item["namespace"], "team": item["team"] or params["team"],
             "overrides": params["overrides"] if item["overrides"] is None else item["overrides"],
             # A runtime's own Kafka settings (its consumer group prefix) over the shared ones.
             "config": _runtime_config(params.get("config"), item.get("kafka"))}
            for item in params["runtimes"]]


def _runtime_config(config: dict | None, kafka: dict | None) -> dict | None:
    if not kafka or not (config or {}).get("kafka"):
        return config
    return {**config, "kafka": {**config["kafka"], **{k: v for k, v in kafka.items() if v is not None}}}


PENDING = {"changed": True, "pending": "its namespace or the Seldon CRDs do not exist yet", "runtime": {}, "servers": [],
           "preflight": {}, "diff": {}}


def pending_in_check_mode(client, each: list[dict]) -> set[str]:
    """Namespaces whose runtime check mode cannot dry-run: they, or the CRDs, would be created by earlier roles."""
    if any(p["state"] == "absent" for p in each):
        return set()
    crds = client.resource(API_VERSION, "SeldonRuntime") is not None
    return {p["namespace"] for p in each if not crds or client.get("v1", "Namespace", p["namespace"]) is None}


VALIDATOR_KWARGS = {"required_one_of": [("namespace", "runtimes")], "mutually_exclusive": [("namespace", "runtimes")]}


# The bundle name of the runtimes' file in render_dir (the gitops tree's component map reads it).
RENDER_NAME = "seldon-runtimes"


def rendered_admission(render_dir: str) -> dict[str, dict[str, list[dict]]]:
    """``{namespace: {quotas, limit_ranges}}`` from the files the roles rendered before (team_isolation's
    ResourceQuotas and LimitRanges): what the GitOps engine will apply, read from disk, not the cluster."""
    found: dict[str, dict[str, list[dict]]] = {}
    if not os.path.isdir(render_dir):
        return found
    for name in sorted(os.listdir(render_dir)):
        if not re.match(r"^\d+-.+\.yaml$", name):
            continue
        for obj in load_definitions(os.path.join(render_dir, name)):
            kind = obj.get("kind") if isinstance(obj, dict) else None
            if obj.get("apiVersion") == "v1" and kind in ("ResourceQuota", "LimitRange"):
                entry = found.setdefault((obj.get("metadata") or {}).get("namespace", ""), {"quotas": [], "limit_ranges": []})
                entry["quotas" if kind == "ResourceQuota" else "limit_ranges"].append(obj)
    return found


def render_runtimes(params: dict) -> dict:
    """GitOps render mode: every runtime validated and preflighted, then the SeldonRuntimes and Servers
    written to render_dir by k8s_bundle's own writer (bundle.render_only: same checks, same file format).
    No cluster is contacted: the quota preflight reads the ResourceQuotas and LimitRanges rendered into the
    same directory before (team_isolation), with the setup chart's built-in resources as the base (the live
    SeldonConfig is not read: in GitOps mode the chart is installed by the engine, with the same values)."""
    invocation = {"module_args": {k: v for k, v in params.items() if k not in ("kubeconfig", "context")}}
    if params["state"] != "present":
        raise Failed("render_only renders runtimes that are present; for state absent remove them from the inventory "
                     "(the GitOps engine prunes what leaves the tree)", api_writes=0)
    each = runtime_params(params)
    admission = rendered_admission(params["render_dir"]) if params["render_dir"] else {}
    runtimes = []
    for p in each:
        errors = validate_params(p)
        if errors:
            raise SeldonError(f"seldon_runtime {p['namespace']}/{p['name']}: {len(errors)} problem(s), nothing was "
                              "rendered: " + " ".join(errors), problems=errors)
        check: dict = {}
        if p["preflight"]:
            inputs = admission.get(p["namespace"], {"quotas": [], "limit_ranges": []})
            check = preflight(p, inputs["quotas"], inputs["limit_ranges"], exists=True)
            check["base"] = "built-in chart defaults; rendered ResourceQuota and LimitRange" if inputs["quotas"] or \
                inputs["limit_ranges"] else "built-in chart defaults; no ResourceQuota or LimitRange rendered"
            if check["errors"]:
                raise SeldonError(f"seldon_runtime {p['namespace']}/{p['name']}: the quota preflight found "
                                  f"{len(check['errors'])} problem(s); the pods would be refused, so nothing was rendered: "
                                  + " ".join(check["errors"]), preflight=check)
        runtimes.append({"namespace": p["namespace"], "changed": False, "preflight": check, "runtime": build_runtime(p),
                         "servers": build_servers(p)})
    objects = [obj for r in runtimes for obj in (r["runtime"], *r["servers"])]
    result = render_only({"render_dir": params["render_dir"], "name": RENDER_NAME, "definitions": objects}, invocation)
    result["api_writes"] = 0
    if params["runtimes"]:
        result["runtimes"] = runtimes
    else:
        result.update({k: v for k, v in runtimes[0].items() if k != "namespace"})
    return result


def run_runtimes(params: dict, check_mode: bool, diff: bool) -> dict:
    """The whole seldon_runtime task: returns its result or raises Failed."""
    writes = 0
    if params.get("render_only"):
        try:
            return render_runtimes(params)
        except SeldonError as exc:
            raise Failed(str(exc), api_writes=0, **exc.details) from exc
        except KubeError as exc:
            raise Failed(str(exc), api_writes=0) from exc
    if not params["cluster_exists"]:
        if not check_mode:
            raise Failed("cluster_exists is false outside check mode: the cluster is not there. Fix: run the "
                         "mlops.platform.cluster role with cluster_create: true first", api_writes=0)
        each = runtime_params(params)
        runtimes = [{"namespace": p["namespace"], **PENDING, "pending": "the cluster does not exist yet"} for p in each]
        for runtime in runtimes:
            runtime.pop("diff")
        return {"changed": bool(runtimes), "api_writes": 0, "runtimes": runtimes}
    try:
        each = runtime_params(params)
        client = connect(params["kubeconfig"], params["context"])
        # Pass 1, for all runtimes before any write: validation, namespace, preflight, server-side dry-run.
        dry = SeldonApi(client, dry_run=True)
        pending = pending_in_check_mode(client, each) if check_mode else set()
        planned = [PENDING if p["namespace"] in pending else converge(dry, p, check_mode=True) for p in each]
        results = planned
        if not check_mode:
            # Pass 2: write what the dry-run says differs (and wait, when asked, for every runtime).
            api = SeldonApi(client)
            results = [converge(api, p, check_mode=False) if plan["changed"] or p["wait"] else plan
                       for p, plan in zip(each, planned, strict=True)]
            writes = api.writes
            if params["render_dir"] and params["state"] == "present":
                record(params["render_dir"], RENDER_NAME,
                       [obj for p in each for obj in (build_runtime(p), *build_servers(p))])
        client.close()
    except SeldonError as exc:
        raise Failed(str(exc), api_writes=writes, **exc.details) from exc
    except KubeError as exc:
        raise Failed(str(exc), api_writes=writes) from exc
    results = [dict(result) for result in results]
    diffs = [result.pop("diff") for result in results]
    if not params["runtimes"]:
        result = {**results[0], "api_writes": writes}
        if diff:
            result["diff"] = diffs[0]
        return result
    output = {"changed": any(r["changed"] for r in results), "api_writes": writes,
              "runtimes": [{"namespace": p["namespace"], **r} for p, r in zip(each, results, strict=True)]}
    if diff:
        output["diff"] = [{**d, "before_header": p["namespace"], "after_header": p["namespace"]}
                          for p, d, r in zip(each, diffs, results, strict=True) if r["changed"]]
    return output


def variable_errors(values: dict, context: dict | None = None) -> list[str]:
    """The seldon role's checks beyond its argument spec, run by mlops.platform.validate_roles.

    The role's overrides and servers as the seldon_runtime module reads them (its argument spec and
    ``validate_params``), and, with ``seldon_preflight``, the quota preflight of every serving namespace
    against the ResourceQuota and LimitRange its team gets from the team_isolation role: a quota below
    what the runtime needs stops the play before the first role changes anything, not in the last role.
    The base is the chart's defaults (the live SeldonConfig is not read here). The team model's own
    problems are the team_isolation check's; with an invalid model the runtimes are not checked.
    """
    context = {**(context or {}), **values}
    errors = namespace_errors("seldon_namespace", values["seldon_namespace"]) if "seldon_namespace" in values else []
    teams, defaults = values.get("seldon_teams") or [], role_defaults(context)
    if validate_teams(teams, defaults):
        return errors
    # Kafka: the override, or the kafka role in the same play (validate_roles' context) with a mode other than none.
    kafka = bool(values.get("seldon_kafka_bootstrap")) or context.get("kafka_mode", "none") != "none"
    serving = [row for row in team_namespaces(teams, defaults) if row["serving"]]
    team_overrides, default_overrides = values.get("seldon_team_runtime_overrides") or {}, values.get("seldon_runtime_overrides") or []
    tuned = sorted({o.get("name") for o in [*default_overrides, *(x for v in team_overrides.values() for x in v or [])]
                    if isinstance(o, dict)} & set(KAFKA_COMPONENTS)) if not kafka else []
    if tuned:
        return [*errors, f"seldon_runtime_overrides or seldon_team_runtime_overrides: overrides for {', '.join(tuned)} but no "
                "Kafka is configured, so these components are disabled. Fix: run the kafka role (kafka_mode strimzi or "
                "external), set seldon_kafka_bootstrap, or remove those overrides"]
    params = {"name": values.get("seldon_runtime_name", "seldon"), "seldon_config": values.get("seldon_config_name", "default"),
              "runtimes": runtime_entries(serving, team_overrides, default_overrides, [] if kafka else list(KAFKA_COMPONENTS)),
              "servers": values.get("seldon_servers") or [], "controller_namespace": values.get("seldon_namespace", "seldon-system")}
    if not serving:
        return errors
    found = ArgumentSpecValidator(ARGUMENT_SPEC, **VALIDATOR_KWARGS).validate(params)
    if found.error_messages:
        return errors + [f"seldon_runtime_overrides, seldon_team_runtime_overrides or seldon_servers, as the seldon_runtime "
                         f"module reads them: {message}" for message in found.error_messages]
    try:
        each = runtime_params(found.validated_parameters)
    except SeldonError as exc:
        return [*errors, f"seldon_runtime_overrides or seldon_team_runtime_overrides: {exc}"]
    specs = {}
    for team in normalize_teams(teams, defaults):
        specs[team["name"]] = admission_specs(team)
    for runtime in each:
        source = (f"seldon_team_runtime_overrides.{runtime['team']}" if runtime["team"] in team_overrides
                  else "seldon_runtime_overrides")
        problems = [p.replace("overrides[", f"{source}[", 1).replace("servers[", "seldon_servers[", 1)
                    for p in validate_params(runtime)]
        if not problems and values.get("seldon_preflight", True):
            quota, limit_range = specs[runtime["team"]]
            problems = [f"team '{runtime['team']}': quota: {p}" for p in preflight(
                runtime, [{"metadata": {"name": QUOTA_NAME}, "spec": quota}] if quota else [],
                [{"metadata": {"name": LIMIT_RANGE_NAME}, "spec": limit_range}] if limit_range else [])["errors"]]
        errors += [f"SeldonRuntime {runtime['namespace']}/{runtime['name']}: {p}" for p in problems]
    return list(dict.fromkeys(errors))
