# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Jinja filters of the secrets role, over its secret specs ({namespace, team, secret: {name, type, data}}).

- ``secrets_missing(specs)``: names of the empty settings and values the secrets need, each with the
  secret that needs it (``secrets_s3.region (for ns/ml-platform)``, ``ns/ghcr..dockerconfigjson``);
  names only, never values.
- ``secrets_objects(specs)``: the Secrets of direct mode, labelled for pruning and cost attribution.
"""

from __future__ import annotations

import base64

from ansible_collections.mlops.platform.plugins.module_utils.plain_data import plain_args


def secrets_missing(specs: list) -> list[str]:
    out: list[str] = []
    for spec in specs:
        where = f"{spec['namespace']}/{spec['secret']['name']}"
        for name in (spec.get("missing") or []) + (spec.get("missing_training") or []):
            out.append(f"{name} (for {where})")
        for key, value in sorted((spec["secret"].get("data") or {}).items()):
            if value is None or str(value) == "":
                out.append(f"{where}.{key}")
    return list(dict.fromkeys(out))


def secrets_objects(specs: list) -> list[dict]:
    objects = []
    for spec in specs:
        labels = {"app.kubernetes.io/managed-by": "mlops.platform", "app.kubernetes.io/part-of": "mlops-platform"}
        if spec.get("team"):
            labels["mlops.platform/team"] = spec["team"]
        secret = spec["secret"]
        objects.append({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": secret["name"], "namespace": spec["namespace"], "labels": labels},
            "type": secret["type"],
            "data": {k: base64.b64encode(str(v).encode()).decode() for k, v in sorted((secret.get("data") or {}).items())},
        })
    return objects


class FilterModule:
    """Secrets role filters."""

    def filters(self):
        return {"secrets_missing": plain_args(secrets_missing), "secrets_objects": plain_args(secrets_objects)}
