# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Jinja filters over Kubernetes objects and batched kubernetes.core.k8s results.

- ``k8s_object_key(obj)``: ``Kind/namespace/name``.
- ``k8s_changes(registered)``: ``[{object, method, diff}]`` of the objects a call changed.
- ``k8s_mismatches(desired, live)``: what differs between rendered and read-back objects.
"""

from __future__ import annotations

from ansible_collections.mlops.platform.plugins.module_utils.plain_data import plain_filters


class FilterModule:
    """Kubernetes result filters."""

    def filters(self):
        return plain_filters("k8s_results", {"k8s_object_key": "object_key", "k8s_changes": "changed_objects",
                                             "k8s_mismatches": "mismatches"})
