# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Jinja filters of the monitoring role; the logic lives in module_utils/monitoring.py.

- ``monitoring_dashboards(directory, extra)``: ``{file name: JSON text}`` of the dashboards.
- ``monitoring_problems(settings, upstream_file, dashboards)``: every problem, before any change.
- ``monitoring_objects(settings, upstream_file, dashboards)``: every object the role applies but the CRDs.
- ``monitoring_crd_list(upstream_file)``: the file of the CRDs (a List), the apply task's ``src``.
- ``monitoring_alert_groups(settings)``: the rule groups of the platform's PrometheusRule.
- ``monitoring_helm_values(settings)``: kube-prometheus-stack values (``monitoring_install: helm``).
"""

from __future__ import annotations

from ansible_collections.mlops.platform.plugins.module_utils.plain_data import plain_filters


class FilterModule:
    """Monitoring filters."""

    def filters(self):
        return plain_filters("monitoring", {
            "monitoring_dashboards": "read_dashboards",
            "monitoring_problems": "problems",
            "monitoring_objects": "role_objects",
            "monitoring_crd_list": "crd_list_file",
            "monitoring_alert_groups": "alert_groups",
            "monitoring_helm_values": "helm_values",
        })
