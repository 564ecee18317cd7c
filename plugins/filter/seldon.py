# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Jinja filters of the seldon role.

- ``seldon_runtimes(serving, team_overrides, default_overrides, disabled)``: the ``runtimes``
  list of the seldon_runtime module, one entry per serving namespace, with the team's
  overrides (the default ones otherwise) and ``disable: true`` for every component in
  ``disabled`` (the Kafka components when there is no Kafka).
- ``seldon_report(runtimes, verbose)``: the lines worth showing from the module's result.
- ``seldon_chart_guard(status, requested, allow_downgrade)``: the upgrade guard
  (module_utils/versions.py) of an installed release (``status`` of kubernetes.core.helm_info)
  against ``seldon_version``.
"""

from __future__ import annotations

from ansible_collections.mlops.platform.plugins.module_utils.plain_data import plain_args
from ansible_collections.mlops.platform.plugins.module_utils.seldon import runtime_entries
from ansible_collections.mlops.platform.plugins.module_utils.versions import helm_release_guard

# Why the role refuses an older seldon_version (Helm path and stand-in CRDs), and the way back.
DOWNGRADE_REASON = "the Seldon Core v2 charts support no downgrade (their CRDs and the scheduler's state only go forward)"
DOWNGRADE_FIX = "roll both releases back with helm rollback (the stand-in CRDs: delete them after the runtimes)"


def seldon_chart_guard(status: dict, requested: str, allow_downgrade: bool = False) -> dict:
    """The guard of seldon_version: against an installed release (``status`` of helm_info, with its chart field),
    or, with an empty ``status``, without the live version (k8s_bundle's version_guards reads it)."""
    return helm_release_guard(status, "seldon_version", requested, DOWNGRADE_REASON, DOWNGRADE_FIX, allow_downgrade,
                              "seldon_allow_downgrade")


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
        return {"seldon_runtimes": plain_args(runtime_entries), "seldon_report": plain_args(seldon_report),
                "seldon_chart_guard": plain_args(seldon_chart_guard)}
