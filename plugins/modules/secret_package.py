#!/usr/bin/python
# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: secret_package
short_description: Build, safely extract or remove a team's secret package (tar.gz with kustomize overlays)
version_added: 0.1.0
description:
  - The infrastructure side (O(state=built)) renders the secrets of one namespace into a package
    C(<project>-<scope>-secrets-<date>.tar.gz) holding C(base/) and C(overlays/<env>/) with a
    C(kustomization.yaml) each, the secret manifests and C(MANIFEST.json), the SHA-256 of every file.
  - Secrets are Bitnami SealedSecrets, sealed offline with the controller's certificate, when
    O(certificate) is given, and plain Secrets otherwise. Every Secret carries the labels
    C(app.kubernetes.io/managed-by=mlops.platform), C(app.kubernetes.io/part-of=mlops-platform) and,
    with O(team), C(mlops.platform/team=<team>).
  - The archive is deterministic (sorted members, fixed times and owners, gzip mtime 0), so the same
    inputs give the same bytes and C(changed) is honest. Sealing is randomised unless O(signing_key)
    is given, from which the sealing randomness is derived; without it a sealed package is rebuilt on
    every run.
  - With O(signing_key) (Ed25519), C(MANIFEST.json.sig) signs the manifest; teams check it with O(verify_key).
  - The team side (O(state=extracted)) reads the package as a stream and checks each file as it arrives
    (C(MANIFEST.json) must be the first, as this module writes it, and with O(verify_key) its signature
    the second), so memory holds only the files that passed. It refuses the package unless it is safe
    and intact (absolute paths, C(..), links, devices, unlisted or missing files, checksum or signature
    mismatch, oversized or too many members, binary content, gzip bombs, empty or truncated archives,
    objects for another namespace or kustomizations that reach outside the package). It then writes
    the files (mode 0600, directories 0700) to a temporary directory next to O(dest) and renames it
    into place, so a refusal writes nothing. O(dest) must be absent, empty or a previously extracted
    package.
  - O(state=absent) removes a package file or an extracted package directory.
  - Diff output lists file names, never values.
author:
  - mlops.platform maintainers (@mlops-platform)
requirements:
  - cryptography (only with O(certificate), O(signing_key) or O(verify_key))
attributes:
  check_mode:
    support: full
    description: Reports what would change without writing.
  diff_mode:
    support: full
    description: Before and after lists of the package's file names.
options:
  state:
    description:
      - V(built) writes the package into O(dest); V(extracted) verifies O(src) and extracts it into
        O(dest); V(absent) removes O(path).
    type: str
    required: true
    choices: [built, extracted, absent]
  project:
    description: Project part of the package name, a DNS-1123 label. Required with O(state=built).
    type: str
  scope:
    description: Scope part of the package name (for example V(ml) or V(models)). Required with O(state=built).
    type: str
  date:
    description:
      - Date part of the package name, C(YYYYMMDD). Defaults to today (UTC) when building.
      - Set it for reproducible names across days.
    type: str
  namespace:
    description:
      - Namespace of every secret in the package. Required with O(state=built) and O(state=extracted);
        when extracting, a package or object for any other namespace is refused.
    type: str
  team:
    description: Team that owns the namespace; adds the C(mlops.platform/team) label.
    type: str
  environments:
    description:
      - Environments to render an overlay for (for example V(production), V(staging)). Required with O(state=built).
    type: list
    elements: str
  secrets:
    description:
      - The secrets of the namespace. Their values (O(secrets[].data), O(secrets[].environments)) are never
        logged or returned; names, types, labels and annotations are not secret.
      - A secret without per-environment values goes to C(base/); one with any goes, merged with O(secrets[].data),
        to each C(overlays/<env>/).
    type: list
    elements: dict
    suboptions:
      name:
        description: Secret name (DNS-1123 subdomain).
        type: str
        required: true
      type:
        description: Secret type, for example V(kubernetes.io/dockerconfigjson).
        type: str
        default: Opaque
      data:
        description: Key to value, the same in every environment. Values are strings (numbers are converted).
        type: dict
        default: {}
      environments:
        description: Environment to a mapping of key to value that adds to or overrides O(secrets[].data).
        type: dict
        default: {}
      labels:
        description: Extra labels; the platform labels always win.
        type: dict
        default: {}
      annotations:
        description: Annotations of the Secret.
        type: dict
        default: {}
  certificate:
    description:
      - PEM certificate (or RSA public key) of the Sealed Secrets controller, for example from
        C(kubeseal --fetch-cert). When set, secrets are sealed as SealedSecrets.
    type: str
  sealing_scope:
    description:
      - Sealed Secrets scope. V(strict) binds each value to namespace and name, V(namespace-wide) to the
        namespace, V(cluster-wide) to nothing.
    type: str
    default: strict
    choices: [strict, namespace-wide, cluster-wide]
  signing_key:
    description:
      - Ed25519 private key (PEM, unencrypted PKCS#8) that signs C(MANIFEST.json) and seeds deterministic sealing.
    type: str
  verify_key:
    description:
      - Ed25519 public key (PEM). When set, extraction requires a valid C(MANIFEST.json.sig).
    type: str
  src:
    description: Package file to extract. Required with O(state=extracted).
    type: path
  dest:
    description:
      - With O(state=built), the directory that receives the package.
      - With O(state=extracted), the directory the package is extracted into, for example
        C(k8s/manifests/<namespace>); the module owns it entirely.
    type: path
  path:
    description: Package file or extracted package directory to remove. Required with O(state=absent).
    type: path
  max_members:
    description: Most archive members accepted when extracting.
    type: int
    default: 256
  max_file_size:
    description:
      - Largest single file accepted when extracting, in bytes.
      - A file is held in memory while it is read and checked, so this bounds the memory a refused package can
        take beyond the files that passed every check; O(max_total_size) does not.
    type: int
    default: 1048576
  max_total_size:
    description:
      - Largest package accepted when extracting, compressed and decompressed, in bytes.
      - The archive is read in 64 KiB chunks, so raising this does not raise the memory used.
    type: int
    default: 16777216
notes:
  - The extracted directory holds secrets (in clear text without sealing); keep it out of version control.
  - Every value in O(secrets[].data) and O(secrets[].environments) is treated as secret, so Ansible masks any
    occurrence of one in the module's output; a short non-secret value (for example V(s3) or V(mlflow)) can make
    returned paths show C(********).
seealso:
  - name: Sealed Secrets crypto details
    description: The hybrid encryption this module reproduces offline.
    link: https://github.com/bitnami-labs/sealed-secrets/blob/main/docs/developer/crypto.md
"""

EXAMPLES = r"""
- name: Build the ML secrets package of financial-mlops-pytorch, sealed for the cluster
  mlops.platform.secret_package:
    state: built
    project: financial-mlops-pytorch
    scope: ml
    namespace: financial-mlops-pytorch
    team: mlops
    environments: [staging, production]
    certificate: "{{ lookup('ansible.builtin.file', 'sealed-secrets-cert.pem') }}"
    signing_key: "{{ vault_secret_package_signing_key }}"
    secrets:
      - name: ml-platform
        data:
          AWS_ACCESS_KEY_ID: "{{ vault_minio_access_key }}"
          AWS_SECRET_ACCESS_KEY: "{{ vault_minio_secret_key }}"
          AWS_DEFAULT_REGION: us-east-1
        environments:
          production:
            AWS_ENDPOINT_URL: http://minio.minio.svc.cluster.local:9000
          staging:
            AWS_ENDPOINT_URL: http://minio.minio-staging.svc.cluster.local:9000
    dest: dist/secrets
  register: package

- name: Extract it on the team side, checking the signature
  mlops.platform.secret_package:
    state: extracted
    src: "{{ package.path }}"
    dest: k8s/manifests/financial-mlops-pytorch
    namespace: financial-mlops-pytorch
    verify_key: "{{ lookup('ansible.builtin.file', 'secret-packages.pub') }}"

- name: Remove the extracted package
  mlops.platform.secret_package:
    state: absent
    path: k8s/manifests/financial-mlops-pytorch
"""

RETURN = r"""
path:
  description: The package written (V(built)), the directory extracted into (V(extracted)) or removed (V(absent)).
  returned: always
  type: str
  sample: dist/secrets/financial-mlops-pytorch-ml-secrets-20250704.tar.gz
files:
  description: File names in the package (never their content).
  returned: always
  type: list
  elements: str
  sample: [MANIFEST.json, base/kustomization.yaml, base/ml-platform.yaml, overlays/production/kustomization.yaml]
sha256:
  description: SHA-256 of the package file.
  returned: when O(state=built)
  type: str
sealed:
  description: Whether the secrets are SealedSecrets.
  returned: when O(state=built) or O(state=extracted)
  type: bool
signed:
  description: Whether the package carries a signature (V(built)) or its signature was verified (V(extracted)).
  returned: when O(state=built) or O(state=extracted)
  type: bool
resources:
  description:
    - For each environment, the manifest files (relative to RV(path)) its overlay applies, base first;
      what C(kubectl apply -k <path>/overlays/<env>) would apply.
  returned: when O(state=extracted)
  type: dict
  sample: {production: [base/ml-platform.yaml, overlays/production/mlflow.yaml]}
environments:
  description: Environments with an overlay in the package.
  returned: when O(state=built) or O(state=extracted)
  type: list
  elements: str
  sample: [production, staging]
"""

# Imports follow the documentation, as validate-modules requires.
import hashlib
import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.mlops.platform.plugins.module_utils import sealing
from ansible_collections.mlops.platform.plugins.module_utils import secret_package as sp


def _diff(before: list[str], after: list[str], path: str) -> dict:
    return {
        "before": "".join(f"{f}\n" for f in before),
        "after": "".join(f"{f}\n" for f in after),
        "before_header": f"{path} (files)",
        "after_header": f"{path} (files)",
    }


def _built(module: AnsibleModule) -> dict:
    p = module.params
    spec = {k: p[k] for k in ("project", "scope", "namespace", "team", "environments", "secrets", "certificate",
                              "sealing_scope", "signing_key")}
    spec["date"] = p["date"] or sp.today()
    data, files = sp.build(spec)
    path = os.path.join(p["dest"], sp.package_filename(p["project"], p["scope"], spec["date"]))
    changed, before = sp.write_package(path, data, module.check_mode)
    return {
        "changed": changed, "path": path, "files": files, "sha256": hashlib.sha256(data).hexdigest(),
        "sealed": bool(p["certificate"]), "signed": bool(p["signing_key"]), "environments": p["environments"],
        "diff": _diff(before, files if changed else before, path),
    }


def _extracted(module: AnsibleModule) -> dict:
    p = module.params
    limits = {k: p[k] for k in ("max_members", "max_file_size", "max_total_size")}
    files, manifest = sp.load_package(p["src"], p["namespace"], p["verify_key"], limits)
    changed, before, after = sp.extract(files, p["dest"], module.check_mode)
    return {
        "changed": changed, "path": p["dest"], "files": after, "sealed": bool(manifest.get("sealed")),
        "signed": bool(p["verify_key"]), "environments": manifest["environments"],
        "resources": sp.overlay_resources(files, manifest), "diff": _diff(before, after, p["dest"]),
    }


def _absent(module: AnsibleModule) -> dict:
    changed, removed = sp.remove(module.params["path"], module.check_mode)
    return {"changed": changed, "path": module.params["path"], "files": removed,
            "diff": _diff(removed, [], module.params["path"])}


SECRET_OPTIONS = {
    "name": {"type": "str", "required": True},
    "type": {"type": "str", "default": "Opaque"},
    "data": {"type": "dict", "default": {}, "no_log": True},
    "environments": {"type": "dict", "default": {}, "no_log": True},
    "labels": {"type": "dict", "default": {}},
    "annotations": {"type": "dict", "default": {}},
}
ARGUMENT_SPEC = {
    "state": {"type": "str", "required": True, "choices": ["built", "extracted", "absent"]},
    "project": {"type": "str"},
    "scope": {"type": "str"},
    "date": {"type": "str"},
    "namespace": {"type": "str"},
    "team": {"type": "str"},
    "environments": {"type": "list", "elements": "str"},
    "secrets": {"type": "list", "elements": "dict", "options": SECRET_OPTIONS, "no_log": False},
    "certificate": {"type": "str"},
    "sealing_scope": {"type": "str", "default": "strict", "choices": list(sealing.SCOPES)},
    "signing_key": {"type": "str", "no_log": True},
    "verify_key": {"type": "str", "no_log": False},
    "src": {"type": "path"},
    "dest": {"type": "path"},
    "path": {"type": "path"},
    "max_members": {"type": "int", "default": sp.DEFAULT_LIMITS["max_members"]},
    "max_file_size": {"type": "int", "default": sp.DEFAULT_LIMITS["max_file_size"]},
    "max_total_size": {"type": "int", "default": sp.DEFAULT_LIMITS["max_total_size"]},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[
            ("state", "built", ("project", "scope", "namespace", "environments", "secrets", "dest")),
            ("state", "extracted", ("src", "dest", "namespace")),
            ("state", "absent", ("path",)),
        ],
        supports_check_mode=True,
    )
    p = module.params
    if (p["certificate"] or p["signing_key"] or p["verify_key"]) and not sealing.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=sealing.CRYPTOGRAPHY_IMPORT_ERROR)
    handlers = {"built": _built, "extracted": _extracted, "absent": _absent}
    try:
        result = handlers[p["state"]](module)
    except sp.PackageError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"secret_package ({p['state']}): {exc.strerror}: {exc.filename}")
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
