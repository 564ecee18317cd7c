"""The storage role's s3 backend against a moto server on loopback (a real S3 API over HTTP).

Runs the role twice with endpoint_url pointing at moto, reads every bucket setting back with
boto3 (versioning, default encryption, public access block, ownership, lifecycle, tags, team
prefix markers) and checks that the second run changes nothing.
"""

from __future__ import annotations

import json

import pytest
from ansible_run import recap

TEAMS = [
    {"name": "team-a"},
    {"name": "team-b", "storage": {"bucket_prefix": "b-data/"}},
]
PREFIX = "it-mlops-"


def _playbook(tmp_path, extra: dict) -> tuple:
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps({
        "teams": TEAMS,
        "mlops_environment": "it",
        "storage_backend": "s3",
        "storage_bucket_name_prefix": PREFIX,
        **extra,
    }))
    playbook = tmp_path / "storage.yml"
    playbook.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  roles:\n"
        "    - role: mlops.platform.storage\n"
        "  tasks:\n"
        "    - name: Save the published fact\n"
        "      ansible.builtin.copy:\n"
        f"        dest: {tmp_path / 'fact.json'}\n"
        "        content: \"{{ mlops_storage | to_json }}\"\n"
        "        mode: '0600'\n"
    )
    return playbook, vars_file


def _run(ansible_playbook, playbook, vars_file):
    proc = ansible_playbook(playbook, "-i", "localhost,", "-c", "local",
                            "-e", "ansible_python_interpreter={{ ansible_playbook_python }}",
                            "-e", f"@{vars_file}")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture()
def s3(moto_endpoint, aws_env):
    import boto3

    return boto3.client("s3", endpoint_url=moto_endpoint, region_name=aws_env["AWS_DEFAULT_REGION"])


def test_s3_buckets_configured_and_idempotent(tmp_path, ansible_playbook, moto_endpoint, aws_env, s3):
    playbook, vars_file = _playbook(tmp_path, {"storage_s3_endpoint_url": moto_endpoint,
                                               "storage_s3_region": aws_env["AWS_DEFAULT_REGION"]})
    first = _run(ansible_playbook, playbook, vars_file)
    assert recap(first)["changed"] > 0

    fact = json.loads((tmp_path / "fact.json").read_text())
    assert fact["backend"] == "s3"
    assert fact["buckets"] == {"mlflow-artifacts": PREFIX + "mlflow-artifacts", "models": PREFIX + "models",
                               "datasets": PREFIX + "datasets"}

    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert set(fact["buckets"].values()) <= names

    for short, versioned in (("mlflow-artifacts", True), ("models", True), ("datasets", False)):
        bucket = PREFIX + short
        status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
        assert (status == "Enabled") is versioned, (bucket, status)
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                         "RestrictPublicBuckets": True}
        tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
        assert tags == {"app.kubernetes.io/managed-by": "mlops.platform", "app.kubernetes.io/part-of": "mlops-platform",
                        "mlops.platform/environment": "it", "mlops.platform/cost-center": "platform"}
        lifecycle = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
        assert lifecycle["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
        assert lifecycle["abort-incomplete-uploads"]["Status"] == "Enabled"
    noncurrent = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=PREFIX + "models")["Rules"]}
    assert noncurrent["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 90

    for bucket in (PREFIX + "models", PREFIX + "datasets"):
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
        assert keys == {"team-a/.keep", "b-data/.keep"}
    assert "Contents" not in s3.list_objects_v2(Bucket=PREFIX + "mlflow-artifacts")

    second = _run(ansible_playbook, playbook, vars_file)
    assert recap(second)["changed"] == 0, second[-4000:]


def test_s3_invalid_bucket_fails_before_any_change(tmp_path, ansible_playbook, moto_endpoint, aws_env, s3):
    before = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    playbook, vars_file = _playbook(tmp_path, {
        "storage_s3_endpoint_url": moto_endpoint,
        "storage_bucket_name_prefix": "it-bad-",
        "storage_buckets": [{"name": "ok-bucket"}, {"name": "Bad_Name", "lifecycle": [{"id": "x"}]}],
    })
    proc = ansible_playbook(playbook, "-i", "localhost,", "-c", "local",
                            "-e", "ansible_python_interpreter={{ ansible_playbook_python }}", "-e", f"@{vars_file}")
    assert proc.returncode != 0
    assert "storage_buckets[1] (Bad_Name).name" in proc.stdout
    assert "storage_buckets[1] (Bad_Name).lifecycle[0]: sets no action" in proc.stdout
    assert {b["Name"] for b in s3.list_buckets()["Buckets"]} == before
