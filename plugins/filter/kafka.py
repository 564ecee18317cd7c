# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Jinja filters of the kafka role; the logic lives in module_utils/kafka.py.

- ``kafka_variable_errors(values)``: the role's checks (validate_roles runs the same function).
- ``kafka_plan(teams, settings)``: topics and one user per team with its ACLs.
- ``kafka_strimzi_objects(plan, settings)``: Kafka, KafkaNodePools, KafkaTopics, KafkaUsers.
- ``kafka_module_topics(plan)`` / ``kafka_module_acls(plan)`` / ``kafka_module_users(plan, passwords)``: arguments of
  mlops.platform.kafka_topics.
- ``kafka_published(plan, settings)``: the mlops_kafka fact.
- ``kafka_seldon_config(mlops_kafka, bootstrap_override, topic_prefix)``: the seldon role's ``config.kafka``.
- ``kafka_seldon_runtimes(runtimes, mlops_kafka)``: each runtime with its namespace's consumer group prefix and, for a
  team with credentials, the TLS listener and the SASL environment of its Kafka components (names, never values).
- ``kafka_credential_objects(teams, settings)`` / ``kafka_credential_errors(teams, passwords)``: the secrets role's
  Secrets of the teams' Kafka passwords, and the check of kafka_team_passwords.
"""

from __future__ import annotations

from ansible_collections.mlops.platform.plugins.module_utils.plain_data import plain_filters


class FilterModule:
    """Kafka filters."""

    def filters(self):
        return plain_filters("kafka", {
            "kafka_variable_errors": "variable_errors",
            "kafka_plan": "kafka_plan",
            "kafka_strimzi_objects": "strimzi_objects",
            "kafka_module_topics": "module_topics",
            "kafka_module_acls": "module_acls",
            "kafka_module_users": "module_users",
            "kafka_published": "published",
            "kafka_seldon_config": "seldon_kafka_config",
            "kafka_seldon_runtimes": "seldon_runtime_kafka",
            "kafka_credential_objects": "credential_objects",
            "kafka_credential_errors": "credential_errors",
        })
