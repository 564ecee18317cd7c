"""module_utils/seldon.py: validation, spec building, the quota preflight and the converge logic (fake API)."""

from __future__ import annotations

import copy

import pytest
from ansible_collections.mlops.platform.plugins.module_utils import seldon as sd

# Seed 001: the SeldonRuntime of financial-ml, all six components at one replica.
SEED_001 = {
    "name": "financial-ml-runtime",
    "namespace": "financial-ml",
    "seldon_config": "default",
    "overrides": [{"name": n, "replicas": 1} for n in (
        "hodometer", "seldon-scheduler", "seldon-envoy", "seldon-dataflow-engine", "seldon-modelgateway",
        "seldon-pipelinegateway")],
    "config": {},
}
# Seed 001's quota: financial-ml-quota constrains limits.cpu; there is no LimitRange.
SEED_001_QUOTA = {"metadata": {"name": "financial-ml-quota"},
                  "spec": {"hard": {"requests.cpu": "8", "requests.memory": "16Gi", "limits.cpu": "8",
                                    "limits.memory": "16Gi", "pods": "50"}}}
# The team_isolation LimitRange of financial-ml (inventories/local teams.yml).
TEAM_LIMIT_RANGE = {"metadata": {"name": "mlops-team-limits"},
                    "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m", "memory": "512Mi"},
                                         "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                                         "max": {"cpu": "4", "memory": "8Gi"}}]}}
NO_KAFKA = [{"name": n, "disable": True} for n in sd.KAFKA_COMPONENTS]


def params(**kwargs) -> dict:
    base = {"name": "seldon", "namespace": "team-a", "state": "present", "seldon_config": "default",
            "overrides": [], "servers": [], "config": None, "labels": {}, "team": "team-a", "preflight": True,
            "controller_namespace": "seldon-system", "wait": False, "wait_timeout": 10, "wait_sleep": 1}
    base.update(kwargs)
    return base


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
def test_seed_001_runtime_is_valid():
    assert sd.validate_params(params(**SEED_001)) == []


def test_mlserver_in_overrides_points_to_servers():
    # Seed 001 also listed `mlserver` as an override; it is a Server, not a component.
    errors = sd.validate_params(params(overrides=[{"name": "mlserver", "replicas": 1}]))
    assert len(errors) == 1
    assert "'mlserver' is not a SeldonRuntime component" in errors[0] and "servers" in errors[0]


def test_misspelt_component_gets_a_suggestion():
    errors = sd.validate_params(params(overrides=[{"name": "seldon-schedular"}]))
    assert "did you mean 'seldon-scheduler'?" in errors[0]


@pytest.mark.parametrize("replicas", [-1, 2**31, True, "2"])
def test_bad_replicas_are_refused(replicas):
    errors = sd.validate_params(params(overrides=[{"name": "seldon-envoy", "replicas": replicas}]))
    assert len(errors) == 1 and "overrides[0].replicas (seldon-envoy)" in errors[0] and "Fix:" in errors[0]


def test_duplicate_override_bad_quantity_and_request_over_limit():
    errors = sd.validate_params(params(overrides=[
        {"name": "seldon-envoy"},
        {"name": "seldon-envoy", "resources": {"limits": {"cpu": "lots"}}},
        {"name": "hodometer", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}},
    ]))
    assert len(errors) == 3
    assert "overridden twice" in errors[0]
    assert "overrides[1].resources (seldon-envoy).limits.cpu" in errors[1]
    assert "requests.cpu 2 is above limits.cpu 1" in errors[2]


def test_server_checks():
    errors = sd.validate_params(params(servers=[
        {"name": "mlserver", "server_config": "mlserver", "min_replicas": 3, "max_replicas": 1},
        {"name": "mlserver", "server_config": "mlserver", "replicas": -2},
        {"name": "Bad_Name", "server_config": "mlserver", "pod_spec": {"containers": [{"image": "x"}]}},
    ]))
    assert any("min_replicas 3 is above max_replicas 1" in e for e in errors)
    assert any("listed twice" in e for e in errors)
    assert any("servers[1].replicas (mlserver)" in e for e in errors)
    assert any("servers[2].name" in e for e in errors)
    assert any("servers[2].pod_spec (Bad_Name).containers[0]: needs a name" in e for e in errors)


def test_bad_names_and_tracing_ratio():
    errors = sd.validate_params(params(namespace="Team_A", config={"tracing": {"ratio": "2"}}))
    assert any(e.startswith("namespace: 'Team_A'") for e in errors)
    assert any("config.tracing.ratio" in e for e in errors)


def test_absent_only_needs_names():
    assert sd.validate_params(params(state="absent", overrides=[{"name": "nonsense"}])) == []


# --------------------------------------------------------------------------------------------
# Spec building
# --------------------------------------------------------------------------------------------
def test_seed_001_runtime_spec():
    runtime = sd.build_runtime(params(**SEED_001, team="financial-ml"))
    assert runtime["apiVersion"] == "mlops.seldon.io/v1alpha1" and runtime["kind"] == "SeldonRuntime"
    assert runtime["metadata"] == {
        "name": "financial-ml-runtime", "namespace": "financial-ml",
        "labels": {"app.kubernetes.io/managed-by": "mlops.platform", "app.kubernetes.io/part-of": "mlops-platform",
                   "mlops.platform/team": "financial-ml"}}
    assert runtime["spec"] == {"seldonConfig": "default", "overrides": SEED_001["overrides"]}


def test_resources_go_into_the_main_container_of_the_pod_spec():
    runtime = sd.build_runtime(params(overrides=[
        {"name": "seldon-scheduler", "replicas": 1, "service_type": "ClusterIP",
         "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}},
         "pod_spec": {"nodeSelector": {"pool": "seldon"}, "containers": [{"name": "scheduler", "env": []}]}},
        {"name": "seldon-envoy", "disable": True},
    ]))
    scheduler, envoy = runtime["spec"]["overrides"]
    assert scheduler == {"name": "seldon-scheduler", "replicas": 1, "serviceType": "ClusterIP",
                         "podSpec": {"nodeSelector": {"pool": "seldon"},
                                     "containers": [{"name": "scheduler", "env": [],
                                                     "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}}]}}
    assert envoy == {"name": "seldon-envoy", "disable": True}


def test_config_is_rendered_in_the_crd_field_names():
    runtime = sd.build_runtime(params(config={
        "kafka": {"bootstrap_servers": "kafka:9092", "topic_prefix": "seldon", "consumer": {"sessionTimeoutMs": 6000}},
        "tracing": {"disable": False, "otel_exporter_endpoint": "otel:4317", "ratio": 0.5},
        "rclone": {"config_secrets": ["ml-platform"]},
        "service": {"service_type": "ClusterIP"},
    }, disable_auto_update=True))
    assert runtime["spec"]["config"] == {
        "kafkaConfig": {"bootstrap.servers": "kafka:9092", "topicPrefix": "seldon",
                        "consumer": {"sessionTimeoutMs": 6000}},
        "tracingConfig": {"disable": False, "otelExporterEndpoint": "otel:4317", "ratio": "0.5"},
        "agentConfig": {"rclone": {"config_secrets": ["ml-platform"]}},
        "serviceConfig": {"serviceType": "ClusterIP"},
    }
    assert runtime["spec"]["disableAutoUpdate"] is True


def test_servers():
    servers = sd.build_servers(params(servers=[
        {"name": "mlserver", "server_config": "mlserver", "replicas": 2, "min_replicas": 1, "max_replicas": 3,
         "extra_capabilities": ["huggingface"], "resources": {"limits": {"cpu": "2"}}}]))
    assert servers == [{
        "apiVersion": "mlops.seldon.io/v1alpha1", "kind": "Server",
        "metadata": {"name": "mlserver", "namespace": "team-a", "labels": sd.platform_labels("team-a")},
        "spec": {"serverConfig": "mlserver", "replicas": 2, "minReplicas": 1, "maxReplicas": 3,
                 "extraCapabilities": ["huggingface"],
                 "podSpec": {"containers": [{"name": "mlserver", "resources": {"limits": {"cpu": "2"}}}]}},
    }]


# --------------------------------------------------------------------------------------------
# Quota preflight
# --------------------------------------------------------------------------------------------
def test_seed_001_quota_without_limit_range_fails_naming_the_scheduler():
    result = sd.preflight(params(**SEED_001), [SEED_001_QUOTA], [])
    scheduler = [e for e in result["errors"] if e.startswith("seldon-scheduler (container scheduler)")]
    assert len(scheduler) == 1, result["errors"]
    message = scheduler[0]
    assert "no limits.cpu" in message and "ResourceQuota financial-ml-quota constrains limits.cpu" in message
    assert "must specify limits.cpu" in message
    assert "Fix: set overrides: [{name: seldon-scheduler, resources: {limits: {cpu: <quantity>}}}]" in message
    assert "LimitRange" in message
    # Every enabled component has the same problem (the chart sets no CPU limit anywhere).
    assert {e.split(" ")[0] for e in result["errors"]} == set(sd.COMPONENTS)


def test_seed_001_quota_with_the_team_limit_range_passes_without_kafka():
    runtime = params(**{**SEED_001, "overrides": SEED_001["overrides"][:3] + NO_KAFKA})
    result = sd.preflight(runtime, [SEED_001_QUOTA], [TEAM_LIMIT_RANGE])
    assert result["errors"] == []
    # hodometer, scheduler, envoy at the LimitRange default CPU limit of 500m each.
    assert result["totals"]["limits.cpu"] == "1500m"
    assert result["totals"]["requests.cpu"] == "210m"
    assert result["totals"]["pods"] == "3"


def test_all_six_with_the_team_limit_range_stops_at_the_dataflow_engine_request():
    # The chart requests a whole CPU for the dataflow engine; the LimitRange default limit of
    # 500m is below it, and the API server refuses requests above limits.
    result = sd.preflight(params(**SEED_001), [SEED_001_QUOTA], [TEAM_LIMIT_RANGE])
    assert len(result["errors"]) == 1
    assert result["errors"][0].startswith("seldon-dataflow-engine (container dataflow-engine): requests.cpu 1 is "
                                          "above limits.cpu 500m (the LimitRange default)")
    fixed = copy.deepcopy(SEED_001)
    fixed["overrides"][3]["resources"] = {"limits": {"cpu": "1"}}
    assert sd.preflight(params(**fixed), [SEED_001_QUOTA], [TEAM_LIMIT_RANGE])["errors"] == []


def test_explicit_limits_pass_without_limit_range():
    overrides = [{"name": n, "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}} for n in sd.COMPONENTS]
    result = sd.preflight(params(overrides=overrides), [SEED_001_QUOTA], [])
    assert result["errors"] == []
    assert result["totals"]["limits.cpu"] == "6"


def test_totals_over_the_quota_name_the_numbers():
    quota = {"metadata": {"name": "q"}, "spec": {"hard": {"limits.cpu": "2", "pods": "4", "requests.storage": "1Gi",
                                                          "persistentvolumeclaims": "1"}}}
    runtime = params(overrides=[{"name": "seldon-envoy", "replicas": 3}, *NO_KAFKA],
                     servers=[{"name": "mlserver", "server_config": "mlserver", "replicas": 1}])
    errors = sd.preflight(runtime, [quota], [TEAM_LIMIT_RANGE])["errors"]
    # hodometer 1 + scheduler 1 + envoy 3 pods at 500m, plus one server pod of three containers.
    assert any("limits.cpu 4 in total, over ResourceQuota q hard 2" in e for e in errors), errors
    assert any("pods 6 in total, over ResourceQuota q hard 4" in e for e in errors), errors
    assert any("persistentvolumeclaims 2 in total" in e for e in errors), errors
    assert any("requests.storage 2Gi in total" in e for e in errors), errors


def test_used_quota_gives_a_warning_for_a_new_runtime_only():
    quota = {"metadata": {"name": "q"}, "spec": {"hard": {"limits.cpu": "2"}}, "status": {"used": {"limits.cpu": "1"}}}
    runtime = params(overrides=NO_KAFKA)
    new = sd.preflight(runtime, [quota], [TEAM_LIMIT_RANGE])
    assert new["errors"] == [] and "used 1 + 1500m" in new["warnings"][0]
    assert sd.preflight(runtime, [quota], [TEAM_LIMIT_RANGE], exists=True)["warnings"] == []


def test_limit_range_max_and_min():
    lr = {"metadata": {"name": "lr"}, "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"},
                                                           "min": {"memory": "64Mi"}}]}}
    runtime = params(overrides=[{"name": "seldon-envoy", "resources": {"limits": {"cpu": "2"}}}, *NO_KAFKA])
    errors = sd.preflight(runtime, [], [lr])["errors"]
    assert any("seldon-envoy (container envoy): limits.cpu 2 is above the LimitRange lr max 1" in e for e in errors)
    # hodometer's chart request of 32Mi is below the min.
    assert any("hodometer (container hodometer): requests.memory 32Mi" in e and "min 64Mi" in e for e in errors)


def test_limit_range_without_default_request_uses_default_and_max():
    # The API server fills default from max and defaultRequest from default.
    lr = {"metadata": {"name": "lr"}, "spec": {"limits": [{"type": "Container", "max": {"cpu": "300m"}}]}}
    eff = sd.effective_resources({}, sd._limit_range_container_limits([lr]))
    assert eff == {"requests": {"cpu": sd.parse_quantity("300m")}, "limits": {"cpu": sd.parse_quantity("300m")}}


def test_limits_without_requests_become_the_requests():
    eff = sd.effective_resources({"limits": {"cpu": "2"}}, sd._limit_range_container_limits([TEAM_LIMIT_RANGE]))
    assert eff["requests"]["cpu"] == 2 and eff["requests"]["memory"] == sd.parse_quantity("128Mi")
    assert eff["limits"]["memory"] == sd.parse_quantity("512Mi")


def test_the_live_seldon_config_replaces_the_builtin_defaults():
    def component(name: str, container: str, resources: dict) -> dict:
        return {"name": name, "podSpec": {"containers": [{"name": container, "resources": resources}]}}

    config = {"spec": {"components": [
        component("seldon-scheduler", "scheduler", {"requests": {"cpu": "200m"}, "limits": {"cpu": "1", "memory": "1Gi"}}),
        component("hodometer", "hodometer", {"limits": {"cpu": "100m", "memory": "64Mi"}}),
        component("seldon-envoy", "envoy", {"limits": {"cpu": "1", "memory": "128Mi"}}),
    ]}}
    result = sd.preflight(params(overrides=NO_KAFKA), [SEED_001_QUOTA], [], seldon_config=config)
    assert result["errors"] == []
    assert result["totals"]["limits.cpu"] == "2100m"


def test_scoped_quotas_are_not_applied():
    quota = {"metadata": {"name": "q"}, "spec": {"hard": {"limits.cpu": "1m"}, "scopes": ["BestEffort"]}}
    assert sd.preflight(params(overrides=NO_KAFKA), [quota], [])["errors"] == []


# --------------------------------------------------------------------------------------------
# Readiness
# --------------------------------------------------------------------------------------------
def test_runtime_readiness_names_the_components_not_ready():
    status = {"status": {"conditions": [
        {"type": "Ready", "status": "False", "reason": "ComponentsNotReady"},
        {"type": "SchedulerReady", "status": "False", "reason": "StatefulSetNotReady", "message": "0/1 replicas"},
        {"type": "EnvoyReady", "status": "True"},
    ]}}
    ready, pending = sd.runtime_readiness(status)
    assert not ready
    text = sd.describe_pending(pending)
    assert "SchedulerReady (seldon-scheduler)=False StatefulSetNotReady: 0/1 replicas" in text
    assert "Envoy" not in text
    assert sd.runtime_readiness({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}) == (True, [])
    assert "no conditions" in sd.describe_pending(sd.runtime_readiness({})[1])


# --------------------------------------------------------------------------------------------
# converge() against a fake API: what is read and written
# --------------------------------------------------------------------------------------------
class FakeApi:
    def __init__(self, objects: dict | None = None, statuses: list | None = None) -> None:
        self.objects = objects or {}
        self.statuses = list(statuses or [])
        self.reads: list[tuple] = []
        self.writes = 0

    def get(self, kind, api_version, name, namespace=None):
        self.reads.append((kind, name))
        if kind == "SeldonRuntime" and self.statuses and ("SeldonRuntime", name) in self.objects:
            self.objects[("SeldonRuntime", name)]["status"] = self.statuses.pop(0)
        return copy.deepcopy(self.objects.get((kind, name)))

    def get_optional(self, kind, api_version, name, namespace):
        return self.get(kind, api_version, name, namespace)

    def list(self, kind, api_version, namespace):
        self.reads.append((kind, "*"))
        return [copy.deepcopy(o) for key, o in self.objects.items() if key[0] == kind]

    def apply(self, obj):
        self.writes += 1
        stored = {**copy.deepcopy(obj), "metadata": {**obj["metadata"], "resourceVersion": str(self.writes)}}
        self.objects[(obj["kind"], obj["metadata"]["name"])] = stored
        return copy.deepcopy(stored)

    def delete(self, kind, api_version, name, namespace):
        self.writes += 1
        self.objects.pop((kind, name), None)


def cluster(extra: dict | None = None) -> FakeApi:
    objects = {("Namespace", "team-a"): {"metadata": {"name": "team-a"}},
               ("ResourceQuota", "q"): copy.deepcopy(SEED_001_QUOTA)}
    objects.update(extra or {})
    return FakeApi(objects)


def test_converge_creates_then_changes_nothing():
    api = cluster({("LimitRange", "lr"): TEAM_LIMIT_RANGE})
    p = params(overrides=NO_KAFKA, servers=[{"name": "mlserver", "server_config": "mlserver"}])
    first = sd.converge(api, p, check_mode=False)
    assert first["changed"] and api.writes == 2
    assert first["diff"]["before"]["runtime"] == {} and first["diff"]["after"]["runtime"]["kind"] == "SeldonRuntime"
    second = sd.converge(api, p, check_mode=False)
    assert not second["changed"]
    assert second["preflight"]["base"] == "built-in chart defaults"


@pytest.mark.parametrize("bad", [
    {"overrides": [{"name": "mlserver"}]},
    {"overrides": [{"name": "seldon-envoy", "replicas": -1}]},
])
def test_invalid_input_fails_before_any_api_call(bad):
    api = cluster()
    with pytest.raises(sd.SeldonError) as exc:
        sd.converge(api, params(**bad), check_mode=False)
    assert "nothing was changed" in str(exc.value)
    assert api.reads == [] and api.writes == 0


def test_missing_namespace_fails_with_reads_only():
    api = FakeApi()
    with pytest.raises(sd.SeldonError, match="namespace 'team-a' does not exist"):
        sd.converge(api, params(), check_mode=False)
    assert api.writes == 0


def test_failed_preflight_writes_nothing():
    api = cluster()
    with pytest.raises(sd.SeldonError) as exc:
        sd.converge(api, params(**{**SEED_001, "namespace": "team-a"}), check_mode=False)
    assert "seldon-scheduler (container scheduler): no limits.cpu" in str(exc.value)
    assert api.writes == 0 and exc.value.details["preflight"]["errors"]


def test_absent_deletes_servers_then_the_runtime():
    api = cluster({("LimitRange", "lr"): TEAM_LIMIT_RANGE})
    p = params(overrides=NO_KAFKA, servers=[{"name": "mlserver", "server_config": "mlserver"}])
    sd.converge(api, p, check_mode=False)
    gone = sd.converge(api, {**p, "state": "absent"}, check_mode=False)
    assert gone["changed"] and ("SeldonRuntime", "seldon") not in api.objects and ("Server", "mlserver") not in api.objects
    assert not sd.converge(api, {**p, "state": "absent"}, check_mode=False)["changed"]


def test_wait_returns_when_ready_and_reports_pending_conditions_on_timeout():
    api = cluster({("LimitRange", "lr"): TEAM_LIMIT_RANGE})
    api.statuses = [{"conditions": [{"type": "Ready", "status": "False"}]},
                    {"conditions": [{"type": "Ready", "status": "True"}]}]
    p = params(overrides=NO_KAFKA, wait=True, wait_timeout=30, wait_sleep=1)
    now = [0.0]
    result = sd.converge(api, p, check_mode=False, sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    assert result["conditions"] == [{"type": "Ready", "status": "True"}]

    api.statuses = [{"conditions": [{"type": "Ready", "status": "False"},
                                    {"type": "EnvoyReady", "status": "False", "reason": "DeploymentNotReady"}]}] * 50
    with pytest.raises(sd.SeldonError) as exc:
        sd.converge(api, p, check_mode=False, sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    assert "not Ready after 30s" in str(exc.value) and "EnvoyReady (seldon-envoy)=False DeploymentNotReady" in str(
        exc.value)


def test_check_mode_does_not_wait():
    api = cluster({("LimitRange", "lr"): TEAM_LIMIT_RANGE})
    result = sd.converge(api, params(overrides=NO_KAFKA, wait=True), check_mode=True,
                         sleep=lambda s: pytest.fail("waited in check mode"))
    assert "conditions" not in result


def test_a_forbidden_read_becomes_a_message_about_permissions():
    from ansible_collections.mlops.platform.plugins.module_utils.kube import ApiError

    api = cluster()

    def forbidden(*_args):
        raise ApiError(403, "Forbidden", "resourcequotas is forbidden")

    api.list = forbidden
    with pytest.raises(sd.SeldonError, match="list resourcequotas and limitranges") as exc:
        sd.converge(api, params(overrides=NO_KAFKA), check_mode=False)
    assert api.writes == 0 and "403" in str(exc.value)
