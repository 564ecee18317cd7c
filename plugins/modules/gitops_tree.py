#!/usr/bin/python
# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The gitops_tree module; the work is in module_utils/gitops.py."""

from __future__ import annotations

DOCUMENTATION = r"""
module: gitops_tree
short_description: Commit the rendered platform to a Git repository as a GitOps tree, with its Argo CD or Flux objects
description:
  - Reads the files the platform roles wrote with C(mlops_render_only) (k8s_bundle O(render_dir)), one directory per
    component with a C(kustomization.yaml), deterministic file names, and makes the branch of a bare Git repository
    hold exactly that tree. A commit is made only when a file differs.
  - Every plain C(v1 Secret) is sealed with O(sealing_cert) into a Bitnami C(SealedSecret) (strict scope; its
    template carries the Secret's labels, annotations and type), deterministically with O(sealing_seed_key),
    so a re-render gives the same bytes and commits nothing. ExternalSecrets pass through unchanged.
  - Without O(sealing_cert) it fails before writing anything when a plain Secret would land in the tree,
    naming each one and the fix. A rendered bundle that maps to no component fails too.
  - With O(engine=argocd) the tree also holds C(argocd/), the app-of-apps (an AppProject for the platform and one per
    team, one Application per component with its sync wave); with O(engine=flux) C(flux/) (a GitRepository and a
    Kustomization per component with C(dependsOn)). The objects are also returned as RV(delivery).
version_added: "1.0.0"
author:
  - mlops.platform maintainers (@mlops-platform)
options:
  render_dir: {description: The directory the roles rendered into., type: path, required: true}
  repo: {description: Path of the bare Git repository (created when missing)., type: path, required: true}
  repo_url: {description: The URL Argo CD or Flux clones the repository from., type: str, required: true}
  push_url:
    description:
      - Where the commit goes when the repository is not the local O(repo), e.g. C(git@host:org/platform.git); fetched
        from and pushed to with the user's Git credentials (SSH keys, credential helper). It must exist.
      - Empty means the bare repository O(repo) (created when missing).
    type: str
    default: ""
  branch: {description: The branch., type: str, default: main}
  engine: {description: Which delivery objects to add., type: str, choices: [none, argocd, flux], default: argocd}
  components: {description: "Bundle name -> {component, wave}; empty: the collection's default order.", type: dict, default: {}}
  teams: {description: "Teams ({name, namespace}) that get an AppProject limited to their namespace.", type: list, elements: dict, default: []}
  project: {description: The platform's AppProject., type: str, default: mlops-platform}
  prefix: {description: Prefix of the Application and Kustomization names., type: str, default: mlops-}
  argocd_namespace: {description: Argo CD's namespace., type: str, default: argocd}
  flux_namespace: {description: Flux's namespace., type: str, default: flux-system}
  destination_server: {description: The cluster Argo CD deploys to., type: str, default: "https://kubernetes.default.svc"}
  automated: {description: Automated sync., type: bool, default: true}
  prune: {description: Prune what the tree no longer holds., type: bool, default: true}
  self_heal: {description: Undo changes made on the cluster by hand., type: bool, default: true}
  commit_message: {description: The commit message., type: str, default: mlops.platform render}
  sealing_cert:
    description:
      - The Sealed Secrets controller's certificate (PEM), or the path of a file holding it
        (C(kubeseal --fetch-cert), or GET C(/v1/cert.pem) of the controller). Empty, plain Secrets are refused.
    type: str
    default: ""
  sealing_seed_key:
    description:
      - The secret from which the sealing randomness is derived (HMAC), so that the same inputs give the same
        ciphertext. Required with O(sealing_cert); keep it in a vault. Never returned.
    type: str
    default: ""
attributes:
  check_mode: {support: full, description: Reports whether a commit would be made and which files change; writes nothing.}
  diff_mode: {support: none, description: "Not supported: the module returns file names only, never contents (which hold sealed values)."}
"""

EXAMPLES = r"""
- name: Commit the rendered platform
  mlops.platform.gitops_tree:
    render_dir: /tmp/rendered
    repo: /srv/git/platform.git
    repo_url: file:///srv/git/platform.git
"""

RETURN = r"""
commit: {description: The branch's commit (null in check mode when one would be made)., returned: always, type: str}
files_changed: {description: Paths that the commit changes., returned: always, type: list, elements: str}
components: {description: "Component -> {wave, objects}.", returned: always, type: dict}
ignored: {description: Read-only bundles (a check-mode read-back) left out of the tree., returned: always, type: list, elements: str}
sealed: {description: "The Secrets sealed into SealedSecrets (C(<component>: Secret <namespace>/<name>)).", returned: always, type: list, elements: str}
delivery: {description: The Argo CD or Flux objects (also in the tree)., returned: always, type: list, elements: dict}
bootstrap:
  description:
    - What the role applies itself. Argo CD, the AppProjects and the root Application only (the root creates the
      component Applications wave by wave); Flux, every object of RV(delivery).
  returned: always
  type: list
  elements: dict
refresh: {description: "A hard-refresh request (annotation only) for the root Application.", returned: always, type: list, elements: dict}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mlops.platform.plugins.module_utils.gitops import GitOpsError, build_tree, commit_tree

ARGUMENT_SPEC = dict(
    render_dir=dict(type="path", required=True), repo=dict(type="path", required=True),
    repo_url=dict(type="str", required=True), push_url=dict(type="str", default=""), branch=dict(type="str", default="main"),
    engine=dict(type="str", choices=["none", "argocd", "flux"], default="argocd"),
    components=dict(type="dict", default={}), teams=dict(type="list", elements="dict", default=[]),
    project=dict(type="str", default="mlops-platform"), prefix=dict(type="str", default="mlops-"),
    argocd_namespace=dict(type="str", default="argocd"), flux_namespace=dict(type="str", default="flux-system"),
    destination_server=dict(type="str", default="https://kubernetes.default.svc"),
    automated=dict(type="bool", default=True), prune=dict(type="bool", default=True),
    self_heal=dict(type="bool", default=True), commit_message=dict(type="str", default="mlops.platform render"),
    sealing_cert=dict(type="str", default=""), sealing_seed_key=dict(type="str", default="", no_log=True),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    try:
        files, facts = build_tree(params)
        result = commit_tree(files, params["repo"], params["branch"], params["commit_message"], module.check_mode,
                             push_url=params["push_url"])
    except GitOpsError as exc:
        module.fail_json(msg=str(exc), changed=False)
    module.exit_json(**result, **facts)


if __name__ == "__main__":
    main()
