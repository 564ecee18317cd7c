"""The REST client's kubeconfig handling and the bundle's pure checks (no API server needed)."""

from __future__ import annotations

import base64
import json
import stat

import pytest
import yaml
from ansible_collections.mlops.platform.plugins.module_utils import bundle as bd
from ansible_collections.mlops.platform.plugins.module_utils import kube
from ansible_collections.mlops.platform.plugins.module_utils.kube import Config, KubeError


def kubeconfig(tmp_path, users: list[dict], current: str = "one", extra_contexts: list | None = None, name="config"):
    data = {
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443/",
                                               "certificate-authority-data": base64.b64encode(b"CA").decode()}}],
        "users": users,
        "contexts": [{"name": "one", "context": {"cluster": "c", "user": users[0]["name"] if users else None}},
                     *(extra_contexts or [])],
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_token_user_and_ca_data(tmp_path):
    config = Config.load(kubeconfig(tmp_path, [{"name": "u", "user": {"token": "abc"}}]))
    assert config.server == "https://127.0.0.1:6443" and config.ca_data == b"CA" and config.bearer_token() == "abc"


def test_client_certificate_files_resolve_next_to_the_kubeconfig(tmp_path):
    (tmp_path / "cert.pem").write_bytes(b"CERT")
    (tmp_path / "key.pem").write_bytes(b"KEY")
    config = Config.load(kubeconfig(tmp_path, [{"name": "u", "user": {"client-certificate": "cert.pem", "client-key": "key.pem"}}]))
    assert (config.cert_data, config.key_data) == (b"CERT", b"KEY") and config.bearer_token() is None


def test_exec_plugin_token_is_read_from_a_real_command(tmp_path):
    script = tmp_path / "get-token"
    script.write_text('#!/bin/sh\necho "{\\"kind\\":\\"ExecCredential\\",\\"status\\":{\\"token\\":\\"$1-$MY_ENV\\"}}"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    plugin = {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(script),
              "args": ["tok"], "env": [{"name": "MY_ENV", "value": "x"}]}
    user = {"name": "u", "user": {"exec": plugin}}
    assert Config.load(kubeconfig(tmp_path, [user])).bearer_token() == "tok-x"


def test_exec_plugin_failure_and_missing_command_are_clear(tmp_path):
    failing = {"name": "u", "user": {"exec": {"command": "false"}}}
    with pytest.raises(KubeError, match="exec plugin false failed"):
        Config.load(kubeconfig(tmp_path, [failing])).bearer_token()
    missing = {"name": "u", "user": {"exec": {"command": "/nonexistent/aws", "installHint": "install the AWS CLI"}}}
    with pytest.raises(KubeError, match="install the AWS CLI"):
        Config.load(kubeconfig(tmp_path, [missing])).bearer_token()


def test_context_choice_auth_provider_and_missing_names(tmp_path, monkeypatch):
    other = [{"name": "two", "context": {"cluster": "c", "user": "v"}}]
    path = kubeconfig(tmp_path, [{"name": "u", "user": {"token": "a"}}, {"name": "v", "user": {"token": "b"}}], extra_contexts=other)
    assert Config.load(path, "two").bearer_token() == "b"
    with pytest.raises(KubeError, match="no context named 'three'"):
        Config.load(path, "three")
    provider = kubeconfig(tmp_path, [{"name": "u", "user": {"auth-provider": {"name": "oidc"}}}], name="p")
    with pytest.raises(KubeError, match="auth-provider plugin, which is not supported"):
        Config.load(provider)
    with pytest.raises(KubeError, match="cannot read kubeconfig"):
        Config.load(str(tmp_path / "absent"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(KubeError, match="no kubeconfig found"):
        Config.load()


def test_kubeconfig_list_merges_first_file_wins(tmp_path, monkeypatch):
    first = kubeconfig(tmp_path, [{"name": "u", "user": {"token": "first"}}], name="a")
    second = kubeconfig(tmp_path, [{"name": "u", "user": {"token": "second"}}], current="two",
                        extra_contexts=[{"name": "two", "context": {"cluster": "c", "user": "u"}}], name="b")
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    config = Config.load(None, "two")
    assert config.bearer_token() == "first"


def test_definitions_are_checked_all_at_once():
    with pytest.raises(bd.BundleError) as exc:
        bd.check_definitions([
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "n"}},
            {"kind": "ConfigMap", "metadata": {"name": "b", "namespace": "n"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "n"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x/y", "namespace": "n"}},
            "not a mapping",
        ])
    message = str(exc.value)
    assert "definitions[1]: apiVersion is missing" in message
    assert "definitions[2] (ConfigMap/n/a): the same object as definitions[0]" in message
    assert "definitions[3] (ConfigMap/n/x/y): metadata.name 'x/y' cannot be used" in message
    assert "definitions[4]: is a str, not a mapping" in message


def test_secret_values_are_hidden_and_changes_marked():
    before = {"kind": "Secret", "metadata": {"name": "s", "resourceVersion": "1"}, "data": {"a": "MQ==", "b": "Mg=="}}
    after = {"kind": "Secret", "metadata": {"name": "s", "resourceVersion": "2"}, "data": {"a": "MQ==", "b": "Mw=="}}
    assert bd.shown(after, before)["data"] == {"a": "<hidden>", "b": "<hidden, changed>"}
    assert "resourceVersion" not in bd.shown(after, before)["metadata"]
    assert bd.shown(after)["data"] == {"a": "<hidden>", "b": "<hidden>"}
    assert "Mw==" not in json.dumps(bd.shown(after, before))


def test_change_ignores_bookkeeping_but_not_ownership():
    base = {"kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "1", "managedFields": [
        {"manager": "mlops.platform", "operation": "Apply", "time": "t1", "fieldsV1": {"f:data": {}}}]}, "data": {"a": "1"}}
    later = json.loads(json.dumps(base))
    later["metadata"]["resourceVersion"] = "2"
    later["metadata"]["managedFields"][0]["time"] = "t2"
    later["metadata"]["managedFields"].append({"manager": "before-first-apply", "operation": "Update", "fieldsV1": {}})
    assert bd.normalized(base) == bd.normalized(later)
    taken = json.loads(json.dumps(base))
    taken["metadata"]["managedFields"][0]["manager"] = "kubectl"
    assert bd.normalized(base) != bd.normalized(taken)


@pytest.mark.parametrize(("version", "inside"), [
    ({"gitVersion": "v1.33.13"}, True),
    ({"gitVersion": "v1.30.2-eks-1234abc"}, True),
    ({"major": "1", "minor": "27+"}, True),
    ({"gitVersion": "v1.26.9"}, False),
    ({"gitVersion": "v1.34.0"}, False),
])
def test_version_range_accepts_provider_suffixes_and_refuses_outside(version, inside):
    params = {"version_min": "1.27", "version_max": "1.33"}
    if inside:
        kube._check_version(params, "https://api", version)
    else:
        with pytest.raises(kube.Failed, match=r"outside the supported range 1\.27-1\.33"):
            kube._check_version(params, "https://api", version)


def test_large_definitions_carry_the_digest_of_what_was_applied():
    bm = bd
    small = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}}
    assert bm.with_digest(small) is small
    large = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "annotations": {"x": "y"}},
             "data": {"k": "v" * (bm.LARGE_OBJECT + 1)}}
    marked = bm.with_digest(large)
    digest = marked["metadata"]["annotations"][bm.DIGEST_ANNOTATION]
    assert marked["metadata"]["annotations"]["x"] == "y" and "annotations" in large["metadata"]
    assert bm.DIGEST_ANNOTATION not in large["metadata"]["annotations"], "the definition itself is not changed"
    assert bm.with_digest({**large, "data": {"k": "w" * (bm.LARGE_OBJECT + 1)}})["metadata"]["annotations"][
        bm.DIGEST_ANNOTATION] != digest
    # The server's copy: the same fields plus its own.
    live = {**marked, "metadata": {**marked["metadata"], "uid": "1", "resourceVersion": "7"}, "status": {}}
    assert bm.unchanged_as_applied(marked, live)
    assert not bm.unchanged_as_applied(marked, None)
    assert not bm.unchanged_as_applied(small, small), "small objects always go through the dry-run"
    edited = {**live, "data": {"k": "edited by hand"}}
    assert not bm.unchanged_as_applied(marked, edited)
    other_digest = {**live, "metadata": {**live["metadata"], "annotations": {bm.DIGEST_ANNOTATION: "0" * 32, "x": "y"}}}
    assert not bm.unchanged_as_applied(marked, other_digest)


def test_contains_is_exact_about_types_and_list_lengths():
    contains = bd.contains
    assert contains({"a": [1, {"b": "c"}]}, {"a": [1, {"b": "c", "d": 1}], "e": 2})
    assert not contains({"a": [1]}, {"a": [1, 2]})
    assert not contains({"a": 1}, {"a": "1"})
    assert not contains({"a": True}, {"a": 1})
    assert not contains({"a": {"b": 1}}, {"a": {}})


def test_src_json_is_read_with_the_json_module(tmp_path):
    load_definitions = bd.load_definitions
    listed = {"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}]}
    (tmp_path / "list.json").write_text(json.dumps(listed))
    assert load_definitions(str(tmp_path / "list.json")) == listed["items"]
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(KubeError, match=r"src: cannot read .*bad\.json"):
        load_definitions(str(tmp_path / "bad.json"))
