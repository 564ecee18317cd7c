# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Jinja filters of the upgrade guard (plugins/module_utils/versions.py).

- ``version_guard_errors(guards)``: one message per requested version older than the live one
  (or a major upgrade that needs a migration), each naming the variable, both versions and the fix.
- ``helm_release_guard(status, variable, requested, reason, downgrade_fix, allow_downgrade, downgrade_flag)``: the
  guard of a chart version setting against an installed release (``status`` of kubernetes.core.helm_info).
- ``chart_archive_errors(archive, version, variable)``: an air-gapped chart archive that is missing or of another version.
"""

from __future__ import annotations

from ansible_collections.mlops.platform.plugins.module_utils.plain_data import plain_args
from ansible_collections.mlops.platform.plugins.module_utils.versions import chart_archive_errors, guard_errors, helm_release_guard


class FilterModule:
    """Upgrade guard filters."""

    def filters(self):
        return {"version_guard_errors": plain_args(guard_errors), "helm_release_guard": plain_args(helm_release_guard),
                "chart_archive_errors": plain_args(chart_archive_errors)}
