# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Jinja filters of the seldon role.

- ``seldon_runtimes(serving, team_overrides, default_overrides, disabled)``: the ``runtimes``
  list of the seldon_runtime module, one entry per serving namespace, with the team's
  overrides (the default ones otherwise) and ``disable: true`` for every component in
  ``disabled`` (the Kafka components when there is no Kafka).
- ``seldon_report(runtimes, verbose)``: the lines worth showing from the module's result.
"""

from __future__ import annotations

from ansible_collections.mlops.platform.plugins.module_utils.plain_data import plain_args
from ansible_collections.mlops.platform.plugins.module_utils.seldon import runtime_entries


def seldon_report(runtimes: list, verbose: bool = False) -> list[str]:
    """Lines worth showing from the module's ``runtimes``: check-mode creations it could not
    dry-run, quota preflight warnings, and (verbose) every runtime's totals."""
    lines = []
    for item in runtimes:
        preflight = item.get("preflight") or {}
        if item.get("pending"):
            lines.append(f"{item['namespace']}: would create the SeldonRuntime; {item['pending']}")
        elif verbose or preflight.get("warnings"):
            lines.append(f"{item['namespace']}: {preflight.get('totals', {})} {preflight.get('warnings', [])}")
    return lines


class FilterModule:
    """Seldon role filters."""

    def filters(self):
        return {"seldon_runtimes": plain_args(runtime_entries), "seldon_report": plain_args(seldon_report)}
