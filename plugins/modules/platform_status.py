#!/usr/bin/python
# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: platform_status
short_description: Read the platform back from the API server and report its health
version_added: 0.1.0
description:
  - Reads the given components (any kind) and team namespaces, and reports per component
    whether it exists, is ready, its image version and in-cluster endpoint, and per team the
    namespace, quota used against hard, and which Secrets exist (names only, never values).
  - Fails when a required component is missing or not ready, or a team's namespace or
    expected Secret is missing, naming each one. Read-only; check mode changes nothing either.
author:
  - mlops.platform maintainers (@mlops-platform)
options:
  components:
    description: Objects that make up the platform.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Display name of the component.
        type: str
        required: true
      kind:
        description: Kind of the object, for example C(Deployment), C(StatefulSet), C(Service), C(SeldonRuntime).
        type: str
        required: true
      api_version:
        description: API version of the kind.
        type: str
        default: v1
      namespace:
        description: Namespace of the object; omit for cluster-scoped kinds.
        type: str
      object:
        description: Name of the object.
        type: str
        required: true
      required:
        description: Whether a missing or unready object fails the module.
        type: bool
        default: true
  teams:
    description:
      - Teams whose namespaces are checked, as in the inventory's C(teams) (the output of the
        C(mlops.platform.teams_normalized) filter fits). Of each team the keys C(name),
        C(namespaces) (default C([name])) and C(secrets) (names of Secrets expected in each
        namespace) are read; other keys are ignored.
    type: list
    elements: dict
    default: []
  check_team_secrets:
    description: Report a team's expected Secrets that are missing as problems.
    type: bool
    default: true
  fail_on_error:
    description: Fail when something required is missing or not ready (the table is returned either way).
    type: bool
    default: true
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
"""

EXAMPLES = r"""
- name: Report the platform's health
  mlops.platform.platform_status:
    kubeconfig: "{{ mlops_cluster.kubeconfig }}"
    components:
      - {name: mlflow, kind: Deployment, api_version: apps/v1, namespace: mlflow, object: mlflow}
      - {name: mlflow service, kind: Service, namespace: mlflow, object: mlflow}
    teams:
      - {name: financial-ml, namespaces: [financial-ml], secrets: [ml-platform]}
  register: health

- name: Print it
  ansible.builtin.debug:
    msg: "{{ health.table.splitlines() }}"
"""

RETURN = r"""
components:
  description: One entry per component.
  returned: always
  type: list
  elements: dict
  sample: [{name: mlflow, kind: Deployment, namespace: mlflow, exists: true, ready: true, detail: 1/1 ready, version: "3.1.0", endpoint: ""}]
teams:
  description: One entry per team namespace, with quota usage and the Secrets found (names only).
  returned: always
  type: list
  elements: dict
  sample: [{team: financial-ml, namespace: financial-ml, exists: true, quota: [], secrets_present: [ml-platform], secrets_missing: []}]
problems:
  description: What is missing or not ready; empty when healthy.
  returned: always
  type: list
  elements: str
  sample: ["component mlflow (Deployment mlflow/mlflow): 0/1 ready"]
table:
  description: The health report as text (components, then teams).
  returned: always
  type: str
"""

import copy

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
from ansible_collections.mlops.platform.plugins.module_utils.status import (
    WORKLOADS,
    endpoint,
    image_version,
    quota_usage,
    readiness,
    table,
)


def argument_spec():
    spec = copy.deepcopy(AUTH_ARG_SPEC)
    spec.update(
        components=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str", required=True),
            kind=dict(type="str", required=True),
            api_version=dict(type="str", default="v1"),
            namespace=dict(type="str"),
            object=dict(type="str", required=True),
            required=dict(type="bool", default=True),
        )),
        teams=dict(type="list", elements="dict", default=[]),
        check_team_secrets=dict(type="bool", default=True),
        fail_on_error=dict(type="bool", default=True),
    )
    return spec


class Reader:
    def __init__(self, client):
        self.client = client

    def get(self, kind, api_version, name, namespace=None):
        from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

        try:
            return self.client.resource(kind, api_version).get(name=name, namespace=namespace).to_dict()
        except (NotFoundError, ResourceNotFoundError):
            return None

    def list(self, kind, api_version, namespace):
        return self.client.resource(kind, api_version).get(namespace=namespace).to_dict().get("items") or []


def check_components(reader, components, problems):
    rows = []
    for spec in components:
        obj = reader.get(spec["kind"], spec["api_version"], spec["object"], spec["namespace"])
        ready, detail = readiness(obj)
        where = f"{spec['namespace']}/{spec['object']}" if spec["namespace"] else spec["object"]
        if not ready and spec["required"]:
            problems.append(f"component {spec['name']} ({spec['kind']} {where}): {detail}")
        rows.append(dict(name=spec["name"], kind=spec["kind"], namespace=spec["namespace"] or "", object=spec["object"],
                         exists=obj is not None, ready=ready, required=spec["required"], detail=detail,
                         version=image_version(obj) if obj and obj["kind"] in WORKLOADS else "",
                         endpoint=endpoint(obj)))
    return rows


def check_teams(reader, teams, check_secrets, problems):
    rows = []
    for team in teams:
        expected = list(team.get("secrets") or []) if check_secrets else []
        for namespace in team.get("namespaces") or [team["name"]]:
            exists = reader.get("Namespace", "v1", namespace) is not None
            present, missing, quota = [], expected, []
            if exists:
                names = {s["metadata"]["name"] for s in reader.list("Secret", "v1", namespace)}
                present = [s for s in expected if s in names]
                missing = [s for s in expected if s not in names]
                quota = quota_usage(reader.list("ResourceQuota", "v1", namespace))
            else:
                problems.append(f"team {team['name']}: namespace {namespace} is missing")
            problems.extend(f"team {team['name']}: Secret {namespace}/{name} is missing" for name in missing if exists)
            rows.append(dict(team=team["name"], namespace=namespace, exists=exists, quota=quota,
                             secrets_present=present, secrets_missing=missing))
    return rows


def render(components, teams):
    parts = [table(["COMPONENT", "KIND", "NAMESPACE", "EXISTS", "READY", "DETAIL", "VERSION", "ENDPOINT"],
                   [[c["name"], c["kind"], c["namespace"], c["exists"], c["ready"], c["detail"], c["version"], c["endpoint"]]
                    for c in components])] if components else []
    if teams:
        parts.append(table(["TEAM", "NAMESPACE", "EXISTS", "SECRETS (names only)"], [
            [t["team"], t["namespace"], t["exists"],
             ", ".join(t["secrets_present"] + [f"{s} (MISSING)" for s in t["secrets_missing"]]) or "-"]
            for t in teams]))
        quota_rows = [[t["team"], t["namespace"], q["resource"], q["used"], q["hard"], f"{q['percent']}%"]
                      for t in teams for q in t["quota"]]
        if quota_rows:
            parts.append(table(["TEAM", "NAMESPACE", "QUOTA", "USED", "HARD", "USED %"], quota_rows))
    return "\n\n".join(parts)


def main():
    module = AnsibleK8SModule(argument_spec=argument_spec(), supports_check_mode=True)
    problems = []
    try:
        reader = Reader(get_api_client(module=module))
        components = check_components(reader, module.params["components"], problems)
        teams = check_teams(reader, module.params["teams"], module.params["check_team_secrets"], problems)
    except CoreException as exc:
        module.fail_from_exception(exc)
    result = dict(changed=False, components=components, teams=teams, problems=problems, table=render(components, teams))
    if problems and module.params["fail_on_error"]:
        module.fail_json(msg="platform not healthy: " + "; ".join(problems), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
