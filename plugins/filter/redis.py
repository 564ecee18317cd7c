# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Jinja filters of the redis role; the logic lives in module_utils/redis.py.

- ``redis_variable_errors(values)``: the role's checks (validate_roles runs the same function).
- ``redis_settings(values)``: the role's settings from its variables.
- ``redis_objects(settings)``: Namespace, ConfigMap (redis.conf), Service, StatefulSet.
- ``redis_published(settings)``: the mlops_redis fact (no password).
"""

from __future__ import annotations

from ansible_collections.mlops.platform.plugins.module_utils.plain_data import plain_filters


class FilterModule:
    """Redis filters."""

    def filters(self):
        return plain_filters("redis", {
            "redis_variable_errors": "variable_errors",
            "redis_settings": "role_settings",
            "redis_objects": "redis_objects",
            "redis_published": "published",
        })
