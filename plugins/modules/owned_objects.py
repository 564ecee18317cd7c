#!/usr/bin/python
# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: owned_objects
short_description: List or remove every object the collection labelled, in one call
version_added: 0.1.0
description:
  - Discovers every API resource that can be listed and deleted, and finds the objects that carry
    the collection's label (C(app.kubernetes.io/managed-by=mlops.platform) by default) in all
    namespaces and at cluster scope. Objects without the label are never touched.
  - With O(state=absent) deletes them in a safe order — custom resources first (so their
    controllers can finalize them), workloads, other namespaced objects, namespaces, cluster-scoped
    objects, CustomResourceDefinitions last — and waits until they are gone.
  - Check mode and diff list what would be deleted.
author:
  - mlops.platform maintainers (@mlops-platform)
options:
  state:
    description: C(query) lists the objects; C(absent) deletes them.
    type: str
    choices: [query, absent]
    default: query
  label_selectors:
    description: Label selectors that all must match.
    type: list
    elements: str
    default: ["app.kubernetes.io/managed-by=mlops.platform"]
  protected_namespaces:
    description: Namespaces that are never deleted, even when labelled (objects inside them still are).
    type: list
    elements: str
    default: [default, kube-system, kube-public, kube-node-lease]
  wait:
    description: Wait until the deleted objects (and namespaces) are gone.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 180
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
"""

EXAMPLES = r"""
- name: Remove everything the platform created
  mlops.platform.owned_objects:
    kubeconfig: "{{ mlops_cluster.kubeconfig }}"
    state: absent

- name: Count what one team owns
  mlops.platform.owned_objects:
    label_selectors:
      - app.kubernetes.io/managed-by=mlops.platform
      - mlops.platform/team=financial-ml
  register: owned
"""

RETURN = r"""
objects:
  description: The labelled objects found (before deletion), as C(Kind/namespace/name), in deletion order.
  returned: always
  type: list
  elements: str
  sample: ["SeldonRuntime/financial-ml/financial-ml-runtime", "Namespace/financial-ml"]
deleted:
  description: The objects deleted (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["Namespace/financial-ml"]
"""

import copy
import time

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
from ansible_collections.mlops.platform.plugins.module_utils.owned import describe, ordered, tier, within_namespaces


def argument_spec():
    spec = copy.deepcopy(AUTH_ARG_SPEC)
    spec.update(
        state=dict(type="str", choices=["query", "absent"], default="query"),
        label_selectors=dict(type="list", elements="str", default=["app.kubernetes.io/managed-by=mlops.platform"]),
        protected_namespaces=dict(type="list", elements="str",
                                  default=["default", "kube-system", "kube-public", "kube-node-lease"]),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=180),
    )
    return spec


def listable(dynamic):
    """One resource per group and kind that can be listed and deleted."""
    seen, result = set(), []
    for resource in dynamic.resources.search():
        verbs = getattr(resource, "verbs", None) or []
        if type(resource).__name__ != "Resource" or "/" in resource.name or "list" not in verbs or "delete" not in verbs:
            continue
        key = (resource.group, resource.kind)
        if key not in seen:
            seen.add(key)
            result.append(resource)
    return result


def find(dynamic, selector):
    from kubernetes.dynamic.exceptions import DynamicApiError

    objects, uids = [], set()
    for resource in listable(dynamic):
        try:
            items = resource.get(label_selector=selector).to_dict().get("items") or []
        except DynamicApiError:
            continue  # forbidden or not served: nothing of ours we could remove there
        for item in items:
            uid = item["metadata"].get("uid")
            if uid in uids:
                continue
            uids.add(uid)
            item.setdefault("kind", resource.kind)
            item.setdefault("apiVersion", resource.group_version)
            objects.append(item)
    return ordered(objects)


def exists(dynamic, obj):
    from kubernetes.dynamic.exceptions import NotFoundError

    try:
        dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"]).get(
            name=obj["metadata"]["name"], namespace=obj["metadata"].get("namespace"))
        return True
    except NotFoundError:
        return False


def main():
    module = AnsibleK8SModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        dynamic = get_api_client(module=module).client
        objects = find(dynamic, ",".join(params["label_selectors"]))
        protected = set(params["protected_namespaces"])
        objects = [o for o in objects if not (o["kind"] == "Namespace" and o["metadata"]["name"] in protected)]
        found = [describe(o) for o in objects]
        result = dict(changed=False, objects=found, deleted=[])
        if params["state"] == "absent" and objects:
            namespaces = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
            # Deleting a namespace removes what is in it; custom resources go first regardless.
            implied = {id(o) for o in within_namespaces(objects, namespaces) if tier(o) != 0}
            targets = [o for o in objects if id(o) not in implied]
            result["changed"] = True
            result["deleted"] = found
            if module._diff:
                result["diff"] = dict(before="\n".join(found) + "\n", after="")
            if not module.check_mode:
                from kubernetes.dynamic.exceptions import NotFoundError

                for obj in targets:
                    resource = dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
                    try:
                        resource.delete(name=obj["metadata"]["name"], namespace=obj["metadata"].get("namespace"),
                                        body={"propagationPolicy": "Foreground" if obj["kind"] == "Namespace" else "Background"})
                    except NotFoundError:
                        pass
                if params["wait"]:
                    deadline = time.monotonic() + params["wait_timeout"]
                    remaining = targets
                    while remaining and time.monotonic() < deadline:
                        remaining = [o for o in remaining if exists(dynamic, o)]
                        if remaining:
                            time.sleep(1)
                    if remaining:
                        still = ", ".join(describe(o) for o in remaining)
                        module.fail_json(msg=f"still present after {params['wait_timeout']}s: {still}", **result)
    except CoreException as exc:
        module.fail_from_exception(exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
