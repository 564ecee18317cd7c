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
