# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Jinja filters for Helm charts in GitOps mode (plugins/module_utils/gitops_charts.py).

- ``gitops_chart_delivery(charts, repo_url, engine, project, argocd_namespace, flux_namespace,
  destination_server, component)``: the Argo CD AppProject and Applications with a Helm source (or the
  Flux HelmRepository and HelmReleases) that install ``charts`` instead of Helm.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.mlops.platform.plugins.module_utils.gitops_charts import chart_delivery
from ansible_collections.mlops.platform.plugins.module_utils.plain_data import plain_args


def gitops_chart_delivery(*args, **kwargs) -> list[dict]:
    try:
        return chart_delivery(*args, **kwargs)
    except ValueError as exc:
        raise AnsibleFilterError(f"gitops_chart_delivery: {exc}") from exc


class FilterModule:
    """GitOps chart filters."""

    def filters(self):
        return {"gitops_chart_delivery": plain_args(gitops_chart_delivery)}
