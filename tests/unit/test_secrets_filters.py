"""The secrets role's filters: missing values by name, and the Secrets of direct mode."""

from __future__ import annotations

import base64

from ansible_collections.mlops.platform.plugins.filter.secrets import secrets_missing, secrets_objects

SPECS = [
    {"namespace": "team-a", "team": "a", "missing": ["secrets_s3.region"], "missing_training": ["secrets_mlflow.tracking_uri"],
     "secret": {"name": "ml-platform", "type": "Opaque", "data": {"AWS_DEFAULT_REGION": "", "AWS_ACCESS_KEY_ID": "AKIA-EXAMPLE"}}},
    {"namespace": "team-b", "team": "", "secret": {"name": "ghcr", "type": "kubernetes.io/dockerconfigjson",
                                                   "data": {".dockerconfigjson": "{\"auths\": {}}"}}},
]


def test_missing_names_every_empty_value_and_setting_never_a_value():
    missing = secrets_missing(SPECS)
    assert missing == ["secrets_s3.region (for team-a/ml-platform)", "secrets_mlflow.tracking_uri (for team-a/ml-platform)",
                       "team-a/ml-platform.AWS_DEFAULT_REGION"]
    assert not any("AKIA" in name for name in missing)


def test_objects_are_labelled_base64_secrets():
    first, second = secrets_objects(SPECS)
    assert first["metadata"] == {"name": "ml-platform", "namespace": "team-a", "labels": {
        "app.kubernetes.io/managed-by": "mlops.platform", "app.kubernetes.io/part-of": "mlops-platform",
        "mlops.platform/team": "a"}}
    assert base64.b64decode(first["data"]["AWS_ACCESS_KEY_ID"]).decode() == "AKIA-EXAMPLE"
    assert second["type"] == "kubernetes.io/dockerconfigjson" and "mlops.platform/team" not in second["metadata"]["labels"]
    assert base64.b64decode(second["data"][".dockerconfigjson"]).decode() == '{"auths": {}}'
