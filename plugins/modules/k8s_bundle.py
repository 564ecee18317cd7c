#!/usr/bin/python
# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_bundle
short_description: Server-side apply a list of Kubernetes objects in one call, checked before anything is written
version_added: 0.2.0
description:
  - Applies every object of O(definitions) with server-side apply under one field manager, over
    kept-alive connections, without the kubernetes Python client (its import alone costs more
    than a no-op apply of a team's objects). Reads, dry-runs and the writes of each kind go out
    four at a time, each on its own connection; the order between kinds is kept.
  - "Nothing half-applied: every definition is checked, every kind discovered, and every object
    that can be sent is dry-run (C(dryRun=All)) before the first write. An object whose dry-run
    equals the server's copy is unchanged and is not written, so C(changed) is the truth."
  - A definition larger than 32 KiB (upstream CRDs run to hundreds of KiB) carries the annotation
    C(mlops.platform/applied-digest); when the server's copy has the same digest and still holds
    every field of the definition it is unchanged without a dry-run. A field changed by hand, or a
    new definition, goes through the dry-run and is applied.
  - CustomResourceDefinitions and Namespaces go first; the module waits until the CRDs are
    established before it applies objects of the kinds they define, and dry-runs objects in
    namespaces it has just created before writing them.
  - Check mode dry-runs everything it can; objects that need a namespace or a CRD that does not
    exist yet (the bundle, or an earlier role of the same check-mode run, would create it) are
    reported as C(created) without being sent. Outside check mode such an object is an error
    that names the namespace or kind, raised before anything is written.
  - Diff mode returns one before/after pair per changed object. The values of Secrets are never
    returned, logged or shown; diffs say C(<hidden>) or C(<hidden, changed>).
  - O(prune) deletes the objects of the listed kinds that carry a label but are no longer in the
    bundle. O(wait) waits until the bundle's Deployments, StatefulSets, DaemonSets and Jobs are ready.
author:
  - mlops.platform maintainers (@mlops-platform)
options:
  definitions:
    description: The objects, each with C(apiVersion), C(kind) and C(metadata.name) (and C(metadata.namespace) when namespaced).
    type: list
    elements: dict
    default: []
  src:
    description:
      - A YAML file of more objects (several documents, or C(kind) C(List) with C(items)), or a JSON
        file (C(.json), one object or a C(List)), applied after O(definitions) in the same call.
      - Read on the controller; a relative path is looked up like the C(src) of M(ansible.builtin.copy)
        (the role's C(files/) first). Cheaper than a O(definitions) list templated from a file lookup;
        large objects (CRDs of hundreds of KiB) never pass through Jinja or the task's arguments.
    type: path
  field_manager:
    description: The server-side apply field manager.
    type: str
    default: mlops.platform
  force_conflicts:
    description: Take over fields another manager owns.
    type: bool
    default: true
  wait:
    description: Wait until the bundle's Deployments, StatefulSets and DaemonSets are ready and its Jobs complete.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for readiness (and for CRDs to be established).
    type: int
    default: 300
  wait_requires:
    description:
      - Objects from elsewhere that the workloads need to become ready (a Secret another role or an
        ExternalSecret provides). They are read after the apply; when one is missing the module does
        not wait, since readiness could only time out, and returns it in RV(missing).
    type: list
    elements: dict
    default: []
    suboptions:
      api_version:
        description: Its C(apiVersion).
        type: str
        default: v1
      kind:
        description: Its kind.
        type: str
        required: true
      name:
        description: Its name.
        type: str
        required: true
      namespace:
        description: Its namespace (namespaced kinds).
        type: str
  prune:
    description: Delete labelled objects of these kinds that the bundle does not hold.
    type: dict
    suboptions:
      label_selector:
        description: Only objects matching this selector are candidates.
        type: str
        required: true
      kinds:
        description: The kinds to look at.
        type: list
        elements: dict
        required: true
        suboptions:
          api_version:
            description: The apiVersion of the kind.
            type: str
            required: true
          kind:
            description: The kind.
            type: str
            required: true
      namespaces:
        description: Namespaces to look in for namespaced kinds; all namespaces when omitted.
        type: list
        elements: str
  annotations:
    description:
      - Annotations added to every object of O(definitions) and O(src), e.g. the C(mlops.platform/version)
        that a later O(version_guards) entry reads back.
    type: dict
    default: {}
  version_guards:
    description:
      - Versions checked against the live objects before anything is read for the apply or written. The call
        fails, changing nothing, when a requested version is older than the live one (unless
        O(version_guards[].allow_downgrade)), or is a new major version that needs a data migration first
        (when O(version_guards[].major_flag) is set, unless O(version_guards[].allow_major_upgrade)). The
        message names the variable, both versions, the reason and the fix.
      - "Versions order as numbers (2.10 > 2.9), a leading C(v) and variant suffixes (C(-alpine), C(-full)) do not
        count, pre-releases (C(rc), C(beta)...) sort before their release; a tag that holds no version is not compared."
      - An object that does not exist yet, or has no such container or annotation, passes.
    type: list
    elements: dict
    default: []
    suboptions:
      variable:
        description: The setting that asks for the version, as the message names it.
        type: str
        required: true
      requested:
        description: The requested version or image reference.
        type: str
        required: true
      api_version:
        description: The C(apiVersion) of the live object to read.
        type: str
        required: true
      kind:
        description: Its kind.
        type: str
        required: true
      name:
        description: Its name.
        type: str
        required: true
      namespace:
        description: Its namespace (namespaced kinds).
        type: str
      container:
        description: Read the image of this container of the object's pod template (or pod); or use O(version_guards[].annotation).
        type: str
      annotation:
        description: Read the version from this annotation of the object instead of a container image.
        type: str
      reason:
        description: Why an older version is refused (the message says it).
        type: str
        required: true
      allow_downgrade:
        description: Let an older version through.
        type: bool
        default: false
      downgrade_flag:
        description: The setting that sets O(version_guards[].allow_downgrade), named in the fix.
        type: str
        required: true
      downgrade_fix:
        description: The way back to the older version, named in the fix (default, a restore from a backup taken before the upgrade).
        type: str
      major_flag:
        description: When set, a new major version is refused unless O(version_guards[].allow_major_upgrade); the setting named in the fix.
        type: str
      allow_major_upgrade:
        description: Let a new major version through (its migration is done).
        type: bool
        default: false
      major_procedure:
        description: The migration a new major version needs (the message says it).
        type: str
  render_dir:
    description:
      - Also write the definitions, exactly as sent, to a numbered YAML file in this directory
        (mode 0600; it may hold Secrets). The benchmark applies those files with kubectl.
    type: path
  render_only:
    description:
      - GitOps render mode; write the definitions to O(render_dir) exactly as they would be sent and send
        nothing (no cluster is contacted, the task reports no change). O(prune) and O(wait) are not done.
        The file is written in check mode too (the render directory is the caller's scratch space).
      - When the task does not set it, the variable C(mlops_render_only) decides (playbooks/gitops.yml sets it),
        so every role renders with its own apply task; one source of truth for every object.
    type: bool
    default: false
  name:
    description: A label for the bundle, used in the O(render_dir) file name.
    type: str
    default: bundle
  cluster_exists:
    description:
      - Set to C(false) in check mode before the cluster exists (the cluster role would create it and
        C(mlops_cluster.available) is false). Every object is then reported as a creation and nothing is sent.
      - Outside check mode C(false) fails.
    type: bool
    default: true
extends_documentation_fragment:
  - mlops.platform.kube
attributes:
  check_mode:
    support: full
    description: Every object is dry-run on the server (C(dryRun=All)); prune deletions too. Nothing is stored.
  diff_mode:
    support: full
    description: One before/after pair per changed object, Secret values hidden.
"""

EXAMPLES = r"""
- name: Apply the team objects, pruning those of removed teams
  mlops.platform.k8s_bundle:
    kubeconfig: "{{ mlops_cluster.kubeconfig }}"
    definitions: "{{ team_objects }}"
    prune:
      label_selector: app.kubernetes.io/managed-by=mlops.platform,app.kubernetes.io/component=team-isolation
      kinds:
        - {api_version: v1, kind: Namespace}

- name: Apply MinIO and wait until it is ready
  mlops.platform.k8s_bundle:
    definitions: "{{ minio_objects }}"
    wait: true
    wait_timeout: 300

- name: Apply a database, refusing an older image or a new major version before any change
  mlops.platform.k8s_bundle:
    definitions: "{{ database_objects }}"
    version_guards:
      - variable: postgresql_image
        requested: "{{ postgresql_image }}"
        api_version: apps/v1
        kind: StatefulSet
        namespace: db
        name: postgresql
        container: postgresql
        reason: PostgreSQL data cannot be downgraded in place
        downgrade_flag: postgresql_allow_downgrade
        major_flag: postgresql_major_upgrade
        major_procedure: dump the data with pg_dumpall, then restore it into the new major version

- name: Apply the CRDs of the role's files/crds.yaml (read on the controller)
  mlops.platform.k8s_bundle:
    src: crds.yaml
"""

RETURN = r"""
objects:
  description:
    - One entry per object, in the order applied, with C(action) created, updated, unchanged or deleted.
    - In check mode, objects that could not be dry-run carry C(not_sent), the reason (a namespace or kind that does
      not exist yet).
  returned: always
  type: list
  elements: dict
  sample: [{"object": "Namespace/team-a", "kind": "Namespace", "name": "team-a", "namespace": null, "action": "unchanged"}]
changes:
  description: C(<action> Kind/namespace/name) for every object created, updated or deleted (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["created ConfigMap/team-a/settings"]
missing:
  description: C(Kind/namespace/name) of every O(wait_requires) object that does not exist (the module did not wait).
  returned: when O(wait_requires) is set, outside check mode
  type: list
  elements: str
counts:
  description: How many objects were created, updated, unchanged and deleted.
  returned: always
  type: dict
  sample: {"created": 1, "updated": 0, "unchanged": 57, "deleted": 0}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mlops.platform.plugins.module_utils.bundle import ARGUMENT_SPEC, apply_bundle, masked_params
from ansible_collections.mlops.platform.plugins.module_utils.kube import exit_module


class BundleModule(AnsibleModule):
    def _log_invocation(self):
        # The journal entry AnsibleModule writes for every call must not carry Secrets' values.
        definitions = self.params.get("definitions")
        self.params["definitions"] = masked_params(self.params)["definitions"]
        try:
            super()._log_invocation()
        finally:
            self.params["definitions"] = definitions


def main() -> None:
    module = BundleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    exit_module(module, apply_bundle)


if __name__ == "__main__":
    main()
