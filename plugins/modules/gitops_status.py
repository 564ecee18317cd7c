#!/usr/bin/python
# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The gitops_status module: which Argo CD Applications are Synced and Healthy, or which Flux Kustomizations are Ready."""

from __future__ import annotations

DOCUMENTATION = r"""
module: gitops_status
short_description: Report and wait until the platform's Argo CD Applications are Synced and Healthy (or Flux Kustomizations Ready)
description:
  - Reads the named Applications (C(argoproj.io/v1alpha1)) or Kustomizations (C(kustomize.toolkit.fluxcd.io/v1)) and
    waits up to O(wait_timeout) seconds until every one is Synced and Healthy (Argo CD), Ready (Flux), and,
    for Argo CD, has synced O(revision) when given. On timeout it fails naming each one not there and its state.
version_added: "1.0.0"
author:
  - mlops.platform maintainers (@mlops-platform)
options:
  engine: {description: The engine., type: str, choices: [argocd, flux], default: argocd}
  namespace: {description: Where the Applications or Kustomizations are., type: str, required: true}
  names: {description: Their names., type: list, elements: str, required: true}
  revision: {description: The Git commit every Application must have synced (Argo CD)., type: str}
  wait_timeout: {description: Seconds to wait; 0 reads once and fails when one is not there., type: int, default: 300}
  refresh:
    description:
      - Argo CD with O(revision) - ask each Application for a hard refresh (annotation C(argocd.argoproj.io/refresh),
        a merge patch) once, when it first exists and has not synced O(revision), as Argo CD's Git webhook would;
        the repo server would otherwise keep the branch's older commit for minutes. Applications the root
        creates later (sync waves) get theirs when they appear. Never creates an Application.
    type: bool
    default: false
  kubeconfig: {description: Path to the kubeconfig., type: path}
  context: {description: The kubeconfig context., type: str}
attributes:
  check_mode: {support: full, description: Only reads.}
  diff_mode: {support: none, description: Nothing changes.}
"""

EXAMPLES = r"""
- name: Wait for the platform's Applications
  mlops.platform.gitops_status:
    namespace: argocd
    names: [mlops-root, mlops-team-isolation]
    wait_timeout: 300
"""

RETURN = r"""
states:
  description: "Name -> state: C(Synced/Healthy) (Argo CD) or C(Ready) (Flux), or what it is instead."
  returned: always
  type: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mlops.platform.plugins.module_utils.kube import Client, Config, KubeError


def state(engine: str, obj: dict | None, revision: str | None) -> tuple[bool, str]:
    if obj is None:
        return False, "not there"
    status = obj.get("status") or {}
    if engine == "argocd":
        sync = (status.get("sync") or {})
        text = f"{sync.get('status', 'Unknown')}/{(status.get('health') or {}).get('status', 'Unknown')}"
        if revision and sync.get("revision") and sync.get("revision") != revision:
            return False, f"{text} at {sync['revision'][:12]}, not {revision[:12]}"
        return text == "Synced/Healthy" and (not revision or sync.get("revision") == revision), text
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    if ready and ready[0].get("status") == "True":
        return True, "Ready"
    return False, f"not Ready: {ready[0].get('message', '') if ready else 'no Ready condition yet'}"


def main():
    module = AnsibleModule(argument_spec=dict(
        engine=dict(type="str", choices=["argocd", "flux"], default="argocd"), namespace=dict(type="str", required=True),
        names=dict(type="list", elements="str", required=True), revision=dict(type="str"),
        wait_timeout=dict(type="int", default=300), kubeconfig=dict(type="path"), context=dict(type="str"),
        refresh=dict(type="bool", default=False)),
        supports_check_mode=True)
    params = module.params
    api = ("argoproj.io/v1alpha1", "Application") if params["engine"] == "argocd" else \
        ("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
    deadline = time.monotonic() + params["wait_timeout"]
    try:
        client = Client(Config.load(params["kubeconfig"], params["context"]))
        refreshed: set[str] = set()
        hard = {"metadata": {"annotations": {"argocd.argoproj.io/refresh": "hard"}}}
        while True:
            live = {n: client.get(*api, n, params["namespace"]) for n in params["names"]}
            if params["refresh"] and params["revision"] and params["engine"] == "argocd" and not module.check_mode:
                for n, obj in live.items():
                    synced = ((obj or {}).get("status") or {}).get("sync", {}).get("revision")
                    if obj and n not in refreshed and synced != params["revision"]:
                        client.request("PATCH", client.path(*api, n, params["namespace"]), hard,
                                       content_type="application/merge-patch+json")
                        refreshed.add(n)
            found = {n: state(params["engine"], live[n], params["revision"]) for n in params["names"]}
            states = {n: result[1] for n, result in found.items()}
            waiting = sorted(n for n, result in found.items() if not result[0])
            if not waiting:
                module.exit_json(changed=False, states=states)
            if time.monotonic() >= deadline:
                module.fail_json(msg=f"not in sync after {params['wait_timeout']} s: "
                                 + "; ".join(f"{n}: {states[n]}" for n in waiting), states=states)
            time.sleep(2)
    except KubeError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
