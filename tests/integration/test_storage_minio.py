"""The storage role's minio backend on the offline cluster: check mode predicting the objects
without writing, MinIO Ready with its claim bound, the provisioning Job complete, a changed
bucket plan replacing the Job (the old one pruned), no change on rerun, and the credentials
never printed, not even with --diff -v."""

from __future__ import annotations

import secrets

import pytest
from ansible_run import recap, run_role

pytestmark = pytest.mark.cluster

NS = "it-storage-minio"
PV = f"{NS}-minio-data"
SELECTOR = "app.kubernetes.io/component=bucket-provisioning"


def _run(tmp_path, kubeconfig: str, teams: list, password: str, *args: str, output: list | None = None):
    run = run_role("mlops.platform.storage", tmp_path, {
        "teams": teams, "storage_kubeconfig": kubeconfig, "storage_context": "", "storage_minio_namespace": NS,
        "storage_minio_host_path": "/tmp/it-storage", "storage_access_key_id": "it-admin",
        "storage_secret_access_key": password, "storage_wait_timeout": 120,
    }, *args)
    assert run.returncode == 0, run.stdout[-4000:]
    assert password not in run.stdout and password not in run.stderr
    if output is not None:
        output.append(run.stdout)
    return recap(run.stdout)["changed"]


@pytest.fixture()
def cleanup(api_client):
    from kubernetes import client

    yield
    core = client.CoreV1Api(api_client)
    for call, args in ((core.delete_namespace, (NS,)), (core.delete_persistent_volume, (PV,))):
        try:
            call(*args)
        except client.ApiException as err:
            if err.status != 404:
                raise


def test_minio_converges_and_a_new_plan_replaces_the_job(tmp_path, kubeconfig, api_client, cleanup):
    from kubernetes import client

    apps, batch, core = client.AppsV1Api(api_client), client.BatchV1Api(api_client), client.CoreV1Api(api_client)
    password = secrets.token_urlsafe(16)
    # Check mode on a cluster without the namespace: every object reported as created, nothing written.
    output: list[str] = []
    assert _run(tmp_path, kubeconfig, [{"name": "team-a"}], password, "--check", "--diff", "-v", output=output) > 0
    for obj in (f"Namespace/{NS}", f"Secret/{NS}/minio-credentials", f"StatefulSet/{NS}/minio", f"Job/{NS}/minio-buckets-"):
        assert f"created {obj}" in output[0], output[0][-4000:]
    with pytest.raises(client.ApiException) as missing:
        core.read_namespace(NS)
    assert missing.value.status == 404

    assert _run(tmp_path, kubeconfig, [{"name": "team-a"}], password) > 0

    assert apps.read_namespaced_stateful_set("minio", NS).status.ready_replicas == 1
    assert core.read_namespaced_persistent_volume_claim("data-minio-0", NS).status.phase == "Bound"
    assert core.read_namespaced_service("minio", NS).spec.ports[0].port == 9000
    secret = core.read_namespaced_secret("minio-credentials", NS)
    assert set(secret.data) == {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"}
    jobs = batch.list_namespaced_job(NS, label_selector=SELECTOR).items
    assert len(jobs) == 1 and jobs[0].status.succeeded == 1
    first_job = jobs[0].metadata.name
    script = core.read_namespaced_config_map(first_job, NS).data["provision.sh"]
    assert "platform/models/team-a/.keep" in script and "team-b" not in script

    # A new team changes the plan: a new Job provisions it and the old Job and ConfigMap go.
    assert _run(tmp_path, kubeconfig, [{"name": "team-a"}, {"name": "team-b"}], password) > 0
    jobs = [j for j in batch.list_namespaced_job(NS, label_selector=SELECTOR).items if not j.metadata.deletion_timestamp]
    assert [j.metadata.name for j in jobs] != [first_job] and len(jobs) == 1
    assert "platform/datasets/team-b/.keep" in core.read_namespaced_config_map(jobs[0].metadata.name, NS).data["provision.sh"]
    assert first_job not in [c.metadata.name for c in core.list_namespaced_config_map(NS, label_selector=SELECTOR).items]

    assert _run(tmp_path, kubeconfig, [{"name": "team-a"}, {"name": "team-b"}], password) == 0
    assert _run(tmp_path, kubeconfig, [{"name": "team-a"}, {"name": "team-b"}], password, "--check", "--diff") == 0
