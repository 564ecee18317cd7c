"""The kafka role in Strimzi mode against the offline cluster, read back from the API server.

The CRDs are Strimzi's own, built by io.strimzi:api's Crds class (``roles/kafka/files/broker.sh crds``): their
group, versions, scope and status subresource are real, their schema accepts any spec, so the API server checks
kind, version and namespace of what the role renders, not its fields (no operator runs here: the Strimzi Helm chart
and its generated schemas cannot be fetched). Every object is also sent as an explicit server-side dry run; a
second converge changes nothing; check mode reports a new topic without writing it; a removed team's KafkaUser is
pruned while its topics stay. The role works in its own namespace, so the local platform's are untouched.
"""

from __future__ import annotations

import pytest
from ansible_run import recap, run_role
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster

NS = "it-kafka"
GROUP, VERSION = "kafka.strimzi.io", "v1beta2"
TEAMS = [
    {"name": "it-kafka-a", "serving": True, "kafka": {"partitions": 3, "topics": [{"name": "fraud"}]}},
    {"name": "it-kafka-b", "kafka": {"topics": [{"name": "events", "kind": "topic", "retention_ms": 3600000}]}},
]


@pytest.fixture(scope="module")
def crds_file(strimzi_crds_file) -> str:
    return strimzi_crds_file


@pytest.fixture(scope="module")
def cleanup(api_client):
    yield
    try:
        client.CoreV1Api(api_client).delete_namespace(NS)
    except ApiException as exc:
        if exc.status != 404:
            raise


def role_vars(kubeconfig: str, crds: str, teams: list) -> dict:
    return {"kafka_kubeconfig": kubeconfig, "kafka_namespace": NS, "kafka_mode": "strimzi", "teams": teams,
            "kafka_strimzi_crds_file": crds}


def _items(api_client, plural: str) -> dict:
    found = client.CustomObjectsApi(api_client).list_namespaced_custom_object(GROUP, VERSION, NS, plural)["items"]
    return {item["metadata"]["name"]: item for item in found}


def test_strimzi_resources_converge_and_are_idempotent(kubeconfig, api_client, crds_file, cleanup, tmp_path):
    first = run_role("mlops.platform.kafka", tmp_path, role_vars(kubeconfig, crds_file, TEAMS))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert recap(first.stdout)["changed"] == 1

    kafkas, pools = _items(api_client, "kafkas"), _items(api_client, "kafkanodepools")
    assert kafkas["mlops"]["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert pools["dual-role"]["spec"]["roles"] == ["controller", "broker"]
    topics = _items(api_client, "kafkatopics")
    assert sorted(topics) == ["seldon.it-kafka-a.model.fraud.inputs", "seldon.it-kafka-a.model.fraud.outputs",
                              "seldon.it-kafka-b.events"]
    assert topics["seldon.it-kafka-a.model.fraud.inputs"]["spec"]["partitions"] == 3
    assert topics["seldon.it-kafka-b.events"]["spec"]["config"]["retention.ms"] == "3600000"
    users = _items(api_client, "kafkausers")
    acls = users["it-kafka-a"]["spec"]["authorization"]["acls"]
    assert {(a["resource"]["type"], a["resource"]["name"], a["resource"]["patternType"]) for a in acls} == {
        ("topic", "seldon.it-kafka-a.", "prefix"), ("group", "seldon.it-kafka-a.", "prefix")}

    # Every Strimzi object the role holds, again as an explicit server-side dry run.
    custom = client.CustomObjectsApi(api_client)
    for obj in [*kafkas.values(), *pools.values(), *topics.values(), *users.values()]:
        plural = obj["kind"].lower() + "s"
        body = {k: obj[k] for k in ("apiVersion", "kind", "spec")}
        body["metadata"] = {"name": obj["metadata"]["name"], "namespace": NS}
        custom.patch_namespaced_custom_object(GROUP, VERSION, NS, plural, obj["metadata"]["name"], body,
                                              dry_run="All", field_manager="mlops.platform", force=True,
                                              _content_type="application/apply-patch+yaml")

    second = run_role("mlops.platform.kafka", tmp_path, role_vars(kubeconfig, crds_file, TEAMS))
    assert recap(second.stdout)["changed"] == 0, second.stdout[-3000:]

    more = [TEAMS[0], {**TEAMS[1], "kafka": {"topics": [*TEAMS[1]["kafka"]["topics"], {"name": "audit", "kind": "topic"}]}}]
    check = run_role("mlops.platform.kafka", tmp_path, role_vars(kubeconfig, crds_file, more), "--check")
    assert recap(check.stdout)["changed"] == 1, check.stdout[-3000:]
    assert "seldon.it-kafka-b.audit" not in _items(api_client, "kafkatopics")

    # Team B leaves: its KafkaUser (its access) is pruned, its topics (data) stay.
    gone = run_role("mlops.platform.kafka", tmp_path, role_vars(kubeconfig, crds_file, [TEAMS[0]]))
    assert recap(gone.stdout)["changed"] == 1, gone.stdout[-3000:]
    assert sorted(_items(api_client, "kafkausers")) == ["it-kafka-a"]
    assert "seldon.it-kafka-b.events" in _items(api_client, "kafkatopics")


def test_a_wrong_kind_of_resource_is_refused_by_the_api_server(kubeconfig, api_client, crds_file, cleanup):
    """The CRDs are namespaced v1beta2 kinds: a cluster-scoped or unknown-version request is refused."""
    custom = client.CustomObjectsApi(api_client)
    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object(GROUP, "v1alpha9", NS, "kafkatopics",
                                               {"apiVersion": f"{GROUP}/v1alpha9", "kind": "KafkaTopic",
                                                "metadata": {"name": "x"}, "spec": {}}, dry_run="All")
    assert refused.value.status == 404
