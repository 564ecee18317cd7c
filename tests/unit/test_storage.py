"""The bucket plan shared by the storage role's MinIO and S3 paths, and MinIO's objects (module_utils/storage.py)."""

from __future__ import annotations

import base64
import json
import pathlib

import pytest
import yaml
from ansible_collections.mlops.platform.plugins.module_utils.storage import (
    bucket_errors,
    bucket_name_errors,
    bucket_names,
    bucket_plan,
    lifecycle_configuration,
    lifecycle_tasks,
    minio_credentials_secret,
    minio_objects,
    minio_provision_script,
    plan_digest,
    prefix_objects,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_BUCKETS = yaml.safe_load((ROOT / "roles/storage/defaults/main.yml").read_text())["storage_buckets"]
TEAMS = [{"name": "team-a"}, {"name": "team-b", "storage": {"bucket_prefix": "b/"}}]


def test_role_defaults_are_valid_and_plan_three_buckets():
    assert bucket_errors(DEFAULT_BUCKETS) == []
    plan = bucket_plan(DEFAULT_BUCKETS, TEAMS, {"name_prefix": "acme-", "tags": {"env": "dev"}})
    assert [b["name"] for b in plan] == ["acme-mlflow-artifacts", "acme-models", "acme-datasets"]
    assert [b["key"] for b in plan] == ["mlflow-artifacts", "models", "datasets"]
    assert [b["versioning"] for b in plan] == [True, True, False]
    assert plan[0]["prefixes"] == [] and plan[1]["prefixes"] == ["b/", "team-a/"]
    assert all(b["tags"] == {"env": "dev"} and b["encryption"] == "AES256" for b in plan)
    # mlops_storage.buckets, computed without the team model.
    assert bucket_names(DEFAULT_BUCKETS, "acme-") == {b["key"]: b["name"] for b in plan}


@pytest.mark.parametrize("name", ["ab", "Upper", "under_score", "-start", "end-", "a..b", "a.-b", "192.168.1.1", "x" * 64])
def test_bad_bucket_names(name):
    assert bucket_name_errors(name)


@pytest.mark.parametrize("name", ["abc", "mlops-dev-models", "a.b-c", "x" * 63])
def test_good_bucket_names(name):
    assert bucket_name_errors(name) == []


def test_errors_name_the_field_and_the_fix():
    errors = bucket_errors([
        {"name": "models", "versioning": "yes", "color": 1},
        {"name": "models"},
        {"name": "logs", "lifecycle": [{"id": "r1"}, {"id": "r1", "expiration_days": 0, "status": "On"}]},
        {"name": "tags", "tags": {"bad<key": "v"}},
        "not-a-mapping",
    ], encryption="rot13")
    text = "\n".join(errors)
    assert "storage_s3_encryption: 'rot13'" in text
    assert "storage_buckets[0] (models): unknown key(s) color" in text
    assert "storage_buckets[0] (models).versioning: 'yes' is not a boolean" in text
    assert "storage_buckets[1] (models).name: 'models' is defined twice" in text
    assert "storage_buckets[2] (logs).lifecycle: rule ids repeat" in text
    assert "storage_buckets[2] (logs).lifecycle[0]: sets no action" in text
    assert "lifecycle[1].expiration_days: 0 is not a positive number of days" in text
    assert "lifecycle[1].status: 'On'" in text
    assert "storage_buckets[3] (tags).tags" in text
    assert "storage_buckets[4]: must be a mapping" in text


def test_name_prefix_is_checked_with_the_name():
    assert "storage_bucket_name_prefix" in bucket_errors([{"name": "models"}], name_prefix="Bad_")[0]


def test_lifecycle_configuration_is_what_s3_returns():
    plan = bucket_plan([{"name": "mmm", "lifecycle": [{"id": "all", "expiration_days": 30, "prefix": "tmp/",
                                                       "noncurrent_version_expiration_days": 7,
                                                       "abort_incomplete_multipart_upload_days": 2}]}])
    assert lifecycle_configuration(plan[0]["lifecycle"]) == {"Rules": [{
        "ID": "all", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 30},
        "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}}]}
    assert lifecycle_tasks(plan) == [{"bucket": "mmm", "rule": plan[0]["lifecycle"][0]}]


def test_prefix_markers_and_script_cover_every_bucket_and_team():
    plan = bucket_plan(DEFAULT_BUCKETS, TEAMS)
    assert prefix_objects(plan) == [
        {"bucket": "models", "key": "b/.keep"}, {"bucket": "models", "key": "team-a/.keep"},
        {"bucket": "datasets", "key": "b/.keep"}, {"bucket": "datasets", "key": "team-a/.keep"}]
    script = minio_provision_script(plan)
    for bucket in ("mlflow-artifacts", "models", "datasets"):
        assert f"mc mb --ignore-existing platform/{bucket}\n" in script
        assert f"mc anonymous set none platform/{bucket}\n" in script
    assert "mc version enable platform/models\n" in script
    assert "mc version enable platform/datasets" not in script
    assert "platform/models/team-a/.keep" in script and "platform/datasets/b/.keep" in script
    assert 'mc ilm import platform/models < "$LIFECYCLE_DIR"/models.json' in script
    assert script.startswith("#!/bin/sh\n") and "set -eu" in script


def test_script_quotes_tags_for_the_shell():
    plan = bucket_plan([{"name": "abc", "tags": {"team": "a b"}}])
    assert "mc tag set platform/abc 'team=a b'" in minio_provision_script(plan)


def test_digest_is_stable_and_changes_with_the_plan():
    a = plan_digest(bucket_plan(DEFAULT_BUCKETS, TEAMS))
    assert a == plan_digest(bucket_plan(DEFAULT_BUCKETS, TEAMS)) and len(a) == 8
    assert a != plan_digest(bucket_plan(DEFAULT_BUCKETS, TEAMS[:1]))


MINIO = {"namespace": "store", "name": "objstore", "image": "minio:1", "mc_image": "mc:1", "credentials_secret": "creds",
         "volume_size": "3Gi", "storage_class": "", "host_path": "", "resources": {"requests": {"cpu": "1"}},
         "job_resources": {}, "pod_security": "restricted"}


def _by_kind(objects: list[dict]) -> dict[str, dict]:
    return {o["kind"]: o for o in objects}


def test_minio_objects_reference_one_secret_and_one_script():
    plan = bucket_plan(DEFAULT_BUCKETS, TEAMS)
    objects = minio_objects(plan, MINIO)
    assert [o["kind"] for o in objects] == ["Namespace", "Service", "StatefulSet", "ConfigMap", "Job"]
    kinds = _by_kind(objects)
    assert kinds["Namespace"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert all(o["metadata"].get("namespace", "store") == "store" for o in objects)
    assert all(o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mlops.platform" for o in objects)
    # The Job runs the ConfigMap's script, named after the plan's digest; the ConfigMap holds
    # each bucket's lifecycle as the S3 JSON that `mc ilm import` reads.
    job, config = kinds["Job"], kinds["ConfigMap"]
    assert job["metadata"]["name"] == config["metadata"]["name"] and job["metadata"]["name"].startswith("objstore-buckets-")
    assert job["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] == config["metadata"]["name"]
    assert config["data"]["provision.sh"] == minio_provision_script(plan)
    assert json.loads(config["data"]["models.json"]) == lifecycle_configuration(plan[1]["lifecycle"])
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MINIO_ENDPOINT"]["value"] == "http://objstore.store.svc.cluster.local:9000"
    server = kinds["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]
    for container in (server, job["spec"]["template"]["spec"]["containers"][0]):
        refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
        assert refs == {"creds"}
    assert server["resources"] == {"requests": {"cpu": "1"}}
    # Each object is its own copy: the bundle and YAML dumps never see aliases.
    assert server["securityContext"] is not job["spec"]["template"]["spec"]["containers"][0]["securityContext"]


def test_minio_job_name_follows_the_plan_and_the_client_image():
    plan = bucket_plan(DEFAULT_BUCKETS, TEAMS)
    name = _by_kind(minio_objects(plan, MINIO))["Job"]["metadata"]["name"]
    assert name == _by_kind(minio_objects(bucket_plan(DEFAULT_BUCKETS, TEAMS), MINIO))["Job"]["metadata"]["name"]
    assert name != _by_kind(minio_objects(bucket_plan(DEFAULT_BUCKETS, TEAMS[:1]), MINIO))["Job"]["metadata"]["name"]
    assert name != _by_kind(minio_objects(plan, {**MINIO, "mc_image": "mc:2"}))["Job"]["metadata"]["name"]


@pytest.mark.parametrize(("host_path", "storage_class", "expected"), [
    ("", "", None), ("", "fast", "fast"), ("/var/lib/v", "fast", "mlops-host-path")])
def test_minio_volume(host_path, storage_class, expected):
    objects = minio_objects(bucket_plan(DEFAULT_BUCKETS), {**MINIO, "host_path": host_path, "storage_class": storage_class})
    claim = _by_kind(objects)["StatefulSet"]["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim.get("storageClassName") == expected and claim["resources"]["requests"]["storage"] == "3Gi"
    volume = _by_kind(objects).get("PersistentVolume")
    if host_path:
        assert volume["spec"]["claimRef"] == {"namespace": "store", "name": "data-objstore-0"}
        assert volume["spec"]["hostPath"]["path"] == "/var/lib/v/store-objstore"
    else:
        assert volume is None


def test_minio_secret_holds_the_credentials_base64():
    secret = minio_credentials_secret(MINIO, "root", "pässwörd-1")
    assert (secret["metadata"]["name"], secret["metadata"]["namespace"]) == ("creds", "store")
    assert secret["metadata"]["labels"]["app.kubernetes.io/instance"] == "objstore"
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {
        "MINIO_ROOT_USER": "root", "MINIO_ROOT_PASSWORD": "pässwörd-1"}
