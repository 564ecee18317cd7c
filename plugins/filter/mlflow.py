# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Jinja filters of the mlflow role; the logic lives in module_utils/mlflow.py.

- ``mlflow_server_containers(settings)``: command line and environment of the init container
  (``mlflow db upgrade``) and of the server; the real-process test runs the same.
- ``mlflow_settings_errors(settings)``: validation messages.
- ``mlflow_service_hosts(service, namespace, extra)``: Host headers the server accepts.
- ``mlflow_auth_config(database_uri, default_permission)``: the basic-auth ini file.
- ``mlflow_quota_errors(objects, quota)``: whether the pods fit the namespace quota.
- ``mlflow_quota_hard(quota)``: ``spec.hard`` of the namespace's ResourceQuota.
- ``mlflow_objects(settings)``: every object of the role but its Secrets.
- ``mlflow_secret_objects(settings, credentials)``: the Secrets the role owns.
"""

from __future__ import annotations

from ansible_collections.mlops.platform.plugins.module_utils.plain_data import plain_filters


class FilterModule:
    """MLflow filters."""

    def filters(self):
        return plain_filters("mlflow", {
            "mlflow_server_containers": "server_containers",
            "mlflow_settings_errors": "settings_errors",
            "mlflow_service_hosts": "service_hosts",
            "mlflow_auth_config": "auth_config",
            "mlflow_quota_errors": "quota_errors",
            "mlflow_quota_hard": "quota_hard",
            "mlflow_objects": "mlflow_objects",
            "mlflow_secret_objects": "secret_objects",
        })
