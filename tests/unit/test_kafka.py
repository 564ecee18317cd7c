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
    assert wrong.startswith(f"kafka_strimzi_chart_archive: {archive} is not the 0.49.0 chart")
    [gone] = kafka.variable_errors({**base, "kafka_strimzi_chart_archive": "/nonexistent/strimzi-kafka-operator-0.48.0.tgz"})
    assert "is not a file on the control node" in gone and "helm pull" in gone
    [latest] = kafka.variable_errors({**base, "kafka_strimzi_chart_version": "latest"})
    assert latest.startswith("kafka_strimzi_chart_version: 'latest' is not a chart version")
    both = kafka.variable_errors({**base, "kafka_strimzi_crds_file": str(archive), "kafka_strimzi_watch_namespaces": ["Bad"]})
    assert [e.split(":")[0] for e in both] == ["kafka_strimzi_crds_file", "kafka_strimzi_watch_namespaces[0]"]


def test_the_strimzi_release_guard_refuses_an_older_chart():
    from ansible_collections.mlops.platform.plugins.module_utils.versions import guard_errors, helm_release_guard

    status = {"chart": "strimzi-kafka-operator-0.48.0", "name": "strimzi-kafka-operator", "namespace": "kafka"}
    guard = helm_release_guard(status, "kafka_strimzi_chart_version", "0.47.0", "kafka_strimzi_allow_downgrade", False, "why")
    [error] = guard_errors([guard])
    assert error.startswith("kafka_strimzi_chart_version 0.47.0 < live 0.48.0 (Helm release kafka/strimzi-kafka-operator)")
    assert guard_errors([helm_release_guard(status, "v", "0.49.0", "f", False, "why")]) == []
    assert guard_errors([helm_release_guard({}, "v", "0.1.0", "f", False, "why")]) == []
