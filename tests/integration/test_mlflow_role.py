"""The mlflow role on the offline cluster: check mode predicting the objects without writing,
objects read back, RBAC limited to its own Secrets, a second run that changes nothing, the
quota check refusing before any change, a database Secret from elsewhere that is missing named
(after everything else is applied, without waiting), and Secret values never printed."""

from __future__ import annotations

import secrets

import pytest
from ansible_run import recap, run_role

pytestmark = pytest.mark.cluster

NS = "it-mlflow-role"
EXTERNAL_NS = "it-mlflow-external"
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


def _secret_values(variables: dict) -> list[str]:
    return [variables["mlflow_admin_password"], variables["mlflow_flask_secret_key"],
            variables["mlflow_database"]["password"], variables["mlflow_s3_secret_access_key"]]


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
    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)

    # Check mode before the namespace exists: every object reported as created, nothing written.
    predicted = run_role("mlops.platform.mlflow", tmp_path, variables, "--check", "--diff", "-v")
    assert predicted.returncode == 0 and recap(predicted.stdout)["changed"] > 0, predicted.stdout[-4000:]
    for obj in (f"Namespace/{NS}", f"Secret/{NS}/mlflow-server", f"Secret/{NS}/mlflow-database-secret",
                f"StatefulSet/{NS}/mlflow-postgresql", f"Deployment/{NS}/mlflow"):
        assert f"created {obj}" in predicted.stdout, predicted.stdout[-4000:]
    with pytest.raises(client.ApiException) as missing:
        core.read_namespace(NS)
    assert missing.value.status == 404

    first = run_role("mlops.platform.mlflow", tmp_path, variables)
    assert first.returncode == 0, first.stdout[-4000:]
    # Secret values never reach the output, not even as a --diff -v.
    for value in _secret_values(variables):
        assert value not in first.stdout and value not in predicted.stdout

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
    checked = run_role("mlops.platform.mlflow", tmp_path, variables, "--check", "--diff")
    assert checked.returncode == 0 and recap(checked.stdout)["changed"] == 0, checked.stdout[-4000:]


@pytest.fixture()
def external_cleanup(api_client):
    from kubernetes import client

    yield
    try:
        client.CoreV1Api(api_client).delete_namespace(EXTERNAL_NS)
    except client.ApiException as err:
        if err.status != 404:
            raise


def test_missing_external_database_secret_is_named_after_the_apply(tmp_path, kubeconfig, api_client, external_cleanup):
    """mlflow_database_secret_create: false - the role applies everything, does not wait, and names the Secret."""
    from kubernetes import client

    variables = _vars(kubeconfig, mlflow_namespace=EXTERNAL_NS, mlflow_postgresql_enabled=False,
                      mlflow_database_secret_create=False)
    run = run_role("mlops.platform.mlflow", tmp_path, variables)
    assert run.returncode != 0
    assert f"the Secret {EXTERNAL_NS}/mlflow-database-secret (seed 003 keys, connection-url) does not exist" in run.stdout
    assert "secrets_mlflow_database.enabled: true" in run.stdout and "mlflow_database_secret_create: true" in run.stdout
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    assert apps.read_namespaced_deployment("mlflow", EXTERNAL_NS).metadata.labels["app.kubernetes.io/instance"] == "mlflow"
    assert core.read_namespaced_secret("mlflow-server", EXTERNAL_NS).data
    with pytest.raises(client.ApiException) as missing:
        core.read_namespaced_secret("mlflow-database-secret", EXTERNAL_NS)
    assert missing.value.status == 404

    # Provided from elsewhere (as the secrets role would), the next run waits until the server is ready.
    core.create_namespaced_secret(EXTERNAL_NS, client.V1Secret(
        metadata=client.V1ObjectMeta(name="mlflow-database-secret"),
        string_data={"connection-url": "postgresql+psycopg2://mlflow:x@db.example:5432/mlflow"}))
    again = run_role("mlops.platform.mlflow", tmp_path, variables)
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-4000:]
    assert apps.read_namespaced_deployment("mlflow", EXTERNAL_NS).status.ready_replicas == 1
    for value in _secret_values(variables):
        assert value not in run.stdout and value not in again.stdout


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
