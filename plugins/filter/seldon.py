# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Jinja filters of the seldon role.

- ``seldon_runtimes(serving, team_overrides, default_overrides, disabled)``: the ``runtimes``
  list of the seldon_runtime module, one entry per serving namespace, with the team's
  overrides (the default ones otherwise) and ``disable: true`` for every component in
  ``disabled`` (the Kafka components when there is no Kafka).
"""

from __future__ import annotations

from ansible_collections.mlops.platform.plugins.module_utils.plain_data import plain_args


def seldon_runtimes(serving: list, team_overrides: dict, default_overrides: list, disabled: list) -> list[dict]:
    off = [{"name": name, "disable": True} for name in disabled]
    return [{"namespace": item["namespace"], "team": item.get("team"),
             "overrides": list(team_overrides.get(item.get("team"), default_overrides)) + off}
            for item in serving]


class FilterModule:
    """Seldon role filters."""

    def filters(self):
        return {"seldon_runtimes": plain_args(seldon_runtimes)}
