# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Jinja filters over the team model (``teams:``); the logic lives in module_utils/teams.py.

- ``team_errors(teams, defaults)``: list of validation messages (empty when valid).
- ``teams_normalized(teams, defaults)``: every team with all fields filled in.
- ``team_namespaces(teams, defaults)``: one row per namespace (team, namespace, serving,
  training, secrets, bucket_prefix, service_accounts) for the Seldon, secrets and storage roles.
- ``team_objects(teams, settings, defaults)``: the Kubernetes objects of the team_isolation role.
- ``team_stale_objects(found, desired, protected)``: labelled objects no longer desired.
- ``team_access_reviews(teams, access_rules, actions, defaults)``: SubjectAccessReviews with
  expected answers; ``team_access_matrix(reviews, answers)``: the RBAC matrix as a table.
- ``namespace_errors(setting, value)``: ``[message]`` when a role's namespace setting is not a DNS
  label or is a Kubernetes system namespace (validate_roles runs the same function).
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.mlops.platform.plugins.module_utils.plain_data import plain_filters

FILTERS = plain_filters("teams", {
    "team_errors": "validate_teams",
    "teams_normalized": "normalize_teams",
    "team_namespaces": "team_namespaces",
    "team_render": "render_teams",
    "team_stale_objects": "stale_objects",
    "team_access_reviews": "access_reviews",
    "team_access_matrix": "access_matrix",
    "namespace_errors": "namespace_errors",
})


def team_objects(teams, settings, defaults=None):
    errors = FILTERS["team_errors"](teams, defaults)
    if errors:
        # The role validates first; this guards direct use of the filter.
        raise AnsibleFilterError("invalid teams:\n" + "\n".join(errors))
    return FILTERS["team_render"](teams, settings, defaults)


class FilterModule:
    """Team model filters."""

    def filters(self):
        return {**{k: v for k, v in FILTERS.items() if k != "team_render"}, "team_objects": team_objects}
