# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Jinja filters of the processing role; the logic lives in module_utils/processing.py.

- ``processing_variable_errors(values)``: the role's checks (validate_roles runs the same function).
- ``processing_settings(values)``: the settings of the plan and the objects from the role's variables.
- ``processing_plan(teams, settings)``: the team namespaces that enable Spark and Flink.
- ``processing_objects(plan, settings)``: operators, their RBAC, and each enabled namespace's ServiceAccounts and Roles.
- ``processing_dag_files(paths)``: ``{file name: source}`` of the DAG files, read on the controller.
- ``processing_teardown_jobs(teams, values)``: the teams' Spark and Flink job kinds per namespace, for teardown.
- ``processing_examples(plan, settings)``: a SparkApplication and a FlinkDeployment per enabled namespace.
"""

from __future__ import annotations

from ansible_collections.mlops.platform.plugins.module_utils.plain_data import plain_filters


class FilterModule:
    """Processing filters."""

    def filters(self):
        return plain_filters("processing", {
            "processing_variable_errors": "variable_errors",
            "processing_settings": "role_settings",
            "processing_plan": "processing_plan",
            "processing_objects": "processing_objects",
            "processing_examples": "example_objects",
            "processing_dag_files": "dag_files",
            "processing_teardown_jobs": "teardown_jobs",
        })
