"""The real secret controllers turn what the secrets role renders into Secrets.

On an offline cluster of its own (created for this module, deleted at the end, also on failure):

* the Sealed Secrets controller, built from github.com/bitnami-labs/sealed-secrets by
  roles/secrets/files/controllers.sh, runs as a process with its upstream RBAC; the test fetches
  its certificate from /v1/cert.pem (what `kubeseal --fetch-cert` reads), builds sealed packages
  with playbooks/secrets_package.yml, converges the role in package mode, and every SealedSecret
  becomes a Secret owned by it with exactly the keys and values of the unsealed spec;
* the External Secrets Operator, built from github.com/external-secrets/external-secrets, runs as
  a process (no webhook, no cert controller) with AWS Secrets Manager served by moto; the role
  converges inventories/prod's `secrets_mode: external` shape, each ExternalSecret becomes a
  Secret with exactly the keys of seeds 000 and 003, and a value rotated in moto reaches the
  Secret after the refresh interval.

Both controllers' CRDs come from their modules' own files. The figures (seconds to Secret,
rotation latency) are printed with -s and recorded in the README.
"""

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
import yaml
from ansible_collections.mlops.platform.plugins.module_utils import secrets as secrets_utils
from ansible_collections.mlops.platform.plugins.module_utils import teams as teams_utils
from ansible_run import recap
from controller_processes import CLUSTER, controllers, kubectl_path, start_sealed_secrets, stop
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from servers import free_port, wait_http
from test_secrets_role import leak_values
from test_secrets_role import role_vars as secrets_role_vars

ROOT = pathlib.Path(__file__).resolve().parents[2]
NAME = "mlops-it-secret-controllers"

S3_KEYS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"}
# Seed 000: the ml-platform Secret of a training namespace.
TRAINING_KEYS = S3_KEYS | {
    "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_S3_ENDPOINT_URL",
    "MLFLOW_FLASK_SERVER_SECRET_KEY", "RCLONE_CONFIG_S3_TYPE", "RCLONE_CONFIG_S3_PROVIDER",
    "RCLONE_CONFIG_S3_ACCESS_KEY_ID", "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY", "RCLONE_CONFIG_S3_REGION",
    "RCLONE_CONFIG_S3_ENDPOINT",
}
# AWS S3 itself (prod: secrets_s3.endpoint_url empty): the endpoint keys are left out.
AWS_TRAINING_KEYS = TRAINING_KEYS - {"AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "RCLONE_CONFIG_S3_ENDPOINT"}
# Seed 003: mlflow-database-secret.
DB_KEYS = {"username", "password", "host", "port", "database", "driver", "connection-url"}

PLAYBOOK = """
- name: Platform secrets
  hosts: localhost
  gather_facts: false
  roles:
    - role: mlops.platform.secrets
"""


def figure(name: str, value: float) -> None:
    print(f"\n[figure] {name}: {value:.1f} s")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(kubeconfig, kubectl) of an offline cluster of this module's own."""
    kubeconfig = str(tmp_path_factory.mktemp("controllers") / "kubeconfig")
    env = {**os.environ, "MLOPS_CLUSTER_NAME": NAME, "MLOPS_KUBECONFIG": kubeconfig, "MLOPS_CLUSTER_NODES": "1"}
    try:
        up = subprocess.run([str(CLUSTER), "up"], env=env, capture_output=True, text=True, check=False, timeout=900)
        if up.returncode != 0:  # e.g. a port another cluster took meanwhile: once more from scratch
            subprocess.run([str(CLUSTER), "down"], env=env, capture_output=True, check=False, timeout=300)
            up = subprocess.run([str(CLUSTER), "up"], env=env, capture_output=True, text=True, check=False, timeout=900)
        assert up.returncode == 0, up.stderr[-3000:]
        binary = kubectl_path()

        def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
            result = subprocess.run([binary, "--kubeconfig", kubeconfig, *args], input=stdin, capture_output=True,
                                    text=True, check=False, timeout=120)
            assert not check or result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr[-2000:]}"
            return result

        yield kubeconfig, kubectl
    finally:
        down = subprocess.run([str(CLUSTER), "down"], env=env, capture_output=True, text=True, check=False, timeout=300)
        print(f"\n[cluster {NAME}] down: rc={down.returncode} {down.stdout.strip()} {down.stderr.strip()[-500:]}")


@pytest.fixture(scope="module")
def crds(cluster):
    """Both controllers' CRDs from their modules' own files, established."""
    kubectl = cluster[1]
    crd_list = json.loads(pathlib.Path(controllers("crds")).read_text())
    kubectl("apply", "--server-side", "--field-manager=mlops.platform-tests", "-f", "-", stdin=json.dumps(crd_list))
    names = [item["metadata"]["name"] for item in crd_list["items"]]
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in names))
    return names


@pytest.fixture(scope="module")
def sealed_secrets_controller(cluster, crds, tmp_path_factory):
    """The real controller as a process; yields its certificate (PEM) as /v1/cert.pem serves it."""
    kubeconfig, kubectl = cluster
    proc, cert, log = start_sealed_secrets(kubeconfig, kubectl, tmp_path_factory.mktemp("sealed-secrets"))
    try:
        yield cert, log
    finally:
        stop(proc)


@pytest.fixture()
def leak() -> dict[str, str]:
    return leak_values()


SERVING, TRAINING, MLFLOW_NS = "it-ctl-serving", "it-ctl-training", "it-ctl-mlflow"


def role_vars(kubeconfig: str, leak: dict[str, str], **over) -> dict:
    """The secrets role test's variables, in this module's namespaces."""
    return secrets_role_vars(kubeconfig, leak, namespaces=(SERVING, TRAINING, MLFLOW_NS), **over)


def expected_secrets(variables: dict) -> dict[tuple[str, str], dict]:
    """{(namespace, name): {type, data}} the role computes from `variables` (module_utils/secrets.py)."""
    settings = {"platform_secret_name": "ml-platform", "registry_secret_name": "ghcr", "s3": variables["secrets_s3"],
                "mlflow": variables["secrets_mlflow"], "registry": variables["secrets_registry"],
                "database": variables["secrets_mlflow_database"],
                "grafana": variables.get("secrets_grafana", {"enabled": False})}
    specs = secrets_utils.secrets_specs(teams_utils.team_namespaces(variables["teams"]), settings)
    return {
        (s["namespace"], s["secret"]["name"]): {
            "type": s["secret"].get("type", "Opaque"),
            "data": {k: str(v) for k, v in s["secret"]["data"].items()},
        }
        for s in specs
    }


def run(tmp_path: pathlib.Path, playbook: str, extra: dict, *args: str, inventory: str = "localhost,"):
    play = tmp_path / f"play-{pysecrets.token_hex(4)}.yml"
    play.write_text(playbook)
    vars_file = tmp_path / f"vars-{pysecrets.token_hex(4)}.json"
    vars_file.write_text(json.dumps(extra))
    vars_file.chmod(0o600)
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
           "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    cmd = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", inventory, "-c", "local",
           "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"@{vars_file}", *args, str(play)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, check=False, timeout=600)
    return result.returncode, result.stdout + result.stderr


def assert_no_leak(output: str, leak: dict[str, str]) -> None:
    found = [name for name, value in leak.items() if value in output]
    assert found == [], f"secret values {found} appear in the output"


def read_secret(kubectl, namespace: str, name: str) -> dict | None:
    result = kubectl("get", "secret", name, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        assert "NotFound" in result.stderr, result.stderr
        return None
    return json.loads(result.stdout)


def decoded(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def wait_secrets(kubectl, wanted, timeout: float, ready=lambda s: True) -> dict[tuple[str, str], dict]:
    """Poll until every (namespace, name) in `wanted` exists and satisfies `ready`; fail naming those that do not."""
    deadline = time.monotonic() + timeout
    found: dict[tuple[str, str], dict] = {}
    while True:
        for key in wanted:
            secret = read_secret(kubectl, *key)
            if secret is not None and ready(secret):
                found[key] = secret
        missing = [f"{ns}/{name}" for ns, name in wanted if (ns, name) not in found]
        if not missing:
            return found
        assert time.monotonic() < deadline, f"no (ready) Secret after {timeout} s: {missing}"
        time.sleep(0.25)


@pytest.fixture(scope="module")
def team_namespaces(cluster):
    kubectl = cluster[1]
    for name in (SERVING, TRAINING, MLFLOW_NS):
        kubectl("create", "namespace", name)
    return SERVING, TRAINING, MLFLOW_NS


@pytest.mark.cluster
def test_sealed_secrets_controller_unseals_the_collections_packages(
        cluster, sealed_secrets_controller, team_namespaces, tmp_path, leak):
    kubeconfig, kubectl = cluster
    cert, controller_log = sealed_secrets_controller
    signing = ed25519.Ed25519PrivateKey.generate()
    signing_pem = signing.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
    verify_pem = signing.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    dist = tmp_path / "dist"
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n    mlops_platform:\n      hosts:\n        localhost:\n")
    build_vars = role_vars(kubeconfig, leak, secrets_package_dir=str(dist), secrets_package_date="20250704",
                           secrets_package_environment="production", secrets_package_signing_key=signing_pem,
                           secrets_sealing_certificate=cert)
    rc, out = run(tmp_path, (ROOT / "playbooks" / "secrets_package.yml").read_text(), build_vars, inventory=str(inventory))
    assert rc == 0, out[-4000:]
    assert_no_leak(out, leak)

    apply_vars = {
        "secrets_kubeconfig": kubeconfig, "teams": build_vars["teams"], "secrets_mode": "package",
        "secrets_package_environment": "production", "secrets_manifests_dir": str(tmp_path / "k8s" / "manifests"),
        "secrets_packages": [
            {"src": str(dist / f"{ns}-platform-secrets-20250704.tar.gz"), "namespace": ns, "verify_key": verify_pem}
            for ns in team_namespaces
        ],
    }
    start = time.monotonic()
    rc, out = run(tmp_path, PLAYBOOK, apply_vars)
    converged = time.monotonic()
    assert rc == 0, out[-4000:]
    assert_no_leak(out, leak)
    # What reached the API server is sealed: the values are nowhere in the SealedSecrets.
    sealed = json.loads(kubectl("get", "sealedsecrets", "-A", "-o", "json").stdout)["items"]
    assert_no_leak(json.dumps(sealed), leak)

    expected = expected_secrets(build_vars)
    assert sorted(expected) == sorted(
        (s["metadata"]["namespace"], s["metadata"]["name"]) for s in sealed), "one SealedSecret per secret"
    secrets = wait_secrets(kubectl, expected, timeout=60)
    figure("SealedSecret to Secret (after the converge)", time.monotonic() - converged)
    figure("converge + unseal", time.monotonic() - start)
    owners = {(s["metadata"]["namespace"], s["metadata"]["name"]): s["metadata"]["uid"] for s in sealed}
    for key, want in expected.items():
        secret = secrets[key]
        assert secret["type"] == want["type"], key
        assert decoded(secret) == want["data"], f"{key}: keys or values differ"
        assert secret["metadata"]["ownerReferences"] == [{
            "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret", "name": key[1], "uid": owners[key],
            "controller": True}], key
        assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mlops.platform", key
    # The seeds' keys, exactly.
    assert set(expected[(TRAINING, "ml-platform")]["data"]) == TRAINING_KEYS
    assert set(expected[(SERVING, "ml-platform")]["data"]) == S3_KEYS
    assert set(expected[(MLFLOW_NS, "mlflow-database-secret")]["data"]) == DB_KEYS
    assert expected[(TRAINING, "ghcr")]["type"] == "kubernetes.io/dockerconfigjson"
    assert decoded(secrets[(TRAINING, "ml-platform")])["MLFLOW_TRACKING_PASSWORD"] == leak["mlflow_pw"]
    # The controller reports each one unsealed in the SealedSecret's status.
    sealed = json.loads(kubectl("get", "sealedsecrets", "-A", "-o", "json").stdout)["items"]
    for item in sealed:
        conditions = {c["type"]: c["status"] for c in item.get("status", {}).get("conditions", [])}
        assert conditions.get("Synced") == "True", (item["metadata"]["name"], item.get("status"))

    # A second converge changes nothing, and the Secrets stay.
    rc, out = run(tmp_path, PLAYBOOK, apply_vars)
    assert rc == 0 and recap(out)["changed"] == 0, out[-4000:]
    assert "no key could decrypt" not in controller_log.read_text()


# External Secrets Operator -------------------------------------------------------------------

PROD = ROOT / "inventories" / "prod" / "group_vars" / "all"
REFRESH = 3  # seconds: the test's refresh interval (prod: 1h)
MOTO_CREDENTIALS = {"access-key-id": "testing", "secret-access-key": "testing"}


@pytest.fixture(scope="module")
def moto_sm():
    from servers import MotoServer

    with MotoServer() as server:
        yield server.url


@pytest.fixture(scope="module")
def external_secrets_operator(cluster, crds, moto_sm, tmp_path_factory):
    """The real operator as a process: its controllers only (no webhook, no cert controller, which
    are the `webhook` and `certcontroller` subcommands), AWS Secrets Manager at moto through the
    endpoint variable its AWS provider reads (pkg/provider/aws/auth/resolver.go)."""
    kubeconfig = cluster[0]
    controllers("build", "external-secrets")
    binary = controllers("path", "external-secrets")
    workdir = tmp_path_factory.mktemp("external-secrets")
    log = workdir / "operator.log"
    metrics = free_port()
    env = {**os.environ, "KUBECONFIG": kubeconfig, "AWS_SECRETSMANAGER_ENDPOINT": moto_sm, "AWS_STS_ENDPOINT": moto_sm}
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(key, None)  # the SecretStore's own credentials must be what it uses
    with log.open("wb") as handle:
        proc = subprocess.Popen([binary, f"--metrics-addr=127.0.0.1:{metrics}", "--concurrent=4"],
                                env=env, stdout=handle, stderr=subprocess.STDOUT)
    try:
        try:
            wait_http(f"http://127.0.0.1:{metrics}/metrics", timeout=120, proc=proc)
        except RuntimeError as exc:
            raise AssertionError(f"{exc}\n{log.read_text()[-3000:]}") from None
        yield log
    finally:
        stop(proc)


def prod_external_vars(kubeconfig: str) -> dict:
    """inventories/prod's secrets and teams, with the test's overrides: the store reaches moto with
    static credentials from a Secret, a short refresh interval, the MLflow database secret of seed 003
    and the ghcr secret of seed 000 for ml-team. No value: the values live in the store."""
    variables = {}
    for name in ("teams.yml", "secrets.yml"):
        variables.update(yaml.safe_load((PROD / name).read_text()))
    assert variables["secrets_mode"] == "external"
    provider = variables["secrets_external"]["provider"]
    assert list(provider) == ["aws"] and provider["aws"]["service"] == "SecretsManager"
    provider["aws"]["auth"] = {"secretRef": {
        "accessKeyIDSecretRef": {"name": "aws-credentials", "key": "access-key-id"},
        "secretAccessKeySecretRef": {"name": "aws-credentials", "key": "secret-access-key"}}}
    variables["secrets_external"]["refresh_interval"] = f"{REFRESH}s"
    for team in variables["teams"]:
        if team["name"] == "ml-team":
            team["secrets"] = [*team["secrets"], "ghcr"]
    variables["secrets_mlflow_database"] = {
        "enabled": True, "name": "mlflow-database-secret", "namespace": "mlflow", "username": "mlflow", "password": "",
        "host": "mlflow-db.example", "port": 5432, "database": "mlflow", "driver": "psycopg2",
        "scheme": "postgresql+psycopg2", "connection_url": ""}
    variables["secrets_kubeconfig"] = kubeconfig
    return variables


@pytest.mark.cluster
def test_external_secrets_operator_fills_the_roles_external_secrets_from_moto(
        cluster, external_secrets_operator, moto_sm, tmp_path, leak):
    import boto3

    kubeconfig, kubectl = cluster
    variables = prod_external_vars(kubeconfig)
    # What the store holds: the values the role would render in direct mode from these secrets.
    valued = json.loads(json.dumps(variables))
    valued["secrets_s3"].update(access_key_id=leak["s3_id"], secret_access_key=leak["s3_key"])
    valued["secrets_mlflow"].update(tracking_password=leak["mlflow_pw"], flask_server_secret_key=leak["flask"])
    valued["secrets_registry"].update(username="bot", password=leak["ghcr_pw"])
    valued["secrets_mlflow_database"]["password"] = leak["db_pw"]
    valued["secrets_grafana"]["admin_password"] = leak["mlflow_pw"] + "-grafana"
    expected = expected_secrets(valued)
    assert {k: set(v["data"]) for k, v in expected.items()} == {
        ("ml-team", "ml-platform"): AWS_TRAINING_KEYS, ("ml-team", "ghcr"): {".dockerconfigjson"},
        ("data-team", "ml-platform"): AWS_TRAINING_KEYS, ("mlflow", "mlflow-database-secret"): DB_KEYS,
        ("monitoring", "grafana-admin"): {"admin-user", "admin-password"},
    }

    sm = boto3.client("secretsmanager", endpoint_url=moto_sm, region_name="eu-west-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    prefix = variables["secrets_external"]["key_prefix"]
    for (namespace, name), want in expected.items():
        sm.create_secret(Name=f"{prefix}{namespace}-{name}", SecretString=json.dumps(want["data"]))
    for namespace in sorted({key[0] for key in expected}):
        kubectl("create", "namespace", namespace)
        kubectl("create", "secret", "generic", "aws-credentials", "-n", namespace,
                *(f"--from-literal={k}={v}" for k, v in MOTO_CREDENTIALS.items()))

    start = time.monotonic()
    rc, out = run(tmp_path, PLAYBOOK, variables)
    converged = time.monotonic()
    assert rc == 0, out[-4000:]
    assert_no_leak(out, leak)
    found = wait_secrets(kubectl, expected, timeout=90)
    figure("ExternalSecret to Secret (after the converge)", time.monotonic() - converged)
    figure("converge + sync", time.monotonic() - start)
    externals = json.loads(kubectl("get", "externalsecrets", "-A", "-o", "json").stdout)["items"]
    assert sorted((e["metadata"]["namespace"], e["metadata"]["name"]) for e in externals) == sorted(expected)
    assert_no_leak(json.dumps(externals), leak)  # the ExternalSecrets hold references only
    uids = {(e["metadata"]["namespace"], e["metadata"]["name"]): e["metadata"]["uid"] for e in externals}
    for external in externals:
        ready = {c["type"]: c["status"] for c in external.get("status", {}).get("conditions", [])}
        assert ready.get("Ready") == "True", (external["metadata"]["name"], external.get("status"))
    for key, want in expected.items():
        secret = found[key]
        assert decoded(secret) == want["data"], f"{key}: keys or values differ"
        assert secret["type"] == want["type"], key
        owners = [(o["kind"], o["name"], o["uid"], o.get("controller")) for o in secret["metadata"]["ownerReferences"]]
        assert owners == [("ExternalSecret", key[1], uids[key], True)], key
        assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mlops.platform", key
    stores = json.loads(kubectl("get", "secretstores", "-A", "-o", "json").stdout)["items"]
    assert sorted(s["metadata"]["namespace"] for s in stores) == sorted({key[0] for key in expected})
    for store in stores:
        ready = {c["type"]: c["status"] for c in store.get("status", {}).get("conditions", [])}
        assert ready.get("Ready") == "True", store.get("status")

    # A second converge changes nothing.
    rc, out = run(tmp_path, PLAYBOOK, variables)
    assert rc == 0 and recap(out)["changed"] == 0, out[-4000:]

    # Rotation: a new value in the store reaches the Secret after the refresh interval.
    key = ("ml-team", "ml-platform")
    rotated = dict(expected[key]["data"], AWS_SECRET_ACCESS_KEY=f"rotated{pysecrets.token_hex(10)}")
    sm.put_secret_value(SecretId=f"{prefix}ml-team-ml-platform", SecretString=json.dumps(rotated))
    rotated_at = time.monotonic()
    wait_secrets(kubectl, [key], timeout=REFRESH * 4 + 30, ready=lambda s: decoded(s) == rotated)
    latency = time.monotonic() - rotated_at
    figure(f"rotation in the store to Secret (refresh interval {REFRESH} s)", latency)
    assert latency <= REFRESH * 4 + 30
