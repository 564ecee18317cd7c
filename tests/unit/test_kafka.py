"""The kafka role's plan (Seldon topic names, per-team ACLs), Strimzi objects, checks and the seldon wiring."""

from __future__ import annotations

import pathlib

import yaml
from ansible_collections.mlops.platform.plugins.module_utils import kafka
from ansible_collections.mlops.platform.plugins.module_utils.seldon_task import runtime_params

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEAMS = [
    {"name": "team-a", "serving": True, "kafka": {"partitions": 3, "topics": [{"name": "fraud"}, {"name": "flow", "kind": "pipeline"}]}},
    {"name": "team-b", "namespaces": ["b-serve", "b-train"], "kafka": {"topics": [{"name": "events", "kind": "topic", "namespace": "b-train"}]}},
]
SETTINGS = {**kafka.role_settings({}), "mode": "strimzi", "namespace": "kafka", "cluster_name": "mlops", "version": "4.1.1",
            "metadata_version": "4.1-IV1", "node_pools": [{"name": "dual-role", "replicas": 1, "roles": ["controller", "broker"]}],
            "bootstrap_servers": "mlops-kafka-bootstrap.kafka.svc:9092", "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512"}


def test_topics_follow_seldon_naming_and_stay_under_the_team_prefix():
    plan = kafka.kafka_plan(TEAMS, SETTINGS)
    names = [t["name"] for t in plan["topics"]]
    assert names == ["seldon.team-a.model.fraud.inputs", "seldon.team-a.model.fraud.outputs",
                     "seldon.team-a.pipeline.flow.inputs", "seldon.team-a.pipeline.flow.outputs", "seldon.b-train.events"]
    assert {t["partitions"] for t in plan["topics"][:4]} == {3}
    users = {u["team"]: u for u in plan["users"]}
    assert [(a["resource_type"], a["resource_name"]) for a in users["team-b"]["acls"]] == [
        ("topic", "seldon.b-serve."), ("group", "seldon.b-serve."), ("topic", "seldon.b-train."), ("group", "seldon.b-train.")]
    for topic in plan["topics"]:
        owner = users[topic["team"]]
        assert any(topic["name"].startswith(a["resource_name"]) for a in owner["acls"] if a["resource_type"] == "topic")
        assert not any(topic["name"].startswith(a["resource_name"]) for u in plan["users"] if u is not owner
                       for a in u["acls"])


def test_strimzi_objects_kraft_node_pools_topics_users():
    objects = kafka.strimzi_objects(kafka.kafka_plan(TEAMS, SETTINGS), SETTINGS)
    kinds = [o["kind"] for o in objects]
    assert kinds == ["Namespace", "Kafka", "KafkaNodePool"] + ["KafkaTopic"] * 5 + ["KafkaUser"] * 2
    cluster = objects[1]
    assert cluster["metadata"]["annotations"] == {"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"}
    assert cluster["spec"]["kafka"]["authorization"]["type"] == "simple"
    user = objects[-2]
    assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
    assert all(acl["resource"]["patternType"] == "prefix" for acl in user["spec"]["authorization"]["acls"])
    assert all(o["metadata"]["labels"]["strimzi.io/cluster"] == "mlops" for o in objects[2:])


def test_checks_name_the_field_and_the_fix():
    topics = [{"name": "Bad_Name"}, {"name": "x", "kind": "stream"}, {"name": "y", "namespace": "other"}]
    bad = [{"name": "team-a", "kafka": {"partitions": 0, "topics": topics}},
           {"name": "team-b", "kafka": {"topics": [{"name": "y", "namespace": "team-b"}]}}]
    pools = [{"name": "p", "replicas": 1, "roles": ["broker"]}]
    errors = kafka.variable_errors({"kafka_mode": "strimzi", "kafka_teams": bad, "kafka_node_pools": pools})
    text = "\n".join(errors)
    assert "team 'team-a': kafka.partitions: 0 is not a positive integer" in text
    assert "topics[0] (Bad_Name).name" in text
    assert "kind: 'stream'" in text
    assert "namespace: 'other' is not a namespace of the team" in text
    assert "no pool has the controller role" in text
    assert kafka.variable_errors({"kafka_mode": "external", "kafka_external": {"bootstrap_servers": ""}})[0].startswith(
        "kafka_external.bootstrap_servers: empty")
    assert kafka.variable_errors({"kafka_topic_prefix": "seldon."})[0].startswith("kafka_topic_prefix")
    missing = kafka.variable_errors({"kafka_strimzi_crds_file": "/nonexistent/strimzi-crds.json"})
    assert missing[0].startswith("kafka_strimzi_crds_file: /nonexistent/strimzi-crds.json does not exist. Fix: run")


def test_the_local_inventory_passes():
    values = {}
    for path in sorted((ROOT / "inventories" / "local" / "group_vars" / "all").glob("*.yml")):
        values.update(yaml.safe_load(path.read_text()))
    role = {k: v for k, v in values.items() if k.startswith("kafka_") and k != "kafka_strimzi_crds_file"}
    assert kafka.variable_errors({**role, "kafka_teams": values["teams"]}) == []
    plan = kafka.kafka_plan(values["teams"], {**SETTINGS, **kafka.role_settings(role)})
    assert "seldon.financial-ml.pipeline.fraud-scoring.outputs" in [t["name"] for t in plan["topics"]]


def test_seldon_reads_the_published_fact_and_the_override_wins():
    plan = kafka.kafka_plan(TEAMS, SETTINGS)
    fact = kafka.published(plan, SETTINGS)
    assert "password" not in str(fact)
    config = kafka.seldon_kafka_config(fact)
    assert config["bootstrap_servers"] == "mlops-kafka-bootstrap.kafka.svc:9092"
    assert config["consumer"] == {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512"}
    assert kafka.seldon_kafka_config(fact, "old:9092") == {"bootstrap_servers": "old:9092", "topic_prefix": "seldon"}
    assert kafka.seldon_kafka_config({"enabled": False}) == {}
    runtimes = kafka.seldon_runtime_kafka([{"namespace": "team-a", "team": "team-a", "overrides": None}], fact)
    assert runtimes[0]["kafka"] == {"consumer_group_id_prefix": "seldon.team-a."}
    params = {"runtimes": [{**runtimes[0]}], "team": None, "overrides": [], "config": {"kafka": {**config, "consumer_group_id_prefix": None}}}
    each = runtime_params(params)
    assert each[0]["config"]["kafka"]["consumer_group_id_prefix"] == "seldon.team-a."
    assert each[0]["config"]["kafka"]["bootstrap_servers"] == config["bootstrap_servers"]


def test_strimzi_install_checks_the_pinned_archive_and_the_crds_owner(tmp_path):
    archive = tmp_path / "strimzi-kafka-operator-0.48.0.tgz"
    archive.write_bytes(b"chart")
    base = {"kafka_mode": "strimzi", "kafka_strimzi_install": True, "kafka_strimzi_chart_version": "0.48.0"}
    assert kafka.variable_errors({**base, "kafka_strimzi_chart_archive": str(archive)}) == []
    assert kafka.variable_errors({**base, "kafka_strimzi_install": False, "kafka_strimzi_chart_version": "latest"}) == []
    [wrong] = kafka.variable_errors({**base, "kafka_strimzi_chart_version": "0.49.0", "kafka_strimzi_chart_archive": str(archive)})
    assert wrong.startswith(f"kafka_strimzi_chart_archive '{archive}' is missing or is not the 0.49.0 chart")
    [gone] = kafka.variable_errors({**base, "kafka_strimzi_chart_archive": "/nonexistent/strimzi-kafka-operator-0.48.0.tgz"})
    assert "is missing or is not the 0.48.0 chart" in gone and "helm pull" in gone
    other = tmp_path / "seldon-core-v2-setup-0.48.0.tgz"
    other.write_bytes(b"chart")
    [named] = kafka.variable_errors({**base, "kafka_strimzi_chart_archive": str(other)})
    assert "is not the strimzi-kafka-operator chart" in named
    [latest] = kafka.variable_errors({**base, "kafka_strimzi_chart_version": "latest"})
    assert latest.startswith("kafka_strimzi_chart_version: 'latest' is not a chart version")
    both = kafka.variable_errors({**base, "kafka_strimzi_crds_file": str(archive), "kafka_strimzi_watch_namespaces": ["Bad"]})
    assert [e.split(":")[0] for e in both] == ["kafka_strimzi_crds_file", "kafka_strimzi_watch_namespaces[0]"]


def test_the_strimzi_release_guard_refuses_an_older_chart():
    from ansible_collections.mlops.platform.plugins.module_utils.versions import guard_errors, helm_release_guard

    status = {"chart": "strimzi-kafka-operator-0.48.0", "name": "strimzi-kafka-operator", "namespace": "kafka"}
    guard = helm_release_guard(status, "kafka_strimzi_chart_version", "0.47.0", "why", "helm rollback", False,
                               "kafka_strimzi_allow_downgrade")
    [error] = guard_errors([guard])
    assert error.startswith("kafka_strimzi_chart_version 0.47.0 < live 0.48.0 (Helm release kafka/strimzi-kafka-operator)")
    assert "kafka_strimzi_allow_downgrade: true" in error
    assert guard_errors([helm_release_guard(status, "v", "0.49.0", "why", "fix")]) == []
    assert guard_errors([helm_release_guard({}, "v", "0.1.0", "why", "fix")]) == []


def test_team_credentials_one_password_both_sides_and_seldon_reads_the_secret():
    import base64

    settings = {**SETTINGS, "credential_teams": ["team-a"]}
    plan = kafka.kafka_plan(TEAMS, settings)
    users = {o["metadata"]["name"]: o for o in kafka.strimzi_objects(plan, settings) if o["kind"] == "KafkaUser"}
    assert users["team-a"]["spec"]["authentication"] == {
        "type": "scram-sha-512",
        "password": {"valueFrom": {"secretKeyRef": {"name": "team-a-scram-password", "key": "password"}}}}
    assert users["team-b"]["spec"]["authentication"] == {"type": "scram-sha-512"}  # Strimzi generates it

    objects = kafka.credential_objects(TEAMS, {"passwords": {"team-a": "s3cret-a"}, "user_prefix": "",
                                               "kafka_namespace": "kafka"})
    assert [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects] == [
        ("Namespace", None, "kafka"), ("Secret", "team-a", "kafka-credentials"), ("Secret", "kafka", "team-a-scram-password")]
    assert objects[0] == kafka.strimzi_objects(plan, settings)[0]  # the same Namespace as the kafka role's
    decoded = {o["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in o["data"].items()} for o in objects[1:]}
    assert decoded == {"kafka-credentials": {"username": "team-a", "password": "s3cret-a"},
                       "team-a-scram-password": {"password": "s3cret-a"}}
    external = kafka.credential_objects(TEAMS, {"passwords": {"team-b": "pw-b"}, "user_prefix": "u-", "kafka_namespace": ""})
    assert [(o["metadata"]["namespace"], base64.b64decode(o["data"]["username"]).decode()) for o in external] == [
        ("b-serve", "u-team-b"), ("b-train", "u-team-b")]
    assert kafka.credential_objects(TEAMS, {"passwords": {}}) == []

    errors = kafka.credential_errors(TEAMS, {"team-a": "", "nobody": "x"})
    assert errors == ["kafka_team_passwords: 'nobody' is not a team. Fix: use a team's name (team-a, team-b)",
                      "kafka_team_passwords.team-a: empty. Fix: set it from a vault, or drop the team (Strimzi's User "
                      "Operator then generates its password, and Seldon gets no credentials)"]

    fact = kafka.published(plan, settings)
    assert fact["teams"]["team-a"]["credentials"] == {"secret": "kafka-credentials", "username_key": "username",
                                                      "password_key": "password"}
    assert fact["teams"]["team-b"]["credentials"] == {}
    assert fact["tls_listener"] == {"bootstrap_servers": "mlops-kafka-bootstrap.kafka.svc:9093", "security_protocol": "SASL_SSL",
                                    "ca_secret": "mlops-cluster-ca-cert", "ca_key": "ca.crt"}
    assert "s3cret" not in str(fact)

    theirs = [{"name": "seldon-modelgateway", "replicas": 2,
               "pod_spec": {"containers": [{"name": "modelgateway", "env": [{"name": "X", "value": "1"}]}]}}]
    runtimes = kafka.seldon_runtime_kafka([{"namespace": "team-a", "team": "team-a", "overrides": theirs},
                                           {"namespace": "b-serve", "team": "team-b", "overrides": []}], fact)
    a, b = runtimes
    assert b == {"namespace": "b-serve", "team": "team-b", "overrides": [], "kafka": {"consumer_group_id_prefix": "seldon.b-serve."}}
    assert a["kafka"]["bootstrap_servers"] == "mlops-kafka-bootstrap.kafka.svc:9093"
    assert a["kafka"]["consumer"] == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512"}
    by_name = {o["name"]: o for o in a["overrides"]}
    assert sorted(by_name) == ["seldon-dataflow-engine", "seldon-modelgateway", "seldon-pipelinegateway"]
    assert by_name["seldon-modelgateway"]["replicas"] == 2
    [gateway] = by_name["seldon-modelgateway"]["pod_spec"]["containers"]
    env = {e["name"]: e["value"] for e in gateway["env"]}
    assert env == {"X": "1", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                   "KAFKA_CLIENT_SASL_USERNAME": "team-a", "KAFKA_CLIENT_SASL_SECRET_NAME": "kafka-credentials",
                   "KAFKA_CLIENT_SASL_PASSWORD_LOCATION": "/tmp/sasl/kafka/client/password",
                   "KAFKA_BROKER_TLS_SECRET_NAME": "mlops-cluster-ca-cert",
                   "KAFKA_BROKER_TLS_CA_LOCATION": "/tmp/certs/kafka/broker/ca.crt"}
    assert by_name["seldon-dataflow-engine"]["pod_spec"]["containers"][0]["name"] == "dataflow-engine"
    # The module takes these runtimes as they are (the overrides' keys are its own).
    params = {"runtimes": runtimes, "team": None, "overrides": [], "config": {"kafka": kafka.seldon_kafka_config(fact)}}
    each = runtime_params(params)
    assert each[0]["config"]["kafka"]["bootstrap_servers"].endswith(":9093")
    assert each[1]["config"]["kafka"]["bootstrap_servers"].endswith(":9092")

    # The cluster CA certificate, once the operator made it, is copied into the credentialed team's namespaces.
    with_ca = kafka.strimzi_objects(plan, {**settings, "cluster_ca_secrets": [{"data": {"ca.crt": "Q0E=", "ca.password": "x"}}]})
    copies = [o for o in with_ca if o["kind"] == "Secret"]
    assert [(o["metadata"]["namespace"], o["metadata"]["name"], o["data"]) for o in copies] == [
        ("team-a", "mlops-cluster-ca-cert", {"ca.crt": "Q0E="})]
