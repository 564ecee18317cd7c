"""mlops.platform.k8s_bundle against the offline cluster, read back with the kubernetes client."""

from __future__ import annotations

import base64
import contextlib
import pathlib
import time
import uuid

import pytest
from ansible_run import run_module
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster

SECRET_VALUE = "s3cr3t-" + uuid.uuid4().hex
GROUP = "it-bundle.mlops.example.com"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {"group": GROUP, "scope": "Namespaced",
             "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}


@pytest.fixture()
def bundle_ns(api_client):
    """A namespace name the bundle creates itself; removed (with the CRD) afterwards."""
    name = "it-bundle-" + uuid.uuid4().hex[:8]
    yield name
    core, ext = client.CoreV1Api(api_client), client.ApiextensionsV1Api(api_client)
    with contextlib.suppress(ApiException):
        core.delete_namespace(name)
    with contextlib.suppress(ApiException):
        ext.delete_custom_resource_definition(CRD["metadata"]["name"])
    # The next test applies the same CRD: wait until this one is really gone.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            ext.read_custom_resource_definition(CRD["metadata"]["name"])
        except ApiException:
            return
        time.sleep(0.5)


def objects(ns: str, data: str = "1") -> list[dict]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "settings", "namespace": ns, "labels": {"it-bundle": "yes"}}, "data": {"a": data}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns},
         "stringData": {"password": SECRET_VALUE}},
        CRD,
        {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": ns}, "spec": {"size": 3}},
    ]


def call_output(kubeconfig, tmp_path, definitions, **kwargs):
    """The task's result and the ansible-playbook process (for what it printed)."""
    check = kwargs.pop("check", False)
    verbosity = kwargs.pop("verbosity", 0)
    (result,), proc = run_module("mlops.platform.k8s_bundle", tmp_path,
                                 {"kubeconfig": kubeconfig, "definitions": definitions, **kwargs},
                                 check=check, verbosity=verbosity)
    return result, proc


def call(kubeconfig, tmp_path, definitions, **kwargs):
    return call_output(kubeconfig, tmp_path, definitions, **kwargs)[0]


def configmap(api_client, ns: str, name: str = "settings"):
    try:
        return client.CoreV1Api(api_client).read_namespaced_config_map(name, ns)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_creates_everything_then_reports_no_change_then_exactly_one_update(kubeconfig, api_client, bundle_ns, tmp_path):
    first = call(kubeconfig, tmp_path, objects(bundle_ns))
    assert first["changed"] and first["counts"]["created"] == 5, first.get("msg", first)
    # CRD and namespace first, the Widget after the CRD was established.
    order = [o["kind"] for o in first["objects"]]
    assert order.index("CustomResourceDefinition") < order.index("Widget")
    assert configmap(api_client, bundle_ns).data == {"a": "1"}
    secret = client.CoreV1Api(api_client).read_namespaced_secret("creds", bundle_ns)
    assert base64.b64decode(secret.data["password"]).decode() == SECRET_VALUE
    widget = client.CustomObjectsApi(api_client).get_namespaced_custom_object(GROUP, "v1", bundle_ns, "widgets", "w")
    assert widget["spec"] == {"size": 3}
    managers = {f.manager for f in configmap(api_client, bundle_ns).metadata.managed_fields}
    assert managers == {"mlops.platform"}

    again = call(kubeconfig, tmp_path, objects(bundle_ns))
    assert not again["changed"] and again["counts"] == {"created": 0, "updated": 0, "unchanged": 5, "deleted": 0}

    changed = call(kubeconfig, tmp_path, objects(bundle_ns, data="2"))
    assert changed["changes"] == [f"updated ConfigMap/{bundle_ns}/settings"]
    assert configmap(api_client, bundle_ns).data == {"a": "2"}


def test_check_mode_predicts_creation_and_drift_and_writes_nothing(kubeconfig, api_client, bundle_ns, tmp_path):
    predicted = call(kubeconfig, tmp_path, objects(bundle_ns), check=True)
    assert predicted["changed"] and predicted["counts"]["created"] == 5
    with pytest.raises(ApiException):
        client.CoreV1Api(api_client).read_namespace(bundle_ns)

    call(kubeconfig, tmp_path, objects(bundle_ns))
    client.CoreV1Api(api_client).patch_namespaced_config_map("settings", bundle_ns, {"data": {"a": "drifted"}})
    drift = call(kubeconfig, tmp_path, objects(bundle_ns), check=True)
    assert drift["changes"] == [f"updated ConfigMap/{bundle_ns}/settings"]
    (diff,) = drift["diff"]
    assert diff["before"]["data"] == {"a": "drifted"} and diff["after"]["data"] == {"a": "1"}
    assert configmap(api_client, bundle_ns).data == {"a": "drifted"}, "check mode wrote the object"

    fixed = call(kubeconfig, tmp_path, objects(bundle_ns))
    assert fixed["changes"] == [f"updated ConfigMap/{bundle_ns}/settings"]
    assert configmap(api_client, bundle_ns).data == {"a": "1"}


def test_bad_input_is_named_and_nothing_is_written(kubeconfig, api_client, namespace, tmp_path):
    good = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "good", "namespace": namespace}, "data": {"a": "1"}}
    gadget = {"apiVersion": "v9", "kind": "Gadget", "metadata": {"name": "g", "namespace": namespace}}
    static = call(kubeconfig, tmp_path, [good, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}, gadget])
    assert static["failed"]
    assert "definitions[1]: metadata.name is missing" in static["msg"]
    unknown = call(kubeconfig, tmp_path, [good, gadget])
    assert unknown["failed"] and "definitions[1] (Gadget/" in unknown["msg"] and "does not serve kind Gadget" in unknown["msg"]
    # The server refuses the second object at the dry-run: the first is not written either.
    bad_port = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad", "namespace": namespace},
                "spec": {"ports": [{"port": 99999}]}}
    refused = call(kubeconfig, tmp_path, [good, bad_port])
    assert refused["failed"] and f"Service/{namespace}/bad" in refused["msg"] and refused["changes"] == []
    missing_ns = call(kubeconfig, tmp_path, [{**good, "metadata": {"name": "good", "namespace": "it-no-such-namespace"}}])
    assert missing_ns["failed"] and "namespace it-no-such-namespace does not exist" in missing_ns["msg"]
    assert configmap(api_client, namespace, "good") is None


def test_secret_values_never_appear_in_the_output(kubeconfig, bundle_ns, tmp_path):
    for check in (True, False):
        result, proc = call_output(kubeconfig, tmp_path, objects(bundle_ns), check=check, verbosity=3)
        assert not result.get("failed"), result
        assert SECRET_VALUE not in proc.stdout + proc.stderr
        secret_diff = next(d for d in result["diff"] if d["after_header"].startswith("Secret/"))
        assert secret_diff["after"]["stringData" if check else "data"] == {"password": "<hidden>"}
    changed = objects(bundle_ns)
    changed[2] = {**changed[2], "stringData": {"password": SECRET_VALUE + "-new"}}
    result, proc = call_output(kubeconfig, tmp_path, changed, verbosity=3)
    assert result["changes"] == [f"updated Secret/{bundle_ns}/creds"]
    assert result["diff"][0]["after"]["data"] == {"password": "<hidden, changed>"}
    assert SECRET_VALUE not in proc.stdout + proc.stderr


def test_prune_removes_only_labelled_leftovers_and_not_in_check_mode(kubeconfig, api_client, namespace, tmp_path):
    def cm(name, labels):
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace, "labels": labels}}

    call(kubeconfig, tmp_path, [cm("keep", {"it-prune": "yes"}), cm("old", {"it-prune": "yes"}), cm("foreign", {})])
    prune = {"label_selector": "it-prune=yes", "kinds": [{"api_version": "v1", "kind": "ConfigMap"}], "namespaces": [namespace]}
    predicted = call(kubeconfig, tmp_path, [cm("keep", {"it-prune": "yes"})], prune=prune, check=True)
    assert predicted["changes"] == [f"deleted ConfigMap/{namespace}/old"]
    assert configmap(api_client, namespace, "old") is not None, "check mode deleted the object"
    pruned = call(kubeconfig, tmp_path, [cm("keep", {"it-prune": "yes"})], prune=prune)
    assert pruned["changes"] == [f"deleted ConfigMap/{namespace}/old"]
    assert configmap(api_client, namespace, "old") is None
    assert configmap(api_client, namespace, "foreign") is not None and configmap(api_client, namespace, "keep") is not None
    again = call(kubeconfig, tmp_path, [cm("keep", {"it-prune": "yes"})], prune=prune)
    assert not again["changed"]


def test_wait_until_ready_and_a_timeout_names_what_is_not(kubeconfig, namespace, tmp_path):
    labels = {"app": "it-wait"}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
                  "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                           "template": {"metadata": {"labels": labels},
                                        "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]}}}}
    ready = call(kubeconfig, tmp_path, [deployment], wait=True, wait_timeout=120)
    assert not ready.get("failed"), ready
    # A pod no node can take never becomes ready: the wait must time out and name its Deployment.
    stuck = {**deployment, "metadata": {"name": "stuck", "namespace": namespace}}
    stuck["spec"] = {**deployment["spec"], "template": {**deployment["spec"]["template"], "spec": {
        **deployment["spec"]["template"]["spec"], "nodeSelector": {"it-no-such-node": "true"}}}}
    timeout = call(kubeconfig, tmp_path, [deployment, stuck], wait=True, wait_timeout=3)
    assert timeout.get("failed"), timeout
    assert f"Deployment/{namespace}/stuck (0/1 ready)" in timeout["msg"] and "not ready after 3 s" in timeout["msg"]
    assert f"Deployment/{namespace}/web" not in timeout["msg"]


def test_render_dir_records_exactly_what_is_sent(kubeconfig, namespace, tmp_path):
    import yaml

    record = tmp_path / "rendered"
    definitions = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "r", "namespace": namespace}, "data": {"a": "1"}}]
    call(kubeconfig, tmp_path, definitions, render_dir=str(record), name="first")
    call(kubeconfig, tmp_path, definitions, render_dir=str(record), name="second")
    files = sorted(p.name for p in record.iterdir())
    assert files == ["001-first.yaml", "002-second.yaml"]
    assert list(yaml.safe_load_all((record / "001-first.yaml").read_text())) == definitions
    assert (record / "001-first.yaml").stat().st_mode & 0o777 == 0o600


def test_api_info_reports_the_version_and_an_unreachable_server(kubeconfig, tmp_path):
    (up, down, required), _proc = run_module(
        "mlops.platform.k8s_api_info", tmp_path, {"kubeconfig": kubeconfig}, {"kubeconfig": str(tmp_path / "none"), "required": False},
        {"kubeconfig": str(tmp_path / "none")})
    assert up["available"] and up["version"]["gitVersion"].startswith("v1.") and up["host"].startswith("https://")
    assert not down["available"] and "cannot read kubeconfig" in down["error"]
    assert required["failed"] and "does not answer" in required["msg"]


def test_api_info_fails_on_a_version_outside_the_range(kubeconfig, tmp_path):
    """The offline cluster runs 1.33: inside 1.27-1.33, outside 1.27-1.30 and 1.34-1.35, also when not required."""
    inside, old, new, bad = run_module(
        "mlops.platform.k8s_api_info", tmp_path, {"kubeconfig": kubeconfig, "version_min": "1.27", "version_max": "1.33"},
        {"kubeconfig": kubeconfig, "version_min": "1.27", "version_max": "1.30", "required": False},
        {"kubeconfig": kubeconfig, "version_min": "1.34"}, {"kubeconfig": kubeconfig, "version_max": "one"})[0]
    assert inside["available"] and not inside.get("failed")
    assert old["failed"] and "runs Kubernetes v1.33." in old["msg"] and "outside the supported range 1.27-1.30" in old["msg"]
    assert new["failed"] and "outside the supported range 1.34-any" in new["msg"]
    assert bad["failed"] and "version_max: cannot read a Kubernetes version" in bad["msg"]


def test_the_module_runs_as_a_module_over_a_non_local_connection(kubeconfig, namespace, tmp_path):
    """Over the local connection the action runs the logic in the task worker; otherwise the module runs."""
    definitions = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m", "namespace": namespace}, "data": {"a": "1"}}]
    results = {}
    for connection in ("local", "not_local"):
        (result,), proc = run_module("mlops.platform.k8s_bundle", tmp_path, {"kubeconfig": kubeconfig, "definitions": definitions},
                                     verbosity=3, connection=connection)
        results[connection] = (result, "AnsiballZ_k8s_bundle.py" in proc.stdout + proc.stderr)
    assert results["local"][0]["counts"]["created"] == 1 and not results["local"][1]
    assert results["not_local"][0]["counts"]["unchanged"] == 1 and results["not_local"][1]


def test_tls_server_name_is_the_name_checked_in_the_certificate(kubeconfig, tmp_path):
    """The serving certificate names `kubernetes`: a wrong tls-server-name must fail verification."""
    import yaml
    from ansible_collections.mlops.platform.plugins.module_utils.kube import Client, Config, KubeError

    data = yaml.safe_load(pathlib.Path(kubeconfig).read_text())
    for name, ok in (("kubernetes", True), ("wrong.invalid", False)):
        for cluster in data["clusters"]:
            cluster["cluster"]["tls-server-name"] = name
        path = tmp_path / f"kubeconfig-{name}"
        path.write_text(yaml.safe_dump(data))
        client = Client(Config.load(str(path)))
        if ok:
            assert client.version()["gitVersion"].startswith("v1.")
        else:
            with pytest.raises(KubeError, match="certificate"):
                client.version()


def test_src_file_objects_join_the_definitions_and_a_missing_file_is_named(kubeconfig, api_client, namespace, tmp_path):
    """src: a List document and a plain document, applied after definitions; read on the controller."""
    import yaml

    def configmap_def(name):
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": {"a": name}}

    src = tmp_path / "objects.yaml"
    src.write_text(yaml.safe_dump_all([{"apiVersion": "v1", "kind": "List", "items": [configmap_def("from-list")]},
                                       configmap_def("from-doc")]))
    result = call(kubeconfig, tmp_path, [configmap_def("inline")], src=str(src))
    assert result["changes"] == [f"created ConfigMap/{namespace}/{n}" for n in ("inline", "from-list", "from-doc")], result
    assert configmap(api_client, namespace, "from-list").data == {"a": "from-list"}
    missing = call(kubeconfig, tmp_path, [], src=str(tmp_path / "absent.yaml"))
    assert missing["failed"] and "src:" in missing["msg"] and "absent.yaml" in missing["msg"]


def test_objects_sharing_kind_namespace_and_labels_are_read_by_one_list_and_unlabelled_ones_one_by_one(
        kubeconfig, api_client, namespace, monkeypatch):
    """_prefetch: one list request per group; an existing object without the labels is still found (adopted)."""
    from ansible_collections.mlops.platform.plugins.module_utils import bundle as bd
    from ansible_collections.mlops.platform.plugins.module_utils import kube

    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="adopted"), data={"a": "1"}))
    labels = {"app.kubernetes.io/managed-by": "mlops.platform", "it-prefetch": namespace}
    definitions = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace, "labels": labels},
                    "data": {"a": "1"}} for name in ("one", "two", "three", "adopted")]
    requests: list[tuple[str, str]] = []
    original = kube.Client.request

    def counted(self, method, path, *args, **kwargs):
        requests.append((method, path))
        return original(self, method, path, *args, **kwargs)

    monkeypatch.setattr(kube.Client, "request", counted)

    def apply(defs):
        requests.clear()
        params = {**{k: v.get("default") for k, v in bd.ARGUMENT_SPEC.items()}, "definitions": defs, "kubeconfig": kubeconfig}
        return bd.apply_bundle(params, False, False)

    first = apply(definitions)
    assert first["counts"] == {"created": 3, "updated": 1, "unchanged": 0, "deleted": 0}, first
    assert "updated ConfigMap/" + namespace + "/adopted" in first["changes"]

    again = apply(definitions)
    assert again["counts"] == {"created": 0, "updated": 0, "unchanged": 4, "deleted": 0}, again
    reads = [path for method, path in requests if method == "GET" and "/configmaps" in path]
    assert reads == [f"/api/v1/namespaces/{namespace}/configmaps"], reads  # one list, no read per object

    # A change made behind the module's back shows through the list.
    core.patch_namespaced_config_map("two", namespace, {"data": {"a": "drift"}})
    drifted = apply(definitions)
    assert drifted["changes"] == [f"updated ConfigMap/{namespace}/two"]
    assert core.read_namespaced_config_map("two", namespace).data == {"a": "1"}


def test_a_bundle_of_crds_alone_returns_once_their_kinds_are_served(kubeconfig, bundle_ns):
    """The next task (another client, no CRD in its bundle) must find the kinds: the Seldon stand-in
    CRDs are one call and the runtimes the next one."""
    from ansible_collections.mlops.platform.plugins.module_utils import bundle as bd

    params = {**{k: v.get("default") for k, v in bd.ARGUMENT_SPEC.items()}, "definitions": [CRD], "kubeconfig": kubeconfig}
    created = bd.apply_bundle(params, False, False)
    assert created["counts"]["created"] == 1, created
    fresh = bd.connect(kubeconfig, None)
    try:
        assert fresh.resource(f"{GROUP}/v1", "Widget") is not None
    finally:
        fresh.close()
    widget = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "default"}, "spec": {"size": 1}}
    dry = bd.apply_bundle({**params, "definitions": [widget]}, True, False)
    assert dry["counts"]["created"] == 1, dry


def test_wait_requires_names_a_missing_object_and_does_not_wait(kubeconfig, namespace, tmp_path):
    """A workload that cannot become ready without a Secret from elsewhere: no wait, the Secret named."""
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "needs-secret", "namespace": namespace},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "needs-secret"}},
                 "template": {"metadata": {"labels": {"app": "needs-secret"}},
                              "spec": {"containers": [{"name": "c", "image": "example.invalid/app:1",
                                                       "envFrom": [{"secretRef": {"name": "from-elsewhere"}}]}]}}},
    }
    required = [{"kind": "Secret", "name": "from-elsewhere", "namespace": namespace}]
    started = time.monotonic()
    result = call(kubeconfig, tmp_path, [deployment], wait=True, wait_timeout=120, wait_requires=required)
    assert not result.get("failed"), result.get("msg")
    assert result["missing"] == [f"Secret/{namespace}/from-elsewhere"]
    assert time.monotonic() - started < 60  # it did not wait for the 120 s timeout

    present = call(kubeconfig, tmp_path, [deployment], wait_requires=[{"kind": "Namespace", "name": namespace}])
    assert present["missing"] == []
