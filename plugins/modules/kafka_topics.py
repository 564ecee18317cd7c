#!/usr/bin/python
# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_topics
short_description: Converge the topics, ACLs and SCRAM users of a Kafka cluster in one call
version_added: 0.3.0
description:
  - Reads the cluster once through its Admin API (topics and partition counts, the configs of the requested
    topics, every ACL of the principals named in O(acls), the SCRAM users of O(users)) and writes only what
    differs. C(changed) is true exactly when something was (or, in check mode, would be) written.
  - Topics are created with their partitions, replication factor and configs; an existing topic gets missing
    partitions added (never removed, which Kafka cannot do) and the listed configs set with an incremental
    alter (configs not listed are left alone).
  - ACLs are created when missing; with O(purge_acls) the ACLs of the principals named in O(acls) that are
    not asked for are deleted, so a principal holds exactly the grants listed (a team's user is limited to its
    own prefixes).
  - SCRAM users are created with their password; Kafka never returns a password, so an existing credential is
    only set again with O(update_password=always).
  - Check mode reads the cluster and reports what would change without writing.
  - Used by the mlops.platform.kafka role for external clusters (MSK); Strimzi's Topic and User Operators do
    the same job in the cluster.
author:
  - mlops.platform maintainers (@mlops-platform)
requirements:
  - confluent-kafka (pinned in the collection's requirements.txt)
options:
  bootstrap_servers:
    description: Bootstrap servers, C(host:port[,host:port]).
    type: str
    required: true
  security_protocol:
    description: Protocol of the admin connection.
    type: str
    choices: [PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL]
    default: SASL_SSL
  sasl_mechanism:
    description: SASL mechanism with the C(SASL_*) protocols.
    type: str
    choices: [PLAIN, SCRAM-SHA-256, SCRAM-SHA-512]
    default: SCRAM-SHA-512
  sasl_username:
    description: Admin user (a super user, or one allowed to alter topics, ACLs and users).
    type: str
  sasl_password:
    description: Its password.
    type: str
  ssl_ca_location:
    description: CA bundle that signed the brokers' certificates; empty uses the system's.
    type: path
  timeout:
    description: Seconds for each request.
    type: float
    default: 30
  topics:
    description: Topics that must exist.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Full topic name.
        type: str
        required: true
      partitions:
        description: Partition count (an existing topic's count can only grow).
        type: int
        default: 1
      replication_factor:
        description: Replicas of a new topic (not changed on an existing one).
        type: int
        default: 1
      config:
        description: 'Topic configs as strings, e.g. C({retention.ms: "604800000"}).'
        type: dict
        default: {}
  acls:
    description: ACLs that must exist (one entry may list several operations).
    type: list
    elements: dict
    default: []
    suboptions:
      principal:
        description: Principal, e.g. C(User:financial-ml).
        type: str
        required: true
      resource_type:
        description: Resource type.
        type: str
        choices: [topic, group, transactional_id, cluster]
        required: true
      resource_name:
        description: Resource name, or its prefix with O(acls[].pattern_type=prefixed).
        type: str
        required: true
      pattern_type:
        description: Literal name or prefix.
        type: str
        choices: [literal, prefixed]
        default: literal
      operations:
        description: Operations, e.g. C(Read), C(Write), C(Describe), C(DescribeConfigs), C(Create).
        type: list
        elements: str
        required: true
      permission:
        description: Allow or deny.
        type: str
        choices: [allow, deny]
        default: allow
      host:
        description: Host the grant applies to.
        type: str
        default: "*"
  purge_acls:
    description: Delete the ACLs of the principals named in O(acls) that are not listed.
    type: bool
    default: true
  users:
    description: SCRAM users that must exist.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: User name (principal C(User:<name>)).
        type: str
        required: true
      password:
        description: Its password (never returned or logged).
        type: str
        required: true
      mechanism:
        description: SCRAM mechanism.
        type: str
        choices: [SCRAM-SHA-256, SCRAM-SHA-512]
        default: SCRAM-SHA-512
      iterations:
        description: SCRAM iterations.
        type: int
        default: 8192
  update_password:
    description: C(on_create) sets a user's password only when it has no credential of that mechanism; C(always)
      sets it on every run (always C(changed)).
    type: str
    choices: [on_create, always]
    default: on_create
attributes:
  check_mode:
    support: full
    description: Reads the cluster and reports the differences without writing.
  diff_mode:
    support: none
    description: The return values list every change.
"""

EXAMPLES = r"""
- name: Topics and ACLs of two teams on MSK (SASL/SCRAM over TLS)
  mlops.platform.kafka_topics:
    bootstrap_servers: b-1.mlops.kafka.eu-west-1.amazonaws.com:9096
    security_protocol: SASL_SSL
    sasl_mechanism: SCRAM-SHA-512
    sasl_username: platform-admin
    sasl_password: "{{ vault_kafka_admin_password }}"
    topics:
      - {name: seldon.financial-ml.model.fraud.inputs, partitions: 3, replication_factor: 3, config: {retention.ms: "604800000"}}
    acls:
      - principal: User:financial-ml
        resource_type: topic
        resource_name: seldon.financial-ml.
        pattern_type: prefixed
        operations: [Read, Write, Create, Describe]
"""

RETURN = r"""
topics_created:
  description: Topics created (or, in check mode, to be created).
  returned: always
  type: list
  elements: str
  sample: [seldon.financial-ml.model.fraud.inputs]
partitions:
  description: Topics whose partition count grows, with C(from) and C(to).
  returned: always
  type: list
  elements: dict
configs:
  description: Existing topics whose configs are set, with C(set) and C(before).
  returned: always
  type: list
  elements: dict
acls_created:
  description: ACLs created, one per operation.
  returned: always
  type: list
  elements: dict
acls_deleted:
  description: ACLs of the managed principals deleted (O(purge_acls)).
  returned: always
  type: list
  elements: dict
users:
  description: SCRAM users whose credential is set, with C(name), C(mechanism) and C(created) (no password).
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.mlops.platform.plugins.module_utils.kafka_admin import (
    HAS_CONFLUENT_KAFKA,
    IMPORT_ERROR,
    KafkaAdminError,
    converge,
)

ARGUMENT_SPEC = {
    "bootstrap_servers": {"type": "str", "required": True},
    "security_protocol": {"type": "str", "default": "SASL_SSL", "choices": ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]},
    "sasl_mechanism": {"type": "str", "default": "SCRAM-SHA-512", "choices": ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]},
    "sasl_username": {"type": "str"},
    "sasl_password": {"type": "str", "no_log": True},
    "ssl_ca_location": {"type": "path"},
    "timeout": {"type": "float", "default": 30},
    "topics": {"type": "list", "elements": "dict", "default": [], "options": {
        "name": {"type": "str", "required": True},
        "partitions": {"type": "int", "default": 1},
        "replication_factor": {"type": "int", "default": 1},
        "config": {"type": "dict", "default": {}},
    }},
    "acls": {"type": "list", "elements": "dict", "default": [], "options": {
        "principal": {"type": "str", "required": True},
        "resource_type": {"type": "str", "required": True, "choices": ["topic", "group", "transactional_id", "cluster"]},
        "resource_name": {"type": "str", "required": True},
        "pattern_type": {"type": "str", "default": "literal", "choices": ["literal", "prefixed"]},
        "operations": {"type": "list", "elements": "str", "required": True},
        "permission": {"type": "str", "default": "allow", "choices": ["allow", "deny"]},
        "host": {"type": "str", "default": "*"},
    }},
    "purge_acls": {"type": "bool", "default": True},
    "users": {"type": "list", "elements": "dict", "default": [], "no_log": False, "options": {
        "name": {"type": "str", "required": True},
        "password": {"type": "str", "required": True, "no_log": True},
        "mechanism": {"type": "str", "default": "SCRAM-SHA-512", "choices": ["SCRAM-SHA-256", "SCRAM-SHA-512"]},
        "iterations": {"type": "int", "default": 8192},
    }},
    "update_password": {"type": "str", "default": "on_create", "choices": ["on_create", "always"]},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not HAS_CONFLUENT_KAFKA:
        module.fail_json(msg=missing_required_lib("confluent-kafka"), exception=str(IMPORT_ERROR))
    params = dict(module.params)
    params["topics"] = [{**t, "config": {str(k): str(v) for k, v in (t["config"] or {}).items()}} for t in params["topics"]]
    try:
        result = converge(params, module.check_mode)
    except KafkaAdminError as exc:
        module.fail_json(msg=f"kafka_topics: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
