# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Topics, ACLs and SCRAM users of a Kafka cluster, converged through its Admin API (confluent-kafka).

``converge(params, check_mode)`` reads the cluster once (topics and partitions, the configs of the
requested topics, every ACL of the principals it manages, the SCRAM users), computes what differs,
and in check mode stops there; otherwise it writes only the differences: topics created, partitions
added (never removed: Kafka cannot), configs set with incremental alter, missing ACLs created and,
with ``purge_acls``, ACLs of the managed principals that are not asked for deleted, SCRAM users created
(their password set again only with ``update_password: always``: Kafka never returns it, so a
comparison is impossible). Returns what changed; passwords never appear in it.
"""

from __future__ import annotations

try:
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        NewPartitions,
        NewTopic,
        ResourcePatternType,
        ResourceType,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )
    HAS_CONFLUENT_KAFKA = True
    IMPORT_ERROR = None
except ImportError as exc:  # reported by the module with missing_required_lib
    HAS_CONFLUENT_KAFKA = False
    IMPORT_ERROR = exc


class KafkaAdminError(Exception):
    """A failure with a message that says what and where."""


def client_config(params: dict) -> dict:
    config = {"bootstrap.servers": params["bootstrap_servers"], "security.protocol": params["security_protocol"],
              "socket.timeout.ms": int(params["timeout"] * 1000)}
    if params["security_protocol"].startswith("SASL_"):
        config.update({"sasl.mechanism": params["sasl_mechanism"], "sasl.username": params["sasl_username"] or "",
                       "sasl.password": params["sasl_password"] or ""})
    if params.get("ssl_ca_location"):
        config["ssl.ca.location"] = params["ssl_ca_location"]
    return config


def _result(future, what: str, timeout: float):
    try:
        return future.result(timeout=timeout)
    except KafkaException as exc:
        raise KafkaAdminError(f"{what}: {exc.args[0].str() if exc.args and hasattr(exc.args[0], 'str') else exc}") from exc


def _acl_key(principal: str, resource_type: str, name: str, pattern: str, operation: str, permission: str, host: str) -> tuple:
    return (principal, resource_type.lower(), name, pattern.lower(), _op(operation), permission.lower(), host)


def _op(operation: str) -> str:
    """READ, Read, DESCRIBE_CONFIGS and DescribeConfigs compare equal."""
    return operation.lower().replace("_", "")


def _binding_key(binding) -> tuple:
    return _acl_key(binding.principal, binding.restype.name, binding.name, binding.resource_pattern_type.name,
                    binding.operation.name, binding.permission_type.name, binding.host)


def _wanted_acls(acls: list[dict]) -> dict[tuple, dict]:
    wanted = {}
    for acl in acls:
        for operation in acl["operations"]:
            key = _acl_key(acl["principal"], acl["resource_type"], acl["resource_name"], acl["pattern_type"],
                           operation, acl["permission"], acl["host"])
            wanted[key] = {"principal": acl["principal"], "resource_type": acl["resource_type"],
                           "resource_name": acl["resource_name"], "pattern_type": acl["pattern_type"],
                           "operation": operation, "permission": acl["permission"], "host": acl["host"]}
    return wanted


def _operation(name: str):
    return {_op(op.name): op for op in AclOperation}[_op(name)]


def _acl_args(acl: dict) -> tuple:
    return (ResourceType[acl["resource_type"].upper()], acl["resource_name"], ResourcePatternType[acl["pattern_type"].upper()],
            acl["principal"], acl["host"], _operation(acl["operation"]), AclPermissionType[acl["permission"].upper()])


def _binding(acl: dict):
    return AclBinding(*_acl_args(acl))


def read_state(admin, params: dict) -> dict:
    timeout = params["timeout"]
    metadata = admin.list_topics(timeout=timeout)
    topics = {name: len(meta.partitions) for name, meta in metadata.topics.items()}
    configs: dict[str, dict] = {}
    present = [t["name"] for t in params["topics"] if t["name"] in topics]
    if present:
        futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, name) for name in present])
        for resource, future in futures.items():
            configs[resource.name] = {k: v.value for k, v in _result(future, f"describe the configs of {resource.name}", timeout).items()}
    principals = sorted({acl["principal"] for acl in params["acls"]})
    acls = []
    for principal in principals:
        found = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal, None,
                                 AclOperation.ANY, AclPermissionType.ANY)
        acls += _result(admin.describe_acls(found, request_timeout=timeout), f"describe the ACLs of {principal}", timeout)
    users: dict[str, set] = {}
    if params["users"]:
        futures = admin.describe_user_scram_credentials([u["name"] for u in params["users"]], request_timeout=timeout)
        for name, future in futures.items():
            try:
                description = future.result(timeout=timeout)
                users[name] = {info.mechanism.name.replace("_", "-") for info in description.scram_credential_infos}
            except KafkaException as exc:
                if exc.args and getattr(exc.args[0], "code", lambda: None)() == KafkaError.RESOURCE_NOT_FOUND:
                    users[name] = set()
                else:
                    raise KafkaAdminError(f"describe the SCRAM credentials of {name}: {exc}") from exc
    return {"topics": topics, "configs": configs, "acls": acls, "users": users,
            "brokers": len(metadata.brokers)}


def plan(params: dict, state: dict) -> dict:
    """What differs between the request and the cluster; raises on what cannot be converged."""
    create, partitions, configs = [], [], []
    for topic in params["topics"]:
        name = topic["name"]
        if topic["replication_factor"] > state["brokers"]:
            raise KafkaAdminError(f"topics[{name}]: replication_factor {topic['replication_factor']} is above the "
                                  f"{state['brokers']} broker(s) of the cluster. Fix: lower it (kafka_topic_replicas)")
        if name not in state["topics"]:
            create.append(topic)
            continue
        if topic["partitions"] < state["topics"][name]:
            raise KafkaAdminError(f"topics[{name}]: has {state['topics'][name]} partitions, {topic['partitions']} asked; "
                                  "Kafka cannot remove partitions. Fix: keep the count, or recreate the topic")
        if topic["partitions"] > state["topics"][name]:
            partitions.append({"name": name, "from": state["topics"][name], "to": topic["partitions"]})
        current = state["configs"].get(name, {})
        changed = {k: v for k, v in topic["config"].items() if current.get(k) != v}
        if changed:
            configs.append({"name": name, "set": changed, "before": {k: current.get(k) for k in changed}})
    wanted = _wanted_acls(params["acls"])
    existing = {_binding_key(b): b for b in state["acls"]}
    acls_create = [acl for key, acl in wanted.items() if key not in existing]
    acls_delete = []
    if params["purge_acls"]:
        acls_delete = [{"principal": b.principal, "resource_type": b.restype.name.lower(), "resource_name": b.name,
                        "pattern_type": b.resource_pattern_type.name.lower(), "operation": b.operation.name.lower(),
                        "permission": b.permission_type.name.lower(), "host": b.host}
                       for key, b in existing.items() if key not in wanted]
    users = [{"name": u["name"], "mechanism": u["mechanism"], "created": u["mechanism"] not in state["users"].get(u["name"], set())}
             for u in params["users"]
             if params["update_password"] == "always" or u["mechanism"] not in state["users"].get(u["name"], set())]
    return {"topics_created": [t["name"] for t in create], "partitions": partitions, "configs": configs,
            "acls_created": acls_create, "acls_deleted": acls_delete, "users": users, "_create": create}


def apply(admin, params: dict, todo: dict) -> None:
    timeout = params["timeout"]
    if todo["_create"]:
        futures = admin.create_topics([NewTopic(t["name"], t["partitions"], t["replication_factor"], config=t["config"])
                                       for t in todo["_create"]], request_timeout=timeout)
        for name, future in futures.items():
            _result(future, f"create the topic {name}", timeout)
    if todo["partitions"]:
        futures = admin.create_partitions([NewPartitions(p["name"], p["to"]) for p in todo["partitions"]], request_timeout=timeout)
        for name, future in futures.items():
            _result(future, f"add partitions to {name}", timeout)
    if todo["configs"]:
        resources = [ConfigResource(ResourceType.TOPIC, c["name"], incremental_configs=[
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in c["set"].items()]) for c in todo["configs"]]
        for resource, future in admin.incremental_alter_configs(resources, request_timeout=timeout).items():
            _result(future, f"set the configs of {resource.name}", timeout)
    if todo["acls_created"]:
        for binding, future in admin.create_acls([_binding(a) for a in todo["acls_created"]], request_timeout=timeout).items():
            _result(future, f"create the ACL {binding}", timeout)
    if todo["acls_deleted"]:
        filters = [AclBindingFilter(*_acl_args(a)) for a in todo["acls_deleted"]]
        for binding, future in admin.delete_acls(filters, request_timeout=timeout).items():
            _result(future, f"delete the ACL {binding}", timeout)
    if todo["users"]:
        asked = {u["name"]: u for u in params["users"]}
        upserts = []
        for user in todo["users"]:
            info = ScramCredentialInfo(ScramMechanism[user["mechanism"].replace("-", "_")], asked[user["name"]]["iterations"])
            upserts.append(UserScramCredentialUpsertion(user["name"], info, asked[user["name"]]["password"].encode()))
        for name, future in admin.alter_user_scram_credentials(upserts, request_timeout=timeout).items():
            _result(future, f"set the SCRAM credentials of {name}", timeout)


def converge(params: dict, check_mode: bool) -> dict:
    if not HAS_CONFLUENT_KAFKA:
        raise KafkaAdminError(f"the Python library confluent-kafka is missing ({IMPORT_ERROR}); it is pinned in requirements.txt")
    for acl in params["acls"]:
        acl.setdefault("permission", "allow")
        acl.setdefault("host", "*")
    admin = AdminClient(client_config(params))
    try:
        state = read_state(admin, params)
    except KafkaException as exc:
        raise KafkaAdminError(f"cannot read the cluster at {params['bootstrap_servers']}: {exc}. Fix: check the bootstrap "
                              "servers, the security protocol and the admin credentials") from exc
    todo = plan(params, state)
    changed = any(todo[k] for k in ("topics_created", "partitions", "configs", "acls_created", "acls_deleted", "users"))
    if changed and not check_mode:
        apply(admin, params, todo)
    todo.pop("_create")
    return {"changed": changed, **todo}
