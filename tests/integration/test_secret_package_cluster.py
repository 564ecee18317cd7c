"""build → extract → `kubectl apply -k overlays/<env>` on the offline cluster, read back.

Plain packages must produce Secrets with exactly the keys, types and labels asked for;
sealed packages must produce SealedSecret objects that a SealedSecret CRD (installed here
for the test, structural schema written from the documented object shape) accepts.
"""

from __future__ import annotations

import base64
import pathlib
import subprocess

import pytest
from ansible_collections.mlops.platform.plugins.module_utils import secret_package as sp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

ROOT = pathlib.Path(__file__).resolve().parents[2]
OFFLINE_CLUSTER = ROOT / "roles" / "cluster" / "files" / "offline-cluster.sh"

ML_PLATFORM_KEYS = {
    "AWS_ACCESS_KEY_ID": "it-access",
    "AWS_SECRET_ACCESS_KEY": "it-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ENDPOINT_URL": "http://minio.minio.svc.cluster.local:9000",
}
DOCKERCONFIG = '{"auths":{"ghcr.io":{"auth":"aXQ6aXQ="}}}'

SEALED_SECRET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "sealedsecrets.bitnami.com"},
    "spec": {
        "group": "bitnami.com",
        "names": {
            "kind": "SealedSecret",
            "listKind": "SealedSecretList",
            "plural": "sealedsecrets",
            "singular": "sealedsecret",
        },
        "scope": "Namespaced",
        "versions": [{
            "name": "v1alpha1",
            "served": True,
            "storage": True,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "required": ["spec"],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                    "spec": {
                        "type": "object",
                        "required": ["encryptedData"],
                        "properties": {
                            "encryptedData": {"type": "object", "additionalProperties": {"type": "string"}},
                            "template": {
                                "type": "object",
                                "properties": {
                                    "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                    "type": {"type": "string"},
                                    "immutable": {"type": "boolean"},
                                    "data": {"type": "object", "additionalProperties": {"type": "string"}},
                                },
                            },
                        },
                    },
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                },
            }},
        }],
    },
}


@pytest.fixture(scope="module")
def controller_public_pem() -> str:
    """A stand-in controller key; load_public_key accepts a PEM public key as well as a certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.fixture(scope="module")
def signing_pem() -> str:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def kubectl_path() -> str:
    env = dict(
        line.split("=", 1)
        for line in subprocess.run([str(OFFLINE_CLUSTER), "env"], capture_output=True, text=True, check=True)
        .stdout.splitlines() if "=" in line
    )
    return f"{env['MLOPS_CACHE_DIR']}/bin/kubernetes-{env['K8S_VERSION']}/kubectl"


def kubectl(kubeconfig: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [kubectl_path(), "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, check=False, timeout=120
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def apply_overlay(kubeconfig: str, dest: pathlib.Path, env: str) -> None:
    """The team-side step of the seeds: `kubectl apply -k k8s/manifests/<ns>/<env>`."""
    kubectl(kubeconfig, "apply", "--server-side", "--field-manager=mlops.platform", "-k", str(dest / "overlays" / env))


def package_spec(namespace: str, **over) -> dict:
    spec = {
        "project": namespace, "scope": "ml", "namespace": namespace, "team": "it-team", "date": "20250704",
        "environments": ["production", "staging"],
        "secrets": [
            {"name": "ml-platform", "data": dict(ML_PLATFORM_KEYS)},
            {"name": "ghcr", "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": DOCKERCONFIG}},
            {
                "name": "mlflow-database-secret",
                "data": {"username": "mlflow", "host": "db", "port": 5432},
                "environments": {"production": {"password": "prod-pw"}, "staging": {"password": "stg-pw"}},
            },
        ],
    }
    spec.update(over)
    return spec


def build_and_extract(tmp_path: pathlib.Path, spec: dict) -> pathlib.Path:
    data = sp.build(spec)[0]
    package = tmp_path / sp.package_filename(spec["project"], spec["scope"], spec["date"])
    assert sp.write_package(str(package), data)[0]
    files = sp.load_package(str(package), spec["namespace"])[0]
    dest = tmp_path / "k8s" / "manifests" / spec["namespace"]
    assert sp.extract(files, str(dest))[0]
    return dest


@pytest.mark.cluster
def test_plain_package_applies_with_exact_keys(kubeconfig, api_client, namespace, tmp_path):
    from kubernetes import client

    dest = build_and_extract(tmp_path, package_spec(namespace))
    apply_overlay(kubeconfig, dest, "production")
    core = client.CoreV1Api(api_client)
    ml = core.read_namespaced_secret("ml-platform", namespace)
    assert ml.type == "Opaque"
    assert {k: base64.b64decode(v).decode() for k, v in ml.data.items()} == ML_PLATFORM_KEYS
    assert ml.metadata.labels["app.kubernetes.io/managed-by"] == "mlops.platform"
    assert ml.metadata.labels["app.kubernetes.io/part-of"] == "mlops-platform"
    assert ml.metadata.labels["mlops.platform/team"] == "it-team"
    ghcr = core.read_namespaced_secret("ghcr", namespace)
    assert ghcr.type == "kubernetes.io/dockerconfigjson"
    assert base64.b64decode(ghcr.data[".dockerconfigjson"]).decode() == DOCKERCONFIG
    db = core.read_namespaced_secret("mlflow-database-secret", namespace)
    assert set(db.data) == {"username", "host", "port", "password"}
    assert base64.b64decode(db.data["password"]) == b"prod-pw"
    # Re-applying the staging overlay switches the per-environment value only.
    apply_overlay(kubeconfig, dest, "staging")
    db = core.read_namespaced_secret("mlflow-database-secret", namespace)
    assert base64.b64decode(db.data["password"]) == b"stg-pw"


@pytest.fixture()
def sealed_secret_crd(kubeconfig, api_client):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    ext = client.ApiextensionsV1Api(api_client)
    created = False
    try:
        ext.read_custom_resource_definition("sealedsecrets.bitnami.com")
    except ApiException as exc:
        assert exc.status == 404
        ext.create_custom_resource_definition(SEALED_SECRET_CRD)
        created = True
    kubectl(kubeconfig, "wait", "--for=condition=Established", "crd/sealedsecrets.bitnami.com", "--timeout=60s")
    yield
    if created:
        ext.delete_custom_resource_definition("sealedsecrets.bitnami.com")


@pytest.mark.cluster
def test_sealed_package_validates_against_the_crd(
    kubeconfig, api_client, namespace, tmp_path, sealed_secret_crd, controller_public_pem, signing_pem
):
    from kubernetes import client

    custom = client.CustomObjectsApi(api_client)
    # One namespace (the shared fixture takes the test name), each scope applied in turn.
    for scope in ("strict", "namespace-wide", "cluster-wide"):
        spec = package_spec(namespace, certificate=controller_public_pem, sealing_scope=scope, signing_key=signing_pem)
        dest = build_and_extract(tmp_path / scope, spec)
        apply_overlay(kubeconfig, dest, "production")
        items = custom.list_namespaced_custom_object("bitnami.com", "v1alpha1", namespace, "sealedsecrets")["items"]
        by_name = {item["metadata"]["name"]: item for item in items}
        assert set(by_name) == {"ml-platform", "ghcr", "mlflow-database-secret"}
        assert set(by_name["ml-platform"]["spec"]["encryptedData"]) == set(ML_PLATFORM_KEYS)
        assert by_name["ghcr"]["spec"]["template"]["type"] == "kubernetes.io/dockerconfigjson"
        assert by_name["ml-platform"]["spec"]["template"]["metadata"]["labels"]["mlops.platform/team"] == "it-team"
        annotations = by_name["ml-platform"]["metadata"].get("annotations", {})
        for name in ("namespace-wide", "cluster-wide"):
            assert (annotations.get(f"sealedsecrets.bitnami.com/{name}") == "true") == (scope == name), annotations
    # The CRD really validates: a malformed object is rejected by the API server.
    bad = {
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "bad", "namespace": namespace}, "spec": {"encryptedData": {"k": 5}},
    }
    with pytest.raises(client.exceptions.ApiException) as err:
        custom.create_namespaced_custom_object("bitnami.com", "v1alpha1", namespace, "sealedsecrets", bad)
    assert err.value.status == 422
