# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Jinja filters of the storage role; the logic lives in module_utils/storage.py.

- ``storage_bucket_errors(buckets, name_prefix, encryption)``: validation messages of the buckets.
- ``storage_variable_errors(values)``: validation messages of the buckets, MinIO's namespace and volume size
  (``values``: those variables by name; validate_roles runs the same function).
- ``storage_bucket_plan(buckets, teams, settings)``: the complete buckets.
- ``storage_bucket_names(buckets, name_prefix)``: ``{short name: bucket name}``, without the teams.
- ``storage_lifecycle_configuration(rules)``: the S3 LifecycleConfiguration of a bucket.
- ``storage_lifecycle_rows(plan)`` / ``storage_prefix_objects(plan)``: loop rows of the S3 path.
- ``storage_minio_script(plan)``: the script of the MinIO bucket-provisioning Job.
- ``storage_minio_objects(plan, settings)``: the Kubernetes objects of MinIO (no Secret).
- ``storage_minio_secret(settings, access_key_id, secret_access_key)``: its credentials Secret.
- ``storage_digest(value)``: short digest naming the immutable provisioning Job.
- ``is_k8s_quantity(value)``: whether a value is a Kubernetes quantity.
"""

from __future__ import annotations

from ansible_collections.mlops.platform.plugins.module_utils.plain_data import plain_filters


class FilterModule:
    """Storage filters."""

    def filters(self):
        return {
            **plain_filters("storage", {
                "storage_bucket_errors": "bucket_errors",
                "storage_variable_errors": "variable_errors",
                "storage_bucket_plan": "bucket_plan",
                "storage_bucket_names": "bucket_names",
                "storage_lifecycle_configuration": "lifecycle_configuration",
                "storage_lifecycle_rows": "lifecycle_tasks",
                "storage_prefix_objects": "prefix_objects",
                "storage_minio_script": "minio_provision_script",
                "storage_minio_objects": "minio_objects",
                "storage_minio_secret": "minio_credentials_secret",
                "storage_digest": "plan_digest",
            }),
            **plain_filters("quantity", {"is_k8s_quantity": "is_quantity"}),
        }
