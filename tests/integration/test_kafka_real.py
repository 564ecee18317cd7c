"""The kafka role against a real Apache Kafka 4 broker (KRaft, SASL/SCRAM, StandardAuthorizer) on 127.0.0.1.

The broker is Kafka's own ``kafka.Kafka`` from the Maven artifacts that ``roles/kafka/files/broker.sh build``
resolves and caches. The role runs with ``kafka_mode: external`` and ``provision: true``, so the
collection's ``kafka_topics`` module creates every team's topics, SCRAM users and ACLs in one call. The
test reads back what the broker holds, then shows the isolation with each team's own credentials: team A
produces to its prefix and is refused (TOPIC_AUTHORIZATION_FAILED) on team B's; a second converge and a
check-mode run change nothing; a grant added by hand is purged and check mode reports it first.
"""

from __future__ import annotations

import json
import secrets
import time

import pytest
from ansible_run import recap, run_module, run_role
from servers import KafkaBroker
from test_kafka_credentials import TEAM_A, TEAM_B, common_vars, converge, namespaces, secret_data  # noqa: F401  # pylint: disable=unused-import

confluent_kafka = pytest.importorskip("confluent_kafka", reason="confluent-kafka is pinned in requirements.txt")
from confluent_kafka import KafkaError, KafkaException, Producer  # noqa: E402
from confluent_kafka.admin import (  # noqa: E402
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ConfigResource,
    ResourcePatternType,
    ResourceType,
)

TEAMS = [
    {"name": "team-a", "serving": True,
     "kafka": {"partitions": 3, "retention_ms": 86400000,
               "topics": [{"name": "fraud"}, {"name": "scoring", "kind": "pipeline", "retention_ms": 3600000}]}},
    {"name": "team-b", "serving": True,
     "kafka": {"topics": [{"name": "churn", "partitions": 2, "config": {"cleanup.policy": "compact"}}]}},
]
EXPECTED = {
    "seldon.team-a.model.fraud.inputs": (3, "86400000", "delete"),
    "seldon.team-a.model.fraud.outputs": (3, "86400000", "delete"),
    "seldon.team-a.pipeline.scoring.inputs": (3, "3600000", "delete"),
    "seldon.team-a.pipeline.scoring.outputs": (3, "3600000", "delete"),
    "seldon.team-b.model.churn.inputs": (2, "604800000", "compact"),
    "seldon.team-b.model.churn.outputs": (2, "604800000", "compact"),
}


@pytest.fixture(scope="module")
def broker():
    with KafkaBroker(secrets.token_urlsafe(18)) as kafka:
        print(f"\nKafka broker answered {kafka.start_seconds:.1f} s after launch")
        yield kafka


def _role_vars(kafka: KafkaBroker, passwords: dict) -> dict:
    return {"teams": TEAMS, "kafka_mode": "external",
            "kafka_external": {"bootstrap_servers": kafka.bootstrap, "security_protocol": "SASL_PLAINTEXT",
                               "sasl_mechanism": "SCRAM-SHA-512", "provision": True,
                               "admin_username": KafkaBroker.ADMIN, "admin_password": kafka.password},
            "kafka_team_passwords": passwords}


def _produce(kafka: KafkaBroker, user: str, password: str, topic: str, timeout_ms: int = 10000):
    """Produce one message and flush: None when it was written, else the KafkaError."""
    errors = []
    producer = Producer({**kafka.client(user, password), "message.timeout.ms": timeout_ms, "acks": "all", "log_level": 0})
    producer.produce(topic, b"x", key=b"k", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(15)
    assert errors, f"no delivery report for {topic}"
    return errors[0]


def test_team_topics_users_and_acls_on_a_real_broker(broker, tmp_path):
    passwords = {"team-a": secrets.token_urlsafe(18), "team-b": secrets.token_urlsafe(18)}
    variables = _role_vars(broker, passwords)

    check = run_role("mlops.platform.kafka", tmp_path, variables, "--check")
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-2000:]
    assert recap(check.stdout)["changed"] == 1, check.stdout[-3000:]
    admin = AdminClient(broker.client(KafkaBroker.ADMIN, broker.password))
    assert not set(EXPECTED) & set(admin.list_topics(timeout=10).topics), "check mode created topics"

    start = time.monotonic()
    first = run_role("mlops.platform.kafka", tmp_path, variables)
    converge_seconds = time.monotonic() - start
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert recap(first.stdout)["changed"] == 1
    for secret in (broker.password, *passwords.values()):
        assert secret not in first.stdout + first.stderr

    # Every topic with its partitions and configs, read back from the broker.
    topics = admin.list_topics(timeout=10).topics
    for name, (partitions, retention, cleanup) in EXPECTED.items():
        assert name in topics, f"{name} missing: {sorted(topics)}"
        assert len(topics[name].partitions) == partitions, name
        config = admin.describe_configs([ConfigResource(ResourceType.TOPIC, name)])
        values = next(iter(config.values())).result(timeout=10)
        assert values["retention.ms"].value == retention, name
        assert values["cleanup.policy"].value == cleanup, name

    # Team A: its own prefix works, team B's is refused by the authorizer (and the reverse).
    assert _produce(broker, "team-a", passwords["team-a"], "seldon.team-a.model.fraud.inputs") is None
    refused = _produce(broker, "team-a", passwords["team-a"], "seldon.team-b.model.churn.inputs")
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused
    assert _produce(broker, "team-b", passwords["team-b"], "seldon.team-b.model.churn.inputs") is None
    refused = _produce(broker, "team-b", passwords["team-b"], "seldon.team-a.pipeline.scoring.inputs")
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused
    # A wrong password is refused at authentication.
    assert _produce(broker, "team-a", "wrong-password", "seldon.team-a.model.fraud.inputs", 2000) is not None

    # The second converge and check mode change nothing.
    start = time.monotonic()
    second = run_role("mlops.platform.kafka", tmp_path, variables)
    noop_seconds = time.monotonic() - start
    assert second.returncode == 0, second.stdout[-3000:]
    assert recap(second.stdout)["changed"] == 0, second.stdout[-3000:]
    again = run_role("mlops.platform.kafka", tmp_path, variables, "--check")
    assert recap(again.stdout)["changed"] == 0, again.stdout[-3000:]

    # A grant added by hand (team A on team B's prefix) is reported by check mode, then purged.
    extra = AclBinding(ResourceType.TOPIC, "seldon.team-b.", ResourcePatternType.PREFIXED, "User:team-a", "*",
                       AclOperation.WRITE, AclPermissionType.ALLOW)
    for future in admin.create_acls([extra]).values():
        future.result(timeout=10)
    drift = run_role("mlops.platform.kafka", tmp_path, variables, "--check", "-v")
    assert recap(drift.stdout)["changed"] == 1, drift.stdout[-3000:]
    assert "seldon.team-b." in drift.stdout
    fixed = run_role("mlops.platform.kafka", tmp_path, variables)
    assert recap(fixed.stdout)["changed"] == 1, fixed.stdout[-3000:]
    refused = _produce(broker, "team-a", passwords["team-a"], "seldon.team-b.model.churn.inputs")
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused
    print(json.dumps({"broker_start_s": round(broker.start_seconds, 1), "converge_s": round(converge_seconds, 1),
                      "noop_s": round(noop_seconds, 1)}))


def test_kafka_topics_refuses_fewer_partitions(broker, tmp_path):
    """Kafka cannot remove partitions: the module says so and changes nothing."""
    args = {"bootstrap_servers": broker.bootstrap, "security_protocol": "SASL_PLAINTEXT", "sasl_username": KafkaBroker.ADMIN,
            "sasl_password": broker.password, "topics": [{"name": "seldon.team-c.events", "partitions": 2}]}
    fewer = {**args, "topics": [{"name": "seldon.team-c.events", "partitions": 1}]}
    results, _proc = run_module("mlops.platform.kafka_topics", tmp_path, args, fewer)
    assert results[0].get("changed") is True, results[0]
    assert results[1].get("failed") is True and "cannot remove partitions" in results[1]["msg"], results[1]
    assert broker.password not in json.dumps(results)
    with pytest.raises(KafkaException):
        AdminClient({**broker.client("team-c", "nope"), "log_level": 0}).list_topics(timeout=2)


@pytest.mark.cluster
def test_the_team_secret_authenticates_on_a_real_broker(broker, kubeconfig, api_client, namespaces, tmp_path):  # noqa: F811
    """The password the secrets role placed in the team's namespace (kafka_team_passwords, the source the user was
    provisioned from) is what the broker accepts for the team's user: its own prefix works, another team's is
    refused, and another team's user does not take it. The teams and namespaces are test_kafka_credentials.py's."""
    passwords = {TEAM_A: secrets.token_urlsafe(18), TEAM_B: secrets.token_urlsafe(18)}
    variables = common_vars(kubeconfig, passwords, kafka_mode="external", kafka_external={
        "bootstrap_servers": broker.bootstrap, "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
        "provision": True, "admin_username": KafkaBroker.ADMIN, "admin_password": broker.password})
    first = converge(tmp_path / "1", variables, roles=("secrets", "kafka"))
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    for value in (broker.password, *passwords.values()):
        assert value not in first.stdout + first.stderr

    creds = secret_data(api_client, TEAM_A, "kafka-credentials")
    assert creds["username"] == TEAM_A
    assert _produce(broker, creds["username"], creds["password"], f"seldon.{TEAM_A}.model.fraud.inputs") is None
    refused = _produce(broker, creds["username"], creds["password"], f"seldon.{TEAM_B}.model.churn.inputs")
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused
    other = secret_data(api_client, TEAM_B, "kafka-credentials")
    assert other["password"] != creds["password"]
    assert _produce(broker, other["username"], creds["password"], f"seldon.{TEAM_B}.model.churn.inputs", 2000) is not None

    second = converge(tmp_path / "2", variables, roles=("secrets", "kafka"))
    assert recap(second.stdout)["changed"] == 0, second.stdout[-4000:]
