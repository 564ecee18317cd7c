"""The secrets role on the offline cluster: direct mode (exact keys and types of seeds 000 and
003, labels, idempotence, check mode) and the package round trip (playbooks/secrets_package.yml
builds, package mode verifies, extracts and applies), each run at -vvv and scanned for every
secret value."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import secrets as pysecrets
import subprocess
import sys
import time

import pytest
from ansible_run import recap
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVING, TRAINING, MLFLOW_NS = "it-sec-serving", "it-sec-training", "it-sec-mlflow"
S3_KEYS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"}
TRAINING_KEYS = S3_KEYS | {
    "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_S3_ENDPOINT_URL",
    "MLFLOW_FLASK_SERVER_SECRET_KEY", "RCLONE_CONFIG_S3_TYPE", "RCLONE_CONFIG_S3_PROVIDER",
    "RCLONE_CONFIG_S3_ACCESS_KEY_ID", "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY", "RCLONE_CONFIG_S3_REGION",
    "RCLONE_CONFIG_S3_ENDPOINT",
}
DB_KEYS = {"username", "password", "host", "port", "database", "driver", "connection-url"}

PLAYBOOK = """
- name: Platform secrets
  hosts: localhost
  gather_facts: false
  roles:
    - role: mlops.platform.secrets
"""


def _wait_gone(core, names: tuple[str, ...], timeout: float = 120) -> None:
    from kubernetes.client.rest import ApiException

    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            try:
                core.read_namespace(name)
            except ApiException as exc:
                assert exc.status == 404
                break
            assert time.monotonic() < deadline, f"namespace {name} still terminating after {timeout} s"
            time.sleep(0.5)


@pytest.fixture()
def team_namespaces(api_client):
    """The namespaces the team_isolation role would create, made here so the test stands alone."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    names = (SERVING, TRAINING, MLFLOW_NS)
    _wait_gone(core, names)  # a previous test's namespaces may still be terminating
    for name in names:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield core
    for name in names:
        core.delete_namespace(name)
    _wait_gone(core, names)


def leak_values() -> dict[str, str]:
    """Values unique to this run: finding one in any output can only be a leak."""
    names = ("s3_id", "s3_key", "mlflow_pw", "flask", "ghcr_pw", "db_pw")
    return {k: f"leak{k}{pysecrets.token_hex(10)}" for k in names}


@pytest.fixture()
def leak() -> dict[str, str]:
    return leak_values()


def role_vars(kubeconfig: str, leak: dict[str, str], namespaces: tuple[str, str, str] = (SERVING, TRAINING, MLFLOW_NS),
              **over) -> dict:
    """The secrets role's variables with the run's leak values; namespaces: (serving, training, MLflow's)."""
    serving, training, mlflow_ns = namespaces
    data = {
        "secrets_kubeconfig": kubeconfig,
        "teams": [
            {"name": serving, "serving": True, "secrets": ["ml-platform"]},
            {"name": training, "training": True, "secrets": ["ml-platform", "ghcr"]},
        ],
        "secrets_s3": {"access_key_id": leak["s3_id"], "secret_access_key": leak["s3_key"], "region": "us-east-1",
                       "endpoint_url": "http://minio.minio.svc.cluster.local:9000", "rclone_provider": "Minio"},
        "secrets_mlflow": {"tracking_uri": "http://mlflow.mlflow.svc.cluster.local:5000", "tracking_username": "mlflow",
                           "tracking_password": leak["mlflow_pw"], "s3_endpoint_url": "",
                           "flask_server_secret_key": leak["flask"]},
        "secrets_registry": {"server": "ghcr.io", "username": "bot", "password": leak["ghcr_pw"], "email": ""},
        "secrets_mlflow_database": {"enabled": True, "name": "mlflow-database-secret", "namespace": mlflow_ns,
                                    "username": "mlflow", "password": leak["db_pw"], "host": "db.example",
                                    "port": 5432, "database": "mlflow", "driver": "psycopg2",
                                    "scheme": "postgresql+psycopg2", "connection_url": ""},
    }
    data.update(over)
    return data


def run(tmp_path: pathlib.Path, playbook: str, extra: dict, *args: str, inventory: str = "localhost,"):
    play = tmp_path / f"play-{pysecrets.token_hex(4)}.yml"
    play.write_text(playbook)
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(extra))
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
           "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    cmd = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-vvv", "-i", inventory, "-c", "local",
           "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"@{vars_file}", *args, str(play)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, check=False, timeout=600)
    return result.returncode, result.stdout + result.stderr


def assert_no_leak(output: str, leak: dict[str, str]) -> None:
    found = [name for name, value in leak.items() if value in output]
    assert found == [], f"secret values {found} appear in the -vvv output"


def decoded(secret) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


@pytest.mark.cluster
def test_direct_mode_creates_exact_secrets_idempotently(kubeconfig, team_namespaces, tmp_path, leak):
    core = team_namespaces
    rc, out = run(tmp_path, PLAYBOOK, role_vars(kubeconfig, leak), "--check")
    assert rc == 0, out[-4000:]
    assert_no_leak(out, leak)
    managed = "app.kubernetes.io/managed-by=mlops.platform"
    assert core.list_namespaced_secret(TRAINING, label_selector=managed).items == []

    # Check mode before team_isolation created a namespace: reported, not sent.
    absent_ns = role_vars(kubeconfig, leak)
    absent_ns["secrets_mlflow_database"] = {**absent_ns["secrets_mlflow_database"], "namespace": "it-sec-absent"}
    rc, out = run(tmp_path, PLAYBOOK, absent_ns, "--check")
    assert rc == 0, out[-4000:]
    assert "created Secret/it-sec-absent/mlflow-database-secret" in out
    assert_no_leak(out, leak)

    rc, out = run(tmp_path, PLAYBOOK, role_vars(kubeconfig, leak))
    assert rc == 0, out[-4000:]
    assert recap(out)["changed"] >= 1
    assert_no_leak(out, leak)
    assert f"Secret/{TRAINING}/ghcr" in out  # changes are reported by name

    serving = core.read_namespaced_secret("ml-platform", SERVING)
    assert serving.type == "Opaque" and set(serving.data) == S3_KEYS
    assert decoded(serving)["AWS_SECRET_ACCESS_KEY"] == leak["s3_key"]
    assert serving.metadata.labels == {
        "app.kubernetes.io/managed-by": "mlops.platform", "app.kubernetes.io/part-of": "mlops-platform",
        "mlops.platform/team": SERVING,
    }
    training = core.read_namespaced_secret("ml-platform", TRAINING)
    assert set(training.data) == TRAINING_KEYS
    values = decoded(training)
    assert values["MLFLOW_TRACKING_PASSWORD"] == leak["mlflow_pw"]
    assert values["RCLONE_CONFIG_S3_SECRET_ACCESS_KEY"] == leak["s3_key"]
    assert values["MLFLOW_S3_ENDPOINT_URL"] == values["AWS_ENDPOINT_URL"]
    ghcr = core.read_namespaced_secret("ghcr", TRAINING)
    assert ghcr.type == "kubernetes.io/dockerconfigjson"
    auths = json.loads(decoded(ghcr)[".dockerconfigjson"])["auths"]["ghcr.io"]
    assert base64.b64decode(auths["auth"]).decode() == f"bot:{leak['ghcr_pw']}"
    assert [s.metadata.name for s in core.list_namespaced_secret(SERVING).items if s.metadata.name == "ghcr"] == []
    db = core.read_namespaced_secret("mlflow-database-secret", MLFLOW_NS)
    assert set(db.data) == DB_KEYS
    assert decoded(db)["connection-url"] == f"postgresql+psycopg2://mlflow:{leak['db_pw']}@db.example:5432/mlflow"

    rc, out = run(tmp_path, PLAYBOOK, role_vars(kubeconfig, leak))
    assert rc == 0 and recap(out)["changed"] == 0, out[-4000:]
    assert_no_leak(out, leak)


@pytest.mark.cluster
def test_direct_mode_refuses_empty_values_before_any_change(kubeconfig, team_namespaces, tmp_path, leak):
    variables = role_vars(kubeconfig, leak)
    variables["secrets_registry"] = {**variables["secrets_registry"], "password": ""}
    rc, out = run(tmp_path, PLAYBOOK, variables)
    assert rc != 0 and f"secrets_registry.password (for {TRAINING}/ghcr)" in out, out[-3000:]
    assert_no_leak(out, leak)
    variables["secrets_s3"] = {**variables["secrets_s3"], "secret_access_key": ""}
    rc, out = run(tmp_path, PLAYBOOK, variables)
    assert rc != 0 and f"secrets_s3.secret_access_key (for {SERVING}/ml-platform)" in out
    assert f"{SERVING}/ml-platform.AWS_SECRET_ACCESS_KEY" in out
    assert_no_leak(out, leak)
    assert team_namespaces.list_namespaced_secret(SERVING, label_selector="app.kubernetes.io/managed-by").items == []


@pytest.mark.cluster
def test_package_round_trip_through_the_role(kubeconfig, team_namespaces, tmp_path, leak):
    core = team_namespaces
    signing = ed25519.Ed25519PrivateKey.generate()
    signing_pem = signing.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    verify_pem = signing.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    dist = tmp_path / "dist"
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n    mlops_platform:\n      hosts:\n        localhost:\n")
    build_vars = role_vars(kubeconfig, leak, secrets_package_dir=str(dist), secrets_package_date="20250704",
                           secrets_package_environment="production", secrets_package_signing_key=signing_pem)
    build_playbook = (ROOT / "playbooks" / "secrets_package.yml").read_text()
    rc, out = run(tmp_path, build_playbook, build_vars, inventory=str(inventory))
    assert rc == 0, out[-4000:]
    assert_no_leak(out, leak)
    assert signing_pem.splitlines()[1] not in out
    packages = sorted(p.name for p in dist.iterdir())
    assert packages == [f"{ns}-platform-secrets-20250704.tar.gz" for ns in sorted((MLFLOW_NS, SERVING, TRAINING))]
    rc, again = run(tmp_path, build_playbook, build_vars, inventory=str(inventory))
    assert rc == 0 and recap(again)["changed"] == 0, again[-4000:]

    apply_vars = {
        "secrets_kubeconfig": kubeconfig,
        "teams": build_vars["teams"],
        "secrets_mode": "package",
        "secrets_package_environment": "production",
        "secrets_manifests_dir": str(tmp_path / "k8s" / "manifests"),
        "secrets_packages": [
            {"src": str(dist / f"{ns}-platform-secrets-20250704.tar.gz"), "namespace": ns, "verify_key": verify_pem}
            for ns in (SERVING, TRAINING, MLFLOW_NS)
        ],
    }
    rc, out = run(tmp_path, PLAYBOOK, apply_vars)
    assert rc == 0, out[-4000:]
    assert_no_leak(out, leak)
    assert set(core.read_namespaced_secret("ml-platform", TRAINING).data) == TRAINING_KEYS
    assert core.read_namespaced_secret("ghcr", TRAINING).type == "kubernetes.io/dockerconfigjson"
    assert set(core.read_namespaced_secret("mlflow-database-secret", MLFLOW_NS).data) == DB_KEYS
    rc, out = run(tmp_path, PLAYBOOK, apply_vars)
    assert rc == 0 and recap(out)["changed"] == 0, out[-4000:]

    # A package for another namespace is refused and nothing of it is written.
    wrong = dict(apply_vars, secrets_packages=[
        {"src": str(dist / f"{SERVING}-platform-secrets-20250704.tar.gz"), "namespace": TRAINING}
    ], secrets_manifests_dir=str(tmp_path / "other"))
    rc, out = run(tmp_path, PLAYBOOK, wrong)
    assert rc != 0 and f"not '{TRAINING}'" in out
    assert not (tmp_path / "other").exists()


def _eso_crd(kind: str, plural: str) -> dict:
    """A minimal stand-in for an External Secrets Operator CRD: the API group and kinds, any spec."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.external-secrets.io"},
        "spec": {
            "group": "external-secrets.io",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                }}},
            }],
        },
    }


@pytest.fixture()
def eso_crds(api_client):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    ext = client.ApiextensionsV1Api(api_client)
    created = []
    for kind, plural in (("SecretStore", "secretstores"), ("ExternalSecret", "externalsecrets")):
        try:
            ext.read_custom_resource_definition(f"{plural}.external-secrets.io")
        except ApiException as exc:
            assert exc.status == 404
            ext.create_custom_resource_definition(_eso_crd(kind, plural))
            created.append(f"{plural}.external-secrets.io")
    deadline = time.monotonic() + 60
    for name in created:
        while not any(c.type == "Established" and c.status == "True"
                      for c in (ext.read_custom_resource_definition(name).status.conditions or [])):
            assert time.monotonic() < deadline, f"CRD {name} not established"
            time.sleep(0.5)
    yield
    for name in created:
        ext.delete_custom_resource_definition(name)


@pytest.mark.cluster
def test_external_mode_renders_stores_and_external_secrets(kubeconfig, api_client, team_namespaces, eso_crds,
                                                           tmp_path, leak):
    from kubernetes import client

    external = {"store_name": "platform-store", "provider": {"gcpsm": {"projectID": "it-project"}},
                "refresh_interval": "1h", "key_prefix": "mlops-"}
    variables = role_vars(kubeconfig, leak, secrets_mode="external", secrets_external=external)
    rc, out = run(tmp_path, PLAYBOOK, variables)
    assert rc == 0, out[-4000:]
    assert_no_leak(out, leak)
    custom = client.CustomObjectsApi(api_client)
    stores = custom.list_namespaced_custom_object("external-secrets.io", "v1", TRAINING, "secretstores")["items"]
    assert [s["metadata"]["name"] for s in stores] == ["platform-store"]
    assert stores[0]["spec"]["provider"] == {"gcpsm": {"projectID": "it-project"}}
    found = custom.list_namespaced_custom_object("external-secrets.io", "v1", TRAINING, "externalsecrets")["items"]
    by_name = {e["metadata"]["name"]: e for e in found}
    assert set(by_name) == {"ml-platform", "ghcr"}
    ml = by_name["ml-platform"]["spec"]
    assert {d["secretKey"] for d in ml["data"]} == TRAINING_KEYS
    assert {d["remoteRef"]["key"] for d in ml["data"]} == {f"mlops-{TRAINING}-ml-platform"}
    assert by_name["ghcr"]["spec"]["target"]["template"]["type"] == "kubernetes.io/dockerconfigjson"
    db = custom.list_namespaced_custom_object("external-secrets.io", "v1", MLFLOW_NS, "externalsecrets")["items"]
    assert {d["secretKey"] for d in db[0]["spec"]["data"]} == DB_KEYS
    assert not any(v in json.dumps(found + db) for v in leak.values())
    rc, out = run(tmp_path, PLAYBOOK, variables)
    assert rc == 0 and recap(out)["changed"] == 0, out[-4000:]
