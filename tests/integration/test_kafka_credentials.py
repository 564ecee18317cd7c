"""A team's Kafka password, one value for both sides: the secrets, kafka and seldon roles against real systems.

``kafka_team_passwords`` (vault) is the only source. The secrets role places it as Secret ``kafka-credentials`` in
the team's namespace (what Seldon's Kafka clients read, from their own namespace) and, with Strimzi, as
``<user>-scram-password`` in the Kafka namespace, which the team's KafkaUser references
(``spec.authentication.password.valueFrom.secretKeyRef``); the seldon role points the runtime's Kafka components at
the team's user and Secret (names only). Read back from the API server of the offline cluster: both Secrets hold the
same password, the KafkaUser references it, the SeldonRuntime carries the references, a second converge changes
nothing. Against a real Kafka 4 broker, test_kafka_real.py's last test (its broker, this module's helpers): the
password read back from the team's Secret authenticates as the team's user, under its own prefix only.
"""

from __future__ import annotations

import base64
import json
import pathlib
import secrets

import pytest
from ansible_run import recap, run_playbook
from k8s_wait import namespace_gone
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster

KAFKA_NS = "it-kcred-kafka"
TEAM_A, TEAM_B = "it-kcred-a", "it-kcred-b"
TEAMS = [{"name": TEAM_A, "serving": True, "kafka": {"topics": [{"name": "fraud"}]}},
         {"name": TEAM_B, "serving": True, "kafka": {"topics": [{"name": "churn"}]}}]
ROLES = ("secrets", "kafka", "seldon")
KAFKA_COMPONENTS = {"seldon-modelgateway": "modelgateway", "seldon-pipelinegateway": "pipelinegateway",
                    "seldon-dataflow-engine": "dataflow-engine"}


@pytest.fixture(scope="module")
def namespaces(api_client):
    """The team namespaces (the team_isolation role's in a platform converge), deleted afterwards with the Kafka one."""
    core = client.CoreV1Api(api_client)
    assert all(namespace_gone(api_client, name) for name in (TEAM_A, TEAM_B, KAFKA_NS)), "an earlier run's are terminating"
    for name in (TEAM_A, TEAM_B):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield
    for name in (TEAM_A, TEAM_B, KAFKA_NS):
        try:
            core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
    assert all(namespace_gone(api_client, name) for name in (TEAM_A, TEAM_B, KAFKA_NS))


def converge(tmp_path: pathlib.Path, variables: dict, *args: str, roles: tuple = ROLES):
    """The roles in site.yml's order, in one play."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    (tmp_path / "vars.json").chmod(0o600)
    (tmp_path / "play.yml").write_text("- hosts: localhost\n  gather_facts: false\n  roles:\n"
                                       + "".join(f"    - role: mlops.platform.{role}\n" for role in roles))
    return run_playbook(tmp_path / "play.yml", "-i", "localhost,", "-c", "local",
                        "-e", "ansible_python_interpreter={{ ansible_playbook_python }}", "-e", f"@{tmp_path / 'vars.json'}",
                        *args)


def common_vars(kubeconfig: str, passwords: dict, **extra) -> dict:
    return {"teams": TEAMS, "mlops_cluster": {"kubeconfig": kubeconfig, "context": "", "available": True},
            "secrets_mode": "direct", "kafka_namespace": KAFKA_NS, "kafka_team_passwords": passwords,
            "seldon_install_controller": False, "seldon_offline_crds": True, "seldon_wait": False, **extra}


def secret_data(api_client, namespace: str, name: str) -> dict:
    found = client.CoreV1Api(api_client).read_namespaced_secret(name, namespace)
    return {k: base64.b64decode(v).decode() for k, v in (found.data or {}).items()}


def test_the_kafka_user_and_the_runtime_read_one_password(kubeconfig, api_client, strimzi_crds_file, namespaces, tmp_path):
    password = secrets.token_urlsafe(18)
    core = client.CoreV1Api(api_client)
    # The cluster CA certificate Strimzi's operator would have written (none runs here): the kafka role copies it.
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=KAFKA_NS)))
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n").decode()
    core.create_namespaced_secret(KAFKA_NS, client.V1Secret(
        metadata=client.V1ObjectMeta(name="mlops-cluster-ca-cert"), data={"ca.crt": ca, "ca.password": "eA=="}))
    variables = common_vars(kubeconfig, {TEAM_A: password}, kafka_mode="strimzi", kafka_strimzi_crds_file=strimzi_crds_file)

    first = converge(tmp_path / "1", variables)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert password not in first.stdout + first.stderr

    # One password on both sides: the team's Secret and the one its KafkaUser references.
    assert secret_data(api_client, TEAM_A, "kafka-credentials") == {"username": TEAM_A, "password": password}
    user = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        "kafka.strimzi.io", "v1beta2", KAFKA_NS, "kafkausers", TEAM_A)
    ref = user["spec"]["authentication"]["password"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": f"{TEAM_A}-scram-password", "key": "password"}
    assert secret_data(api_client, KAFKA_NS, ref["name"])[ref["key"]] == password
    # Team B has no password: Strimzi generates its own, and no credentials Secret is placed.
    other = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        "kafka.strimzi.io", "v1beta2", KAFKA_NS, "kafkausers", TEAM_B)
    assert other["spec"]["authentication"] == {"type": "scram-sha-512"}
    with pytest.raises(ApiException):
        core.read_namespaced_secret("kafka-credentials", TEAM_B)

    # The cluster CA certificate, and only it, in the runtime namespace.
    assert core.read_namespaced_secret("mlops-cluster-ca-cert", TEAM_A).data == {"ca.crt": ca}

    # The runtime of team A: TLS listener, and its Kafka components pointed at the team's user and Secret.
    runtime = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        "mlops.seldon.io", "v1alpha1", TEAM_A, "seldonruntimes", "seldon")
    kafka_config = runtime["spec"]["config"]["kafkaConfig"]
    assert kafka_config["bootstrap.servers"] == f"mlops-kafka-bootstrap.{KAFKA_NS}.svc:9093"
    assert kafka_config["consumerGroupIdPrefix"] == f"seldon.{TEAM_A}."
    overrides = {o["name"]: o for o in runtime["spec"]["overrides"]}
    for component, container in KAFKA_COMPONENTS.items():
        [main] = [c for c in overrides[component]["podSpec"]["containers"] if c["name"] == container]
        env = {e["name"]: e["value"] for e in main["env"]}
        assert env["KAFKA_CLIENT_SASL_USERNAME"] == TEAM_A
        assert env["KAFKA_CLIENT_SASL_SECRET_NAME"] == "kafka-credentials"
        assert env["KAFKA_CLIENT_SASL_PASSWORD_LOCATION"].rsplit("/", 1)[-1] == "password"
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and env["KAFKA_BROKER_TLS_SECRET_NAME"] == "mlops-cluster-ca-cert"
    assert password not in str(runtime)
    # Team B's runtime as before: the plaintext SCRAM listener, no credentials.
    runtime_b = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        "mlops.seldon.io", "v1alpha1", TEAM_B, "seldonruntimes", "seldon")
    assert runtime_b["spec"]["config"]["kafkaConfig"]["bootstrap.servers"].endswith(":9092")
    assert "KAFKA_CLIENT_SASL_SECRET_NAME" not in str(runtime_b)

    second = converge(tmp_path / "2", variables)
    assert recap(second.stdout)["changed"] == 0, second.stdout[-4000:]
