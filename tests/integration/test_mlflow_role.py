"""The mlflow role on the offline cluster: objects read back, RBAC limited to its own Secrets,
the quota check refusing before any change, and a second run that changes nothing."""

from __future__ import annotations

import secrets

import pytest
from ansible_run import recap, run_role

pytestmark = pytest.mark.cluster

NS = "it-mlflow-role"
PV = f"{NS}-mlflow-postgresql-data"


def _vars(kubeconfig: str, **extra) -> dict:
    return {
        "mlflow_kubeconfig": kubeconfig,
        "mlflow_context": "",
        "mlflow_namespace": NS,
        "mlflow_postgresql_host_path": "/tmp/it-mlflow-role",
        "mlflow_admin_password": secrets.token_urlsafe(12),
        "mlflow_flask_secret_key": secrets.token_hex(16),
        "mlflow_database": {"username": "mlflow", "password": secrets.token_urlsafe(12),
                            "host": f"mlflow-postgresql.{NS}.svc.cluster.local", "port": 5432, "database": "mlflow",
                            "driver": "psycopg2", "scheme": "postgresql+psycopg2", "connection_url": ""},
        "mlflow_s3_access_key_id": "it-key",
        "mlflow_s3_secret_access_key": secrets.token_urlsafe(12),
        "mlflow_wait_timeout": 120,
        **extra,
    }


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


def test_mlflow_role_on_the_cluster(tmp_path, kubeconfig, api_client, cleanup):
    from kubernetes import client

    variables = _vars(kubeconfig)
    first = run_role("mlops.platform.mlflow", tmp_path, variables)
    assert first.returncode == 0, first.stdout[-4000:]
    # Secret values never reach the output.
    for value in (variables["mlflow_admin_password"], variables["mlflow_database"]["password"]):
        assert value not in first.stdout

    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)
    deployment = apps.read_namespaced_deployment("mlflow", NS)
    assert deployment.status.ready_replicas == 1
    assert apps.read_namespaced_stateful_set("mlflow-postgresql", NS).status.ready_replicas == 1
    assert deployment.metadata.labels["app.kubernetes.io/managed-by"] == "mlops.platform"
    assert deployment.metadata.labels["app.kubernetes.io/part-of"] == "mlops-platform"
    assert [c.name for c in deployment.spec.template.spec.init_containers] == ["db-upgrade", "check-artifacts"]
    assert core.read_namespaced_service("mlflow", NS).spec.ports[0].port == 5000
    assert core.read_namespace(NS).metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert set(core.read_namespaced_secret("mlflow-database-secret", NS).data) == {
        "username", "password", "host", "port", "database", "driver", "connection-url"}

    # RBAC: the ServiceAccount reads its own Secrets and nothing else.
    authz = client.AuthorizationV1Api(api_client)

    def allowed(name: str, verb: str = "get") -> bool:
        review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
            user=f"system:serviceaccount:{NS}:mlflow",
            resource_attributes=client.V1ResourceAttributes(namespace=NS, verb=verb, resource="secrets", name=name)))
        return authz.create_subject_access_review(review).status.allowed

    assert allowed("mlflow-server") and allowed("mlflow-database-secret")
    assert not allowed("other-secret") and not allowed("mlflow-server", "update")

    second = run_role("mlops.platform.mlflow", tmp_path, variables)
    assert second.returncode == 0 and recap(second.stdout)["changed"] == 0, second.stdout[-4000:]


def test_quota_check_refuses_before_any_change(tmp_path, kubeconfig, api_client):
    from kubernetes import client

    variables = _vars(kubeconfig, mlflow_namespace="it-mlflow-noquota",
                      mlflow_quota={"requests": {"cpu": "100m"}, "limits": {}, "count": {}})
    run = run_role("mlops.platform.mlflow", tmp_path, variables)
    assert run.returncode != 0
    assert "requests.cpu: the pods need" in run.stdout and "mlflow_quota.requests.cpu is 100m" in run.stdout
    with pytest.raises(client.ApiException) as missing:
        client.CoreV1Api(api_client).read_namespace("it-mlflow-noquota")
    assert missing.value.status == 404
