"""mlops.platform.seldon_runtime against the offline cluster, read back from the real API server.

The Seldon controller does not run there: the role's stand-in CRDs (roles/seldon/files/offline-crds.yaml)
make the API server validate what the module writes, and the tests that exercise `wait` set the
runtime's status subresource themselves, as the controller would.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import subprocess
import sys
import threading
import time

import pytest
import yaml
from ansible_collections.mlops.platform.plugins.module_utils import seldon as sd
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRDS = ROOT / "roles" / "seldon" / "files" / "offline-crds.yaml"
GROUP, VERSION = "mlops.seldon.io", "v1alpha1"
SEED_001_QUOTA = {"requests.cpu": "8", "requests.memory": "16Gi", "limits.cpu": "8", "limits.memory": "16Gi",
                  "pods": "50"}
TEAM_LIMITS = {"type": "Container", "default": {"cpu": "500m", "memory": "512Mi"},
               "defaultRequest": {"cpu": "100m", "memory": "128Mi"}, "max": {"cpu": "4", "memory": "8Gi"}}
NO_KAFKA = [{"name": c, "disable": True} for c in sd.KAFKA_COMPONENTS]
SEED_001_OVERRIDES = [{"name": n, "replicas": 1} for n in sd.COMPONENTS]


@pytest.fixture(scope="module")
def crds(api_client):
    """The stand-in CRDs, applied like the role does (left in place: the local platform uses them too)."""
    ext = client.ApiextensionsV1Api(api_client)
    for doc in yaml.safe_load(CRDS.read_text())["items"]:
        ext.patch_custom_resource_definition(
            doc["metadata"]["name"], doc, field_manager="mlops.platform", force=True,
            _content_type="application/apply-patch+yaml")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        established = [any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))
                       for crd in ext.list_custom_resource_definition(label_selector="mlops.platform/fixture").items]
        if len(established) >= 4 and all(established):
            return
        time.sleep(0.5)
    pytest.fail("the Seldon stand-in CRDs did not become Established")


def team_namespace(api_client, name: str, quota: dict | None, limits: dict | None) -> str:
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=name, labels={"pod-security.kubernetes.io/enforce": "baseline"})))
    if quota:
        core.create_namespaced_resource_quota(name, {"metadata": {"name": "financial-ml-quota"},
                                                     "spec": {"hard": quota}})
    if limits:
        core.create_namespaced_limit_range(name, {"metadata": {"name": "mlops-team-limits"},
                                                  "spec": {"limits": [limits]}})
    return name


@pytest.fixture()
def make_namespace(api_client, request):
    created: list[str] = []

    def make(quota: dict | None = None, limits: dict | None = None, suffix: str = "") -> str:
        digest = hashlib.sha1(request.node.name.encode()).hexdigest()[:6]
        name = re.sub(r"[^a-z0-9]+", "-", "it-sr-" + request.node.name.lower())[:44].rstrip("-") + f"-{digest}{suffix}"
        created.append(team_namespace(api_client, name, quota, limits))
        return name

    yield make
    for name in created:
        client.CoreV1Api(api_client).delete_namespace(name)


def run_module(kubeconfig: str, tmp_path: pathlib.Path, *calls: dict, check: bool = False) -> list[dict]:
    """Run the module once per entry of ``calls`` (errors ignored); return each task's result."""
    tasks = [{"name": f"call {i}", "mlops.platform.seldon_runtime": {"kubeconfig": kubeconfig, **args},
              "ignore_errors": True, "check_mode": check, "diff": True} for i, args in enumerate(calls)]
    playbook = tmp_path / f"seldon-{time.monotonic_ns()}.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
           "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"), "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    argv = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"ansible-playbook rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return [t["hosts"]["localhost"] for play in out["plays"] for t in play["tasks"]]


def runtimes(api_client, namespace: str) -> list[dict]:
    return client.CustomObjectsApi(api_client).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "seldonruntimes")["items"]


def servers(api_client, namespace: str) -> list[dict]:
    return client.CustomObjectsApi(api_client).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "servers")["items"]


def test_module_writes_the_runtime_and_server_and_reads_back_unchanged(
        crds, kubeconfig, api_client, make_namespace, tmp_path):
    ns = make_namespace(SEED_001_QUOTA, TEAM_LIMITS)
    args = {"name": "seldon", "namespace": ns, "team": "financial-ml",
            "overrides": [{"name": "seldon-scheduler", "replicas": 1,
                           "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}},
                          {"name": "seldon-envoy", "replicas": 2, "service_type": "ClusterIP"}, *NO_KAFKA],
            "config": {"tracing": {"disable": True}},
            "servers": [{"name": "mlserver", "replicas": 1}]}
    (check,) = run_module(kubeconfig, tmp_path, args, check=True)
    assert check["changed"] and not check.get("failed"), check
    assert runtimes(api_client, ns) == [], "check mode stored the runtime"

    first, second = run_module(kubeconfig, tmp_path, args, args)
    assert first["changed"] and not first.get("failed"), first
    assert not second["changed"] and not second.get("failed"), second
    assert first["preflight"]["errors"] == [] and first["preflight"]["base"] == "built-in chart defaults"

    (runtime,) = runtimes(api_client, ns)
    assert runtime["metadata"]["labels"] == sd.platform_labels("financial-ml")
    assert runtime["spec"] == {
        "seldonConfig": "default",
        "overrides": [
            {"name": "seldon-scheduler", "replicas": 1,
             "podSpec": {"containers": [{"name": "scheduler",
                                         "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}}]}},
            {"name": "seldon-envoy", "replicas": 2, "serviceType": "ClusterIP"},
            *NO_KAFKA],
        "config": {"tracingConfig": {"disable": True}},
    }
    assert {m["manager"] for m in runtime["metadata"]["managedFields"]} == {"mlops.platform"}
    (server,) = servers(api_client, ns)
    assert server["spec"] == {"serverConfig": "mlserver", "replicas": 1}

    changed = {**args, "overrides": [*args["overrides"][:1], {"name": "seldon-envoy", "replicas": 3}, *NO_KAFKA]}
    (check_change,) = run_module(kubeconfig, tmp_path, changed, check=True)
    assert check_change["changed"]
    assert check_change["diff"]["after"]["runtime"]["spec"]["overrides"][1] == {"name": "seldon-envoy", "replicas": 3}
    assert runtimes(api_client, ns)[0]["spec"]["overrides"][1]["replicas"] == 2, "check mode changed the runtime"

    absent = {"name": "seldon", "namespace": ns, "state": "absent", "servers": [{"name": "mlserver"}]}
    (gone,) = run_module(kubeconfig, tmp_path, absent)
    assert gone["changed"]
    assert runtimes(api_client, ns) == [] and servers(api_client, ns) == []


def test_seed_001_quota_without_limit_range_fails_naming_the_scheduler_with_0_writes(
        crds, kubeconfig, api_client, make_namespace, tmp_path):
    ns = make_namespace(SEED_001_QUOTA, None)
    seed_001 = {"name": "financial-ml-runtime", "namespace": ns, "overrides": SEED_001_OVERRIDES}
    (result,) = run_module(kubeconfig, tmp_path, seed_001)
    assert result["failed"]
    assert "seldon-scheduler (container scheduler): no limits.cpu" in result["msg"]
    assert "must specify limits.cpu" in result["msg"] and "Fix:" in result["msg"]
    assert result["api_writes"] == 0
    assert runtimes(api_client, ns) == []


def planned_pod(name: str, containers: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": c, "image": "registry.invalid/seldon:2.10.2", "resources": r}
                                    for c, r in containers.items()]}}


def admitted(api_client, namespace: str, pod: dict) -> tuple[bool, str]:
    try:
        client.CoreV1Api(api_client).create_namespaced_pod(namespace, pod, dry_run="All")
    except ApiException as exc:
        return False, json.loads(exc.body).get("message", "")
    return True, ""


def test_preflight_agrees_with_the_api_servers_admission_of_the_runtime_pods(
        crds, kubeconfig, api_client, make_namespace):
    """The pods the preflight plans, sent as server-side dry runs through the real LimitRanger and quota admission."""
    without_lr = make_namespace(SEED_001_QUOTA, None, suffix="-a")
    with_lr = make_namespace(SEED_001_QUOTA, TEAM_LIMITS, suffix="-b")
    params = {"name": "seldon", "namespace": with_lr, "overrides": SEED_001_OVERRIDES,
              "servers": [{"name": "mlserver", "server_config": "mlserver"}]}
    core = client.CoreV1Api(api_client)
    verdicts = {}
    for ns in (without_lr, with_lr):
        quotas = [api_client.sanitize_for_serialization(q) for q in core.list_namespaced_resource_quota(ns).items]
        limit_ranges = [api_client.sanitize_for_serialization(lr) for lr in core.list_namespaced_limit_range(ns).items]
        errors = sd.preflight({**params, "namespace": ns}, quotas, limit_ranges)["errors"]
        for pod in sd.planned_pods(params):
            name = pod["owner"].lower().replace("/", "-")
            ok, message = admitted(api_client, ns, planned_pod(name, pod["containers"]))
            predicted_ok = not any(e.startswith(pod["owner"] + " ") for e in errors)
            verdicts[(ns, pod["owner"])] = (ok, predicted_ok, message)
    disagreements = {k: v for k, v in verdicts.items() if v[0] != v[1]}
    assert disagreements == {}, disagreements
    # The two verdicts the issue is about, as the API server gave them.
    ok, _predicted, message = verdicts[(without_lr, "seldon-scheduler")]
    assert not ok and "must specify limits.cpu" in message
    assert verdicts[(with_lr, "seldon-scheduler")][0]
    ok, _predicted, message = verdicts[(with_lr, "seldon-dataflow-engine")]
    assert not ok and "must be less than or equal to cpu limit" in message


@pytest.mark.parametrize("case", ["unknown override name", "negative replicas", "missing namespace"])
def test_bad_input_fails_with_a_clear_message_and_0_api_writes(
        case, crds, kubeconfig, api_client, make_namespace, tmp_path):
    ns = make_namespace(SEED_001_QUOTA, TEAM_LIMITS)
    args = {"name": "seldon", "namespace": ns, "overrides": list(NO_KAFKA)}
    expected = {"unknown override name": "'mlserver' is not a SeldonRuntime component",
                "negative replicas": "overrides[0].replicas (seldon-envoy): -1 is not a valid replica count",
                "missing namespace": "namespace 'it-sr-nowhere' does not exist"}[case]
    if case == "unknown override name":
        args["overrides"] = [{"name": "mlserver", "replicas": 1}]
    elif case == "negative replicas":
        args["overrides"] = [{"name": "seldon-envoy", "replicas": -1}]
    else:
        args["namespace"] = "it-sr-nowhere"
    (result,) = run_module(kubeconfig, tmp_path, args)
    assert result["failed"] and expected in result["msg"] and "Fix:" in result["msg"], result["msg"]
    assert result["api_writes"] == 0
    assert runtimes(api_client, ns) == []
    with pytest.raises(ApiException) as exc:
        client.CoreV1Api(api_client).read_namespace("it-sr-nowhere")
    assert exc.value.status == 404


def set_status(api_client, namespace: str, conditions: list[dict]) -> None:
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "seldonruntimes", "seldon", {"status": {"conditions": conditions}},
        _content_type="application/merge-patch+json")


def test_wait_returns_once_the_test_sets_ready_through_the_status_subresource(
        crds, kubeconfig, api_client, make_namespace, tmp_path):
    ns = make_namespace(SEED_001_QUOTA, TEAM_LIMITS)

    def play_controller():
        # Stand in for the controller: once the runtime exists, report it not ready, then ready.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not runtimes(api_client, ns):
            time.sleep(0.2)
        set_status(api_client, ns, [{"type": "Ready", "status": "False", "reason": "Starting"}])
        time.sleep(2)
        set_status(api_client, ns, [{"type": "Ready", "status": "True"},
                                    {"type": "SchedulerReady", "status": "True"}])

    controller = threading.Thread(target=play_controller, daemon=True)
    controller.start()
    args = {"name": "seldon", "namespace": ns, "overrides": NO_KAFKA, "wait": True, "wait_timeout": 60, "wait_sleep": 1}
    (result,) = run_module(kubeconfig, tmp_path, args)
    controller.join(timeout=5)
    assert not result.get("failed"), result.get("msg")
    assert {"type": "Ready", "status": "True"} in result["conditions"]
    (runtime,) = runtimes(api_client, ns)
    assert runtime["status"]["conditions"][0] == {"type": "Ready", "status": "True"}


def test_wait_times_out_naming_the_conditions_the_test_set_through_the_status_subresource(
        crds, kubeconfig, api_client, make_namespace, tmp_path):
    ns = make_namespace(SEED_001_QUOTA, TEAM_LIMITS)
    args = {"name": "seldon", "namespace": ns, "overrides": NO_KAFKA}
    run_module(kubeconfig, tmp_path, args)
    set_status(api_client, ns, [
        {"type": "Ready", "status": "False", "reason": "ComponentsNotReady"},
        {"type": "SchedulerReady", "status": "False", "reason": "StatefulSetNotReady", "message": "0/1 ready"},
        {"type": "EnvoyReady", "status": "True"}])
    start = time.monotonic()
    (result,) = run_module(kubeconfig, tmp_path, {**args, "wait": True, "wait_timeout": 3, "wait_sleep": 1})
    assert result["failed"] and time.monotonic() - start >= 3
    assert "is not Ready after 3s" in result["msg"]
    assert "SchedulerReady (seldon-scheduler)=False StatefulSetNotReady: 0/1 ready" in result["msg"]
    assert "EnvoyReady" not in result["msg"]
    assert [c["component"] for c in result["conditions"]] == ["", "seldon-scheduler"]


def test_the_crd_schema_refuses_what_the_module_never_sends(crds, api_client, make_namespace):
    """The stand-in CRDs are strict enough to catch a wrong field type (so role runs are really validated)."""
    ns = make_namespace(None, None)
    bad = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SeldonRuntime", "metadata": {"name": "bad", "namespace": ns},
           "spec": {"seldonConfig": "default", "overrides": [{"name": "seldon-envoy", "replicas": "two"}]}}
    with pytest.raises(ApiException) as exc:
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(GROUP, VERSION, ns, "seldonruntimes", bad)
    assert exc.value.status == 422 and "spec.overrides[0].replicas" in exc.value.body
    assert runtimes(api_client, ns) == []
