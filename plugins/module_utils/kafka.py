# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Kafka for the platform's teams: one plan for Strimzi (in-cluster) and an external cluster (MSK).

Seldon Core v2 names its topics ``<topicPrefix>.<namespace>.<model|pipeline>.<name>.<inputs|outputs>``
(topic prefix ``seldon`` by default) and prefixes its consumer groups with ``consumerGroupIdPrefix``.
A namespace is a DNS label (no dot), so ``<prefix>.<namespace>.`` is a prefix no other namespace
shares: every topic of a team lives under it, and the team's principal gets ACLs on exactly those
prefixes (topics and consumer groups) - seed 001's namespace isolation carried into Kafka.

``kafka_plan(teams, settings)`` turns the team model (each team's optional ``kafka`` key) into the
topics (full names, partitions, replicas, configs) and one user per team with its ACLs.
``strimzi_objects`` renders the plan as Strimzi custom resources (``Kafka`` in KRaft mode with
``KafkaNodePool``s, ``KafkaTopic``, ``KafkaUser``); ``module_topics``/``module_acls`` as the
arguments of the ``kafka_topics`` module (external clusters and the real-broker test);
``published`` as the ``mlops_kafka`` fact other roles (seldon) read. ``variable_errors`` is the
role's check beyond its argument spec, run by ``validate_roles``.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ansible_collections.mlops.platform.plugins.module_utils.teams import (
    LABEL_COMPONENT,
    LABEL_MANAGED_BY,
    LABEL_PART_OF,
    LABEL_TEAM,
    MANAGED_BY,
    PART_OF,
    namespace_errors,
    team_namespaces,
    validate_teams,
)
from ansible_collections.mlops.platform.plugins.module_utils.versions import chart_archive_errors, parse

STRIMZI_API = "kafka.strimzi.io/v1beta2"
LABEL_CLUSTER = "strimzi.io/cluster"
COMPONENT = "kafka"
TOPIC_KINDS = ("model", "pipeline", "topic")
# Seldon's two topics per model and per pipeline.
SELDON_SUFFIXES = ("inputs", "outputs")
TEAM_KAFKA_KEYS = {"topics", "partitions", "retention_ms", "config"}
TOPIC_KEYS = {"name", "kind", "namespace", "partitions", "retention_ms", "config"}
NODE_POOL_ROLES = ("controller", "broker")
NODE_POOL_KEYS = {"name", "replicas", "roles", "storage_size", "storage_class", "resources"}
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# What a team may do under its own prefixes: produce, consume, and let Seldon create (and with
# cleanTopicsOnDelete delete) its model and pipeline topics.
TOPIC_OPERATIONS = ("Read", "Write", "Create", "Delete", "Describe", "DescribeConfigs")
GROUP_OPERATIONS = ("Read", "Describe")

# Seldon: "a-z, A-Z, 0-9, . (dot), _ (underscore), and - (dash)"; we keep names lower-case DNS-like so a
# topic's name is also its KafkaTopic's metadata.name.
_TOPIC_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_TOPIC_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[a-z][a-z0-9.]*[a-z0-9]$")
_BOOTSTRAP = re.compile(r"^[A-Za-z0-9.-]+:[0-9]{1,5}$")
MAX_TOPIC = 249

# A team's SCRAM credentials (one password, from kafka_team_passwords, placed by the secrets role):
# - CREDENTIALS_SECRET in each of the team's namespaces, keys USERNAME_KEY and PASSWORD_KEY: what Seldon's
#   components (KAFKA_CLIENT_SASL_SECRET_NAME, read from their own namespace) and the team's other clients read;
# - scram_secret_name(user) in the Kafka namespace, key PASSWORD_KEY: what the team's KafkaUser references
#   (spec.authentication.password.valueFrom.secretKeyRef; Strimzi reads it from the KafkaUser's namespace).
# Both come from the same value, so the broker and the clients agree. Names only are published.
CREDENTIALS_SECRET = "kafka-credentials"
USERNAME_KEY = "username"
PASSWORD_KEY = "password"
SCRAM_SECRET_SUFFIX = "-scram-password"
# Seldon reads the Secret key named like the last part of KAFKA_CLIENT_SASL_PASSWORD_LOCATION.
SELDON_PASSWORD_LOCATION = f"/tmp/sasl/kafka/client/{PASSWORD_KEY}"
# Strimzi's cluster CA certificate Secret (key ca.crt); the kafka role copies the certificate into the runtime
# namespaces of teams with credentials (Seldon verifies the TLS listener with it: it speaks SASL only over TLS).
CA_KEY = "ca.crt"
SELDON_CA_LOCATION = f"/tmp/certs/kafka/broker/{CA_KEY}"


def _labels(team: str | None = None) -> dict:
    labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_PART_OF: PART_OF, LABEL_COMPONENT: COMPONENT}
    if team:
        labels[LABEL_TEAM] = team
    return labels


def team_prefix(settings: dict, namespace: str) -> str:
    """The topic (and consumer group) prefix a namespace owns: ``seldon.<namespace>.``."""
    return f"{settings.get('topic_prefix', 'seldon')}.{namespace}."


def group_prefix(settings: dict, namespace: str) -> str:
    """The consumer group prefix of a namespace; the seldon role sets it as the runtime's consumerGroupIdPrefix."""
    return f"{settings.get('consumer_group_prefix', 'seldon')}.{namespace}."


def user_name(settings: dict, team: str) -> str:
    return f"{settings.get('user_prefix', '')}{team}"


def scram_secret_name(user: str) -> str:
    """The Secret (Kafka namespace) the team's KafkaUser takes its password from."""
    return f"{user}{SCRAM_SECRET_SUFFIX}"


def cluster_ca_secret(cluster: str) -> str:
    """Strimzi's cluster CA certificate Secret of a Kafka cluster."""
    return f"{cluster}-cluster-ca-cert"


def namespace_object(namespace: str) -> dict:
    """The Kafka namespace, rendered the same by the kafka role and the secrets role (one field manager, one shape)."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": _labels()}}


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _config_errors(where: str, config: Any) -> list[str]:
    if not isinstance(config, dict):
        return [f"{where}: must be a mapping of topic configs, e.g. {{cleanup.policy: delete}}"]
    return [f"{where}.{key}: is not a Kafka config name. Fix: e.g. cleanup.policy, max.message.bytes"
            for key in config if not (isinstance(key, str) and _CONFIG_KEY.match(key))]


def team_kafka_errors(teams: Any, settings: dict | None = None) -> list[str]:
    """Problems of every team's ``kafka`` key (topics, partitions, retention), naming team, field and fix."""
    settings = settings or {}
    errors: list[str] = []
    if validate_teams(teams):
        return errors  # the team model's own messages are the team_isolation check's
    seen: dict[str, str] = {}
    for team in teams or []:
        kafka = team.get("kafka")
        if kafka is None:
            continue
        where = f"team '{team['name']}': kafka"
        if not isinstance(kafka, dict):
            errors.append(f"{where}: must be a mapping with topics, partitions, retention_ms, config")
            continue
        extra = sorted(str(k) for k in kafka if k not in TEAM_KAFKA_KEYS)
        if extra:
            errors.append(f"{where}: unknown key(s) {', '.join(extra)}. Fix: use {', '.join(sorted(TEAM_KAFKA_KEYS))}")
        for key in ("partitions", "retention_ms"):
            if key in kafka and not (_positive(kafka[key]) or (key == "retention_ms" and kafka[key] == -1)):
                errors.append(f"{where}.{key}: {kafka[key]!r} is not a positive integer"
                              + (" (or -1: keep forever)" if key == "retention_ms" else ""))
        if "config" in kafka:
            errors += _config_errors(f"{where}.config", kafka["config"])
        namespaces = list(team.get("namespaces") or [team["name"]])
        topics = kafka.get("topics", [])
        if not isinstance(topics, list):
            errors.append(f"{where}.topics: must be a list of topics")
            continue
        for i, topic in enumerate(topics):
            at = f"{where}.topics[{i}]"
            if not isinstance(topic, dict) or "name" not in topic:
                errors.append(f"{at}: must be a mapping with at least a name")
                continue
            at = f"{where}.topics[{i}] ({topic['name']})"
            extra = sorted(str(k) for k in topic if k not in TOPIC_KEYS)
            if extra:
                errors.append(f"{at}: unknown key(s) {', '.join(extra)}. Fix: use {', '.join(sorted(TOPIC_KEYS))}")
            if not isinstance(topic["name"], str) or not _TOPIC_NAME.match(topic["name"]):
                errors.append(f"{at}.name: {topic['name']!r} is not a lower-case name (letters, digits, '-'), "
                              "as Seldon's Model and Pipeline names are")
                continue
            kind = topic.get("kind", "model")
            if kind not in TOPIC_KINDS:
                errors.append(f"{at}.kind: {kind!r}. Fix: one of {', '.join(TOPIC_KINDS)}")
                continue
            namespace = topic.get("namespace", namespaces[0])
            if namespace not in namespaces:
                errors.append(f"{at}.namespace: {namespace!r} is not a namespace of the team. Fix: one of "
                              f"{', '.join(namespaces)} (a team writes only under its own namespaces' prefixes)")
                continue
            for key in ("partitions", "retention_ms"):
                if key in topic and not (_positive(topic[key]) or (key == "retention_ms" and topic[key] == -1)):
                    errors.append(f"{at}.{key}: {topic[key]!r} is not a positive integer")
            if "config" in topic:
                errors += _config_errors(f"{at}.config", topic["config"])
            for name in topic_names(settings, namespace, kind, topic["name"]):
                if len(name) > MAX_TOPIC:
                    errors.append(f"{at}: the topic {name} is longer than {MAX_TOPIC} characters. Fix: a shorter name")
                if name in seen:
                    errors.append(f"{at}: the topic {name} is also defined by {seen[name]}. Fix: define each topic once")
                seen[name] = at
    return errors


def node_pool_errors(pools: Any) -> list[str]:
    errors: list[str] = []
    if not isinstance(pools, list) or not pools:
        return ["kafka_node_pools: must list at least one node pool (KRaft needs a controller and a broker)"]
    roles: set[str] = set()
    names: set[str] = set()
    for i, pool in enumerate(pools):
        where = f"kafka_node_pools[{i}]"
        if not isinstance(pool, dict):
            errors.append(f"{where}: must be a mapping with name, replicas, roles")
            continue
        extra = sorted(str(k) for k in pool if k not in NODE_POOL_KEYS)
        if extra:
            errors.append(f"{where}: unknown key(s) {', '.join(extra)}. Fix: use {', '.join(sorted(NODE_POOL_KEYS))}")
        name = pool.get("name")
        if not isinstance(name, str) or not _TOPIC_NAME.match(name):
            errors.append(f"{where}.name: {name!r} is not a DNS-1123 label")
        elif name in names:
            errors.append(f"{where}.name: {name} is used twice. Fix: one name per pool")
        names.add(str(name))
        if not _positive(pool.get("replicas")):
            errors.append(f"{where}.replicas: {pool.get('replicas')!r} is not a positive integer")
        pool_roles = pool.get("roles")
        if not isinstance(pool_roles, list) or not pool_roles or any(r not in NODE_POOL_ROLES for r in pool_roles):
            errors.append(f"{where}.roles: {pool_roles!r}. Fix: a non-empty list of {', '.join(NODE_POOL_ROLES)}")
        else:
            roles.update(pool_roles)
    for role in NODE_POOL_ROLES:
        if errors == [] and role not in roles:
            errors.append(f"kafka_node_pools: no pool has the {role} role. Fix: add it to a pool (KRaft needs both)")
    return errors


STRIMZI_CHART = "strimzi-kafka-operator"


def strimzi_install_errors(values: dict) -> list[str]:
    """The Strimzi operator's Helm settings (kafka_strimzi_*), checked before Helm runs."""
    if not values.get("kafka_strimzi_install", False):
        return []
    errors: list[str] = []
    version = str(values.get("kafka_strimzi_chart_version", ""))
    if parse(version) is None or not version[:1].isdigit():
        errors.append(f"kafka_strimzi_chart_version: {version!r} is not a chart version. Fix: a pinned version such as 0.48.0")
    elif values.get("kafka_strimzi_chart_archive"):
        archive = values["kafka_strimzi_chart_archive"]
        errors += chart_archive_errors(archive, version, "kafka_strimzi_chart_archive")
        if not errors and not str(archive).rsplit("/", 1)[-1].startswith(f"{STRIMZI_CHART}-"):
            errors.append(f"kafka_strimzi_chart_archive '{archive}' is not the {STRIMZI_CHART} chart (helm pull names it "
                          f"{STRIMZI_CHART}-{version}.tgz). Fix: copy that archive there")
    if values.get("kafka_strimzi_crds_file"):
        errors.append("kafka_strimzi_crds_file: set while kafka_strimzi_install is true. Fix: set it to '' (the chart "
                      "installs the CRDs; Helm leaves CRDs it did not create alone, so two owners would diverge)")
    watch = values.get("kafka_strimzi_watch_namespaces", [])
    if not isinstance(watch, list):
        errors.append("kafka_strimzi_watch_namespaces: must be a list of namespaces")
    else:
        for i, namespace in enumerate(watch):
            errors += namespace_errors(f"kafka_strimzi_watch_namespaces[{i}]", namespace)
    return errors


def variable_errors(values: dict, context: dict | None = None) -> list[str]:
    """The kafka role's checks beyond its argument spec, run by mlops.platform.validate_roles before anything changes."""
    settings = role_settings(values)
    errors: list[str] = []
    mode = values.get("kafka_mode", "strimzi")
    if not _TOPIC_PREFIX.match(settings["topic_prefix"]):
        errors.append(f"kafka_topic_prefix: {settings['topic_prefix']!r} is not a topic prefix. Fix: letters, digits and "
                      "'-', no trailing dot (Seldon adds '.<namespace>.'), e.g. seldon")
    if not _TOPIC_PREFIX.match(settings["consumer_group_prefix"]):
        errors.append(f"kafka_consumer_group_prefix: {settings['consumer_group_prefix']!r}. Fix: letters, digits and '-', e.g. seldon")
    if mode == "strimzi":
        if "kafka_namespace" in values:
            errors += namespace_errors("kafka_namespace", values["kafka_namespace"])
        if "kafka_node_pools" in values:
            errors += node_pool_errors(values["kafka_node_pools"])
        crds = values.get("kafka_strimzi_crds_file", "")
        if crds and not os.path.isfile(crds):
            errors.append(f"kafka_strimzi_crds_file: {crds} does not exist. Fix: run roles/kafka/files/broker.sh crds "
                          "(make setup does), or set it to '' where the Strimzi chart installed the CRDs")
        errors += strimzi_install_errors(values)
        name = values.get("kafka_cluster_name", "mlops")
        if not _TOPIC_NAME.match(str(name)):
            errors.append(f"kafka_cluster_name: {name!r} is not a DNS-1123 label")
    elif mode == "external":
        external = values.get("kafka_external") or {}
        servers = [s.strip() for s in str(external.get("bootstrap_servers", "")).split(",") if s.strip()]
        if not servers:
            errors.append("kafka_external.bootstrap_servers: empty with kafka_mode external. Fix: the MSK bootstrap "
                          "brokers string, host:port[,host:port]")
        errors += [f"kafka_external.bootstrap_servers: {s!r} is not host:port" for s in servers if not _BOOTSTRAP.match(s)]
        protocol, mechanism = external.get("security_protocol", "SASL_SSL"), external.get("sasl_mechanism", "SCRAM-SHA-512")
        if protocol.startswith("SASL_") and not mechanism:
            errors.append(f"kafka_external.sasl_mechanism: empty with security_protocol {protocol}. Fix: SCRAM-SHA-512 (MSK)")
        if external.get("provision", False) and protocol.startswith("SASL_") and not external.get("admin_password"):
            errors.append("kafka_external.admin_password: empty while provision is true. Fix: set it from a vault")
    teams = values.get("kafka_teams", (context or {}).get("teams", []))
    errors += team_kafka_errors(teams, settings)
    if not validate_teams(teams):
        errors += credential_errors(teams, values.get("kafka_team_passwords"))
    replicas = values.get("kafka_topic_replicas", 1)
    if replicas < 1:
        errors.append(f"kafka_topic_replicas: {replicas} is below 1")
    return errors


# --------------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------------
def role_settings(values: dict) -> dict:
    """The settings of the plan from the role's variables (kafka_*)."""
    return {
        "topic_prefix": values.get("kafka_topic_prefix", "seldon"),
        "consumer_group_prefix": values.get("kafka_consumer_group_prefix", "seldon"),
        "user_prefix": values.get("kafka_user_prefix", ""),
        "partitions": values.get("kafka_topic_partitions", 1),
        "replicas": values.get("kafka_topic_replicas", 1),
        "retention_ms": values.get("kafka_topic_retention_ms", 604800000),
        "topic_config": values.get("kafka_topic_config", {}),
    }


def topic_names(settings: dict, namespace: str, kind: str, name: str) -> list[str]:
    base = f"{team_prefix(settings, namespace)}{name}" if kind == "topic" else f"{team_prefix(settings, namespace)}{kind}.{name}"
    return [base] if kind == "topic" else [f"{base}.{suffix}" for suffix in SELDON_SUFFIXES]


def _stringify(config: dict) -> dict:
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in (config or {}).items()}


def kafka_plan(teams: list | None, settings: dict) -> dict:
    """``{topics: [...], users: [...]}`` of every team; ``teams`` validated (team model and kafka key)."""
    topics, users = [], []
    rows: dict[str, list[str]] = {}
    for row in team_namespaces(teams):
        rows.setdefault(row["team"], []).append(row["namespace"])
    for team in teams or []:
        name = team["name"]
        kafka = team.get("kafka") or {}
        namespaces = rows[name]
        for topic in kafka.get("topics") or []:
            kind = topic.get("kind", "model")
            namespace = topic.get("namespace", namespaces[0])
            retention = topic.get("retention_ms", kafka.get("retention_ms", settings.get("retention_ms", 604800000)))
            config = {**_stringify(settings.get("topic_config")), **_stringify(kafka.get("config")),
                      "retention.ms": str(retention), **_stringify(topic.get("config"))}
            for full in topic_names(settings, namespace, kind, topic["name"]):
                topics.append({"name": full, "team": name, "namespace": namespace,
                               "partitions": int(topic.get("partitions", kafka.get("partitions", settings.get("partitions", 1)))),
                               "replicas": int(settings.get("replicas", 1)), "config": dict(sorted(config.items()))})
        acls = []
        for namespace in namespaces:
            acls.append({"resource_type": "topic", "resource_name": team_prefix(settings, namespace),
                         "pattern_type": "prefixed", "operations": list(TOPIC_OPERATIONS)})
            acls.append({"resource_type": "group", "resource_name": group_prefix(settings, namespace),
                         "pattern_type": "prefixed", "operations": list(GROUP_OPERATIONS)})
        users.append({"team": name, "name": user_name(settings, name), "namespaces": namespaces, "acls": acls})
    return {"topics": topics, "users": users}


# --------------------------------------------------------------------------------------------
# Strimzi
# --------------------------------------------------------------------------------------------
def strimzi_objects(plan: dict, settings: dict) -> list[dict]:
    """Namespace, Kafka (KRaft, node pools), KafkaNodePools, KafkaTopics and KafkaUsers of the plan."""
    namespace, cluster = settings["namespace"], settings["cluster_name"]
    meta = {"namespace": namespace}
    cluster_labels = {**_labels(), LABEL_CLUSTER: cluster}
    listeners = [{"name": "scram", "port": 9092, "type": "internal", "tls": False,
                  "authentication": {"type": "scram-sha-512"}},
                 {"name": "tls", "port": 9093, "type": "internal", "tls": True,
                  "authentication": {"type": "scram-sha-512"}}]
    replicas = int(settings.get("replicas", 1))
    kafka_config = {"offsets.topic.replication.factor": replicas, "transaction.state.log.replication.factor": replicas,
                    "transaction.state.log.min.isr": max(1, min(2, replicas - 1)) if replicas > 1 else 1,
                    "default.replication.factor": replicas, "min.insync.replicas": max(1, min(2, replicas - 1)) if replicas > 1 else 1,
                    "auto.create.topics.enable": False, **(settings.get("broker_config") or {})}
    objects: list[dict] = [
        namespace_object(namespace),
        {"apiVersion": STRIMZI_API, "kind": "Kafka",
         "metadata": {**meta, "name": cluster, "labels": _labels(),
                      "annotations": {"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"}},
         "spec": {"kafka": {"version": settings["version"], "metadataVersion": settings["metadata_version"],
                            "listeners": listeners,
                            "authorization": {"type": "simple", "superUsers": list(settings.get("super_users") or [])},
                            "config": kafka_config},
                  "entityOperator": {"topicOperator": {}, "userOperator": {}}}},
    ]
    for pool in settings["node_pools"]:
        volume = {"id": 0, "type": "persistent-claim", "size": pool.get("storage_size", "10Gi"),
                  "deleteClaim": False, "kraftMetadata": "shared"}
        if pool.get("storage_class"):
            volume["class"] = pool["storage_class"]
        spec = {"replicas": int(pool["replicas"]), "roles": list(pool["roles"]),
                "storage": {"type": "jbod", "volumes": [volume]}}
        if pool.get("resources"):
            spec["resources"] = pool["resources"]
        objects.append({"apiVersion": STRIMZI_API, "kind": "KafkaNodePool",
                        "metadata": {**meta, "name": pool["name"], "labels": cluster_labels}, "spec": spec})
    # k8s_info's resources of the cluster CA Secret (none before the operator created it).
    found = [(item.get("data") or {}).get(CA_KEY) for item in settings.get("cluster_ca_secrets") or []]
    cluster_ca = next((value for value in found if value), "")
    if cluster_ca:
        # The cluster CA certificate (public; Strimzi renews it) in each namespace of the teams with credentials.
        for user in plan["users"]:
            if user["team"] in set(settings.get("credential_teams") or []):
                for ns in user["namespaces"]:
                    objects.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                    "metadata": {"name": cluster_ca_secret(cluster), "namespace": ns,
                                                 "labels": {**_labels(user["team"]), LABEL_CLUSTER: cluster}},
                                    "data": {CA_KEY: cluster_ca}})
    for topic in plan["topics"]:
        objects.append({"apiVersion": STRIMZI_API, "kind": "KafkaTopic",
                        "metadata": {**meta, "name": topic["name"], "labels": {**cluster_labels, LABEL_TEAM: topic["team"]}},
                        "spec": {"topicName": topic["name"], "partitions": topic["partitions"],
                                 "replicas": topic["replicas"], "config": topic["config"]}})
    credentialed = set(settings.get("credential_teams") or [])
    for user in plan["users"]:
        authentication: dict = {"type": "scram-sha-512"}
        if user["team"] in credentialed:
            ref = {"name": scram_secret_name(user["name"]), "key": PASSWORD_KEY}
            authentication["password"] = {"valueFrom": {"secretKeyRef": ref}}
        objects.append({"apiVersion": STRIMZI_API, "kind": "KafkaUser",
                        "metadata": {**meta, "name": user["name"], "labels": {**cluster_labels, LABEL_TEAM: user["team"]}},
                        "spec": {"authentication": authentication,
                                 "authorization": {"type": "simple", "acls": [
                                     {"resource": {"type": acl["resource_type"], "name": acl["resource_name"],
                                                   "patternType": "prefix"},
                                      "operations": acl["operations"], "host": "*"} for acl in user["acls"]]}}})
    return objects


# --------------------------------------------------------------------------------------------
# The kafka_topics module's arguments, and the published fact
# --------------------------------------------------------------------------------------------
def module_topics(plan: dict) -> list[dict]:
    return [{"name": t["name"], "partitions": t["partitions"], "replication_factor": t["replicas"], "config": t["config"]}
            for t in plan["topics"]]


def module_acls(plan: dict) -> list[dict]:
    return [{"principal": f"User:{user['name']}", **acl} for user in plan["users"] for acl in user["acls"]]


def module_users(plan: dict, passwords: dict) -> list[dict]:
    """SCRAM users of the teams that have a password in ``passwords`` ({team: password})."""
    return [{"name": u["name"], "password": passwords[u["team"]]} for u in plan["users"] if passwords.get(u["team"])]


def published(plan: dict, settings: dict) -> dict:
    """The ``mlops_kafka`` fact: where Kafka is and how to reach it, and each team's user and prefixes.

    No secret: a team with a password in kafka_team_passwords has ``credentials`` naming the Secret (in each of its
    namespaces, placed by the secrets role) and its keys; without one, the password is in the Secret named
    ``teams[team].secret`` (Strimzi's User Operator writes one per KafkaUser, in the Kafka namespace) or in the
    cloud's secret store (MSK SCRAM)."""
    credentialed = set(settings.get("credential_teams") or [])
    strimzi = settings["mode"] == "strimzi"
    teams = {}
    for user in plan["users"]:
        teams[user["team"]] = {
            "user": user["name"], "secret": user["name"] if strimzi else "",
            "credentials": ({"secret": CREDENTIALS_SECRET, "username_key": USERNAME_KEY, "password_key": PASSWORD_KEY}
                            if user["team"] in credentialed else {}),
            "namespaces": {ns: {"topic_prefix": team_prefix(settings, ns), "consumer_group_prefix": group_prefix(settings, ns)}
                           for ns in user["namespaces"]}}
    protocol = settings.get("security_protocol", "")
    # TLS clients (Seldon speaks SASL only over TLS): Strimzi's TLS listener (SCRAM on 9093) with its cluster CA;
    # an external cluster's own settings.
    tls = {"bootstrap_servers": f"{settings['cluster_name']}-kafka-bootstrap.{settings['namespace']}.svc:9093",
           "security_protocol": "SASL_SSL", "ca_secret": cluster_ca_secret(settings["cluster_name"]), "ca_key": CA_KEY} \
        if strimzi else {"bootstrap_servers": settings.get("bootstrap_servers", ""), "security_protocol": protocol,
                         "ca_secret": settings.get("ca_secret", ""), "ca_key": CA_KEY if settings.get("ca_secret") else ""}
    return {"enabled": settings["mode"] != "none", "mode": settings["mode"],
            "bootstrap_servers": settings.get("bootstrap_servers", ""),
            "security_protocol": protocol,
            "sasl_mechanism": settings.get("sasl_mechanism", ""),
            "tls": protocol in ("SSL", "SASL_SSL"),
            "ca_secret": settings.get("ca_secret", ""),
            "tls_listener": tls if settings["mode"] != "none" else {},
            "topic_prefix": settings.get("topic_prefix", "seldon"),
            "consumer_group_prefix": settings.get("consumer_group_prefix", "seldon"),
            "topics": [t["name"] for t in plan["topics"]],
            "teams": teams}


def seldon_kafka_config(kafka: dict | None, bootstrap_override: str = "", topic_prefix: str = "") -> dict:
    """The seldon_runtime module's ``config.kafka`` from the ``mlops_kafka`` fact; ``bootstrap_override``
    (``seldon_kafka_bootstrap``) wins and then only the bootstrap is set, as before the kafka role. {} without Kafka."""
    kafka = kafka or {}
    if bootstrap_override:
        return {"bootstrap_servers": bootstrap_override, "topic_prefix": topic_prefix or kafka.get("topic_prefix") or "seldon"}
    if not kafka.get("enabled") or not kafka.get("bootstrap_servers"):
        return {}
    out = {"bootstrap_servers": kafka["bootstrap_servers"], "topic_prefix": kafka.get("topic_prefix") or "seldon"}
    protocol = kafka.get("security_protocol") or "PLAINTEXT"
    if protocol != "PLAINTEXT":
        security = {"security.protocol": protocol}
        if protocol.startswith("SASL_") and kafka.get("sasl_mechanism"):
            security["sasl.mechanism"] = kafka["sasl_mechanism"]
        out["consumer"] = dict(security)
        out["producer"] = dict(security)
    return out


# Seldon's components that talk to Kafka, and their main containers (module_utils/seldon.py COMPONENTS).
SELDON_KAFKA_CONTAINERS = {"seldon-modelgateway": "modelgateway", "seldon-pipelinegateway": "pipelinegateway",
                           "seldon-dataflow-engine": "dataflow-engine"}


def seldon_credentials_env(kafka: dict, team: dict) -> list[dict]:
    """The environment Seldon Core v2's Kafka clients read their SASL settings from (its setup chart sets the same
    variables from ``security.kafka``, one user for the whole cluster; here per runtime): the user, the Secret in the
    runtime's own namespace and its password key, and, with a CA Secret, the broker CA."""
    tls = kafka.get("tls_listener") or {}
    env = [{"name": "KAFKA_SECURITY_PROTOCOL", "value": "SASL_SSL"},
           {"name": "KAFKA_SASL_MECHANISM", "value": kafka.get("sasl_mechanism") or "SCRAM-SHA-512"},
           {"name": "KAFKA_CLIENT_SASL_USERNAME", "value": team["user"]},
           {"name": "KAFKA_CLIENT_SASL_SECRET_NAME", "value": team["credentials"]["secret"]},
           {"name": "KAFKA_CLIENT_SASL_PASSWORD_LOCATION",
            "value": SELDON_PASSWORD_LOCATION.rsplit("/", 1)[0] + "/" + team["credentials"]["password_key"]}]
    if tls.get("ca_secret"):
        env += [{"name": "KAFKA_BROKER_TLS_SECRET_NAME", "value": tls["ca_secret"]},
                {"name": "KAFKA_BROKER_TLS_CA_LOCATION", "value": SELDON_CA_LOCATION.rsplit("/", 1)[0] + "/" + tls["ca_key"]}]
    return env


def _with_env(overrides: list, component: str, env: list[dict]) -> list:
    """``overrides`` with ``env`` set on the component's main container (merged by name into an override the team
    already has: the module refuses a component overridden twice)."""
    container = SELDON_KAFKA_CONTAINERS[component]
    out, found = [], False
    for override in overrides or []:
        if override.get("name") == component:
            found = True
            pod_spec = dict(override.get("pod_spec") or {})
            containers = [dict(c) for c in pod_spec.get("containers") or []]
            entry = next((c for c in containers if c.get("name") == container), None)
            if entry is None:
                entry = {"name": container}
                containers.append(entry)
            names = {e["name"] for e in env}
            entry["env"] = [e for e in entry.get("env") or [] if e.get("name") not in names] + env
            override = {**override, "pod_spec": {**pod_spec, "containers": containers}}
        out.append(override)
    if not found:
        out.append({"name": component, "pod_spec": {"containers": [{"name": container, "env": env}]}})
    return out


def seldon_runtime_kafka(runtimes: list, kafka: dict | None) -> list:
    """Each runtime with its namespace's consumer group prefix (``runtimes[].kafka``), so the groups Seldon
    creates there fall under the ACLs of the team's Kafka user; for a team with credentials also the TLS listener
    and, on its Kafka components, the environment that points them at the team's user and Secret."""
    kafka = kafka or {}
    owners = {ns: team for team in (kafka.get("teams") or {}).values() for ns in team["namespaces"]}
    out = []
    for runtime in runtimes:
        if runtime["namespace"] not in owners:
            out.append(runtime)
            continue
        team = owners[runtime["namespace"]]
        entry = {**runtime, "kafka": {"consumer_group_id_prefix": team["namespaces"][runtime["namespace"]]["consumer_group_prefix"]}}
        disabled = {o.get("name") for o in runtime.get("overrides") or [] if o.get("disable")}
        if team.get("credentials") and not disabled & set(SELDON_KAFKA_CONTAINERS):
            tls = kafka.get("tls_listener") or {}
            security = {"security.protocol": "SASL_SSL", "sasl.mechanism": kafka.get("sasl_mechanism") or "SCRAM-SHA-512"}
            entry["kafka"].update({"bootstrap_servers": tls.get("bootstrap_servers") or kafka.get("bootstrap_servers"),
                                   "consumer": dict(security), "producer": dict(security)})
            overrides = list(runtime.get("overrides") or [])
            env = seldon_credentials_env(kafka, team)
            for component in SELDON_KAFKA_CONTAINERS:
                overrides = _with_env(overrides, component, env)
            entry["overrides"] = overrides
        out.append(entry)
    return out


# --------------------------------------------------------------------------------------------
# The teams' credentials (secrets role)
# --------------------------------------------------------------------------------------------
def credential_errors(teams: Any, passwords: Any, variable: str = "kafka_team_passwords") -> list[str]:
    """Problems of ``kafka_team_passwords`` ({team: password}, or the setting ``variable``); names only, never values."""
    if passwords in (None, ""):
        return []
    if not isinstance(passwords, dict):
        return [f"{variable}: must be a mapping {{team: password}} (from a vault)"]
    known = {t.get("name") for t in teams or [] if isinstance(t, dict)}
    errors = [f"{variable}: {name!r} is not a team. Fix: use a team's name ({', '.join(sorted(map(str, known)))})"
              for name in sorted(map(str, passwords)) if name not in known]
    errors += [f"{variable}.{name}: empty. Fix: set it from a vault, or drop the team (Strimzi's User Operator then "
               "generates its password, and Seldon gets no credentials)" for name, value in sorted(passwords.items())
               if name in known and (value is None or str(value) == "")]
    return errors


def credential_objects(teams: list | None, settings: dict) -> list[dict]:
    """The Secrets of every team in ``settings['passwords']``: CREDENTIALS_SECRET in each of its namespaces and,
    with ``settings['kafka_namespace']`` (Strimzi), the KafkaUser's password Secret there (with its Namespace,
    rendered as the kafka role renders it, since the secrets role runs first). Values are base64 in ``data``."""
    import base64

    passwords = settings.get("passwords") or {}
    if not passwords:
        return []
    kafka_ns = settings.get("kafka_namespace") or ""
    objects: list[dict] = [namespace_object(kafka_ns)] if kafka_ns else []

    def secret(name: str, namespace: str, team: str, data: dict) -> dict:
        return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": name, "namespace": namespace, "labels": _labels(team)},
                "data": {k: base64.b64encode(str(v).encode()).decode() for k, v in sorted(data.items())}}

    rows: dict[str, list[str]] = {}
    for row in team_namespaces(teams):
        rows.setdefault(row["team"], []).append(row["namespace"])
    for team in teams or []:
        name, password = team["name"], passwords.get(team["name"])
        if password is None or str(password) == "":
            continue
        user = user_name(settings, name)
        for namespace in rows.get(name, []):
            objects.append(secret(CREDENTIALS_SECRET, namespace, name, {USERNAME_KEY: user, PASSWORD_KEY: password}))
        if kafka_ns:
            objects.append(secret(scram_secret_name(user), kafka_ns, name, {PASSWORD_KEY: password}))
    return objects
