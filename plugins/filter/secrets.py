# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Jinja filters of the secrets role, over its secret specs ({namespace, team, secret: {name, type, data}}).

- ``secrets_missing(specs)``: names of the empty settings and values the secrets need, each with the
  secret that needs it (``secrets_s3.region (for ns/ml-platform)``, ``ns/ghcr..dockerconfigjson``);
  names only, never values.
- ``secrets_objects(specs)``: the Secrets of direct mode, labelled for pruning and cost attribution.
- ``secrets_specs(rows, settings)``: the specs themselves, one per (namespace, secret), from the
  team namespace rows and the role's settings (names, ``s3``, ``mlflow``, ``registry``,
  ``database``, ``grafana``); ``missing`` lists the empty settings a secret needs, by variable name.

- ``secrets_missing_errors(specs)``: ``[message]`` naming them, or ``[]``.
- ``secrets_grafana_errors(mode, grafana)``: the Grafana admin password's check (12+ characters, not well known).

The logic lives in module_utils/secrets.py (validate_roles uses it too).
"""

from __future__ import annotations

from ansible_collections.mlops.platform.plugins.module_utils.plain_data import plain_args
from ansible_collections.mlops.platform.plugins.module_utils.secrets import (
    airflow_errors,
    grafana_errors,
    missing_errors,
    redis_errors,
    redis_team_secret,
    secrets_missing,
    secrets_objects,
    secrets_specs,
)

__all__ = ["FilterModule", "airflow_errors", "grafana_errors", "missing_errors", "redis_errors", "redis_team_secret", "secrets_missing",
           "secrets_objects", "secrets_specs"]


class FilterModule:
    """Secrets role filters."""

    def filters(self):
        return {"secrets_missing": plain_args(secrets_missing), "secrets_objects": plain_args(secrets_objects),
                "secrets_specs": plain_args(secrets_specs), "secrets_grafana_errors": plain_args(grafana_errors),
                "secrets_redis_errors": plain_args(redis_errors), "secrets_redis_team_secret": plain_args(redis_team_secret),
                "secrets_missing_errors": plain_args(missing_errors), "secrets_airflow_errors": plain_args(airflow_errors)}
