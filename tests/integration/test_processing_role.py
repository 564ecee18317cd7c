"""The processing role (Spark operator, Flink Kubernetes Operator) against the offline cluster, read back.

The CRDs are upstream's own: config/crd/bases of the Go module github.com/kubeflow/spark-operator/v2 and the
fabric8-generated META-INF/fabric8/*-v1.yml of org.apache.flink:flink-kubernetes-operator-api, with their full
OpenAPI schemas (``roles/processing/files/operators.sh crds``). No operator runs (KWOK makes its pods Ready), so:

- every SparkApplication and FlinkDeployment a team would submit (module_utils' examples, from the role's sizes)
  passes a server-side dry run against those schemas, and a wrong field is refused by them;
- pods sized as the operators would size the examples' drivers, executors, JobManagers and TaskManagers pass the
  team namespace's LimitRange and quota admission (dry run), and an oversized one is refused;
- the team's group may create SparkApplications/FlinkDeployments in its own namespace only (SubjectAccessReview,
  and a real impersonated server-side dry-run create), no ClusterRoleBinding names a team subject, the operators'
  ServiceAccounts have rights only in the namespaces that enable them;
- converge -> second converge changed=0 -> check mode reports a change without writing it -> a team that drops an
  engine loses its Roles (pruned).

The role runs as its own instance with its own operator namespaces, so the platform's are untouched.
"""

from __future__ import annotations

import copy
import pathlib
import subprocess
import time

import pytest
import yaml
from ansible_collections.mlops.platform.plugins.module_utils import processing
from ansible_run import recap, run_playbook
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster

ROOT = pathlib.Path(__file__).resolve().parents[2]
OPERATORS_SH = ROOT / "roles" / "processing" / "files" / "operators.sh"
INSTANCE, SPARK_NS, FLINK_NS = "it-processing", "it-proc-spark-operator", "it-proc-flink-operator"
AIRFLOW_NS = "it-proc-airflow"
DAGS = sorted(p.name for p in (ROOT / "roles" / "processing" / "files" / "dags").glob("*.py"))
TEAMS = [
    {"name": "it-proc-a", "access": {"edit": {"groups": ["it-proc-a-engineers"]}, "view": {"groups": ["it-proc-a-viewers"]}},
     "limit_range": {"default": {"cpu": "500m", "memory": "512Mi"}, "default_request": {"cpu": "100m", "memory": "128Mi"},
                     "max": {"cpu": "2", "memory": "2Gi"}},
     "processing": {"spark": True, "flink": True}},
    {"name": "it-proc-b", "access": {"edit": {"groups": ["it-proc-b-engineers"]}}, "processing": {"spark": True}},
    {"name": "it-proc-c", "access": {"edit": {"groups": ["it-proc-c-engineers"]}}},
]
NAMESPACES = [t["name"] for t in TEAMS]
SECRETS_MLFLOW = {"tracking_uri": "http://mlflow.mlflow.svc:5000", "tracking_username": "mlflow", "tracking_password": "it-tracking"}
# Test-only values; the Fernet key a valid one (the secrets role refuses any other).
SECRETS_AIRFLOW = {"enabled": True, "name": "airflow", "namespace": AIRFLOW_NS, "database_username": "airflow",
                   "database_password": "it-db-password", "database_host": "db.invalid", "database_port": 5432,
                   "database_name": "airflow", "fernet_key": "aXQtcHJvY2Vzc2luZy1haXJmbG93LWZlcm5ldC1rZXk=",
                   "jwt_secret": "it-airflow-jwt-secret", "api_secret_key": "it-airflow-api-secret-key",
                   "mlflow_secret_name": "airflow-mlflow"}
DEFAULTS = yaml.safe_load((ROOT / "roles" / "processing" / "defaults" / "main.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def crds_file() -> str:
    done = subprocess.run([str(OPERATORS_SH), "crds"], capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.fixture(scope="module")
def converged(kubeconfig, api_client, crds_file, tmp_path_factory):
    """The teams isolated and the role converged once; everything the test created is removed afterwards."""
    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    try:
        yield converge(tmp_path_factory.mktemp("processing"), kubeconfig, crds_file, TEAMS, isolation=True)
    finally:
        for name in [*NAMESPACES, SPARK_NS, FLINK_NS, AIRFLOW_NS]:
            try:
                core.delete_namespace(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        selector = f"mlops.platform/instance={INSTANCE}"
        for item in rbac.list_cluster_role_binding(label_selector=selector).items:
            rbac.delete_cluster_role_binding(item.metadata.name)
        for item in rbac.list_cluster_role(label_selector=selector).items:
            rbac.delete_cluster_role(item.metadata.name)


def converge(tmp_path: pathlib.Path, kubeconfig: str, crds: str, teams: list, *args: str, isolation: bool = False):
    """processing, after team_isolation (namespaces, quotas, LimitRanges) when ``isolation``, as site.yml orders them."""
    variables = {"teams": teams, "team_isolation_kubeconfig": kubeconfig, "processing_kubeconfig": kubeconfig,
                 "processing_enabled": True, "processing_instance": INSTANCE, "processing_crds_file": crds,
                 "processing_spark_namespace": SPARK_NS, "processing_flink_namespace": FLINK_NS,
                 "processing_airflow": True, "processing_airflow_namespace": AIRFLOW_NS,
                 "processing_airflow_env_from_secrets": ["airflow-mlflow"],
                 # The secrets role after processing, as site.yml orders them: processing makes Airflow's namespace
                 # (and does not wait for the Deployments without their Secret), the secrets role fills it.
                 "secrets_kubeconfig": kubeconfig, "secrets_mlflow": SECRETS_MLFLOW, "secrets_airflow": SECRETS_AIRFLOW}
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(yaml.safe_dump(variables))
    vars_file.chmod(0o600)
    playbook = tmp_path / "processing.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  roles:\n"
                        + ("    - mlops.platform.team_isolation\n" if isolation else "") + "    - mlops.platform.processing\n    - mlops.platform.secrets\n")
    return run_playbook(playbook, "-i", "localhost,", "-c", "local", "-e",
                        "ansible_python_interpreter={{ ansible_playbook_python }}", "-e", f"@{vars_file}", *args)


def settings() -> dict:
    values = {k: v for k, v in DEFAULTS.items() if "{{" not in str(v)}
    return processing.role_settings({**values, "processing_spark": True, "processing_flink": True,
                                     "processing_instance": INSTANCE, "processing_spark_namespace": SPARK_NS,
                                     "processing_flink_namespace": FLINK_NS})


def allowed(api_client, group: str, verb: str, api_group: str, resource: str, namespace: str, user: str = "someone") -> bool:
    review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=user, groups=[group] if group else None,
        resource_attributes=client.V1ResourceAttributes(verb=verb, group=api_group, resource=resource, namespace=namespace)))
    return client.AuthorizationV1Api(api_client).create_subject_access_review(review).status.allowed


def role_names(api_client, namespace: str) -> set[str]:
    found = client.RbacAuthorizationV1Api(api_client).list_namespaced_role(namespace, label_selector="app.kubernetes.io/component=processing")
    return {r.metadata.name for r in found.items}


def test_team_custom_resources_pass_dry_run_against_upstream_crds(api_client, converged):
    assert converged.returncode == 0, converged.stdout[-3000:]
    plan = processing.processing_plan(TEAMS, settings())
    examples = processing.example_objects(plan, settings())
    assert sorted((o["kind"], o["metadata"]["namespace"]) for o in examples) == [
        ("FlinkDeployment", "it-proc-a"), ("SparkApplication", "it-proc-a"), ("SparkApplication", "it-proc-b")]
    custom = client.CustomObjectsApi(api_client)
    for obj in examples:
        group, version = obj["apiVersion"].split("/")
        plural = obj["kind"].lower() + "s"
        # As the team's engineer: the Role allows it and the upstream schema accepts every field
        # (strict field validation: an unknown field would be an error, not a warning).
        engineer = client.ApiClient(api_client.configuration)
        engineer.set_default_header("Impersonate-User", "it-proc-engineer")
        engineer.set_default_header("Impersonate-Group", f"{obj['metadata']['namespace']}-engineers")
        client.CustomObjectsApi(engineer).create_namespaced_custom_object(
            group, version, obj["metadata"]["namespace"], plural, obj, dry_run="All", field_validation="Strict")
        # The same object in another team's namespace is forbidden to that engineer.
        other = "it-proc-c"
        with pytest.raises(ApiException) as refused:
            client.CustomObjectsApi(engineer).create_namespaced_custom_object(
                group, version, other, plural, {**obj, "metadata": {**obj["metadata"], "namespace": other}}, dry_run="All")
        assert refused.value.status == 403

    # The schemas are real: a wrong type and an unknown enum value are refused.
    spark_app = copy.deepcopy(examples[0] if examples[0]["kind"] == "SparkApplication" else examples[1])
    spark_app["spec"]["driver"]["cores"] = "one"
    with pytest.raises(ApiException) as bad:
        custom.create_namespaced_custom_object("sparkoperator.k8s.io", "v1beta2", "it-proc-a", "sparkapplications",
                                               spark_app, dry_run="All")
    assert bad.value.status == 422 and "cores" in bad.value.body
    flink_dep = copy.deepcopy(next(o for o in examples if o["kind"] == "FlinkDeployment"))
    flink_dep["spec"]["flinkVersion"] = "v0_1"
    with pytest.raises(ApiException) as bad:
        custom.create_namespaced_custom_object("flink.apache.org", "v1beta1", "it-proc-a", "flinkdeployments",
                                               flink_dep, dry_run="All")
    assert bad.value.status == 422 and "flinkVersion" in bad.value.body

    # The pods the operators would start for the examples pass the team's LimitRange and quota admission.
    core = client.CoreV1Api(api_client)
    for pod in processing.example_pods(plan, settings()):
        core.create_namespaced_pod(pod["metadata"]["namespace"], pod, dry_run="All")
    # ... and a driver above team a's LimitRange max (2 CPUs, 2Gi) is refused by the API server, as the
    # role's own check refuses the setting before anything is applied.
    big = settings()
    big["spark_application"] = {**big["spark_application"], "driver": {"cpu": "500m", "memory": "2Gi"}}
    assert any("LimitRange max 2Gi" in e for e in processing.resource_errors(plan, big))
    pod = next(p for p in processing.example_pods(plan, big) if p["metadata"]["namespace"] == "it-proc-a")
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod("it-proc-a", pod, dry_run="All")
    assert refused.value.status == 403 and "maximum memory usage per Container is 2Gi" in refused.value.body


def test_operators_and_team_access_converge_and_are_idempotent(kubeconfig, api_client, crds_file, converged, tmp_path):
    first = converged
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert recap(first.stdout)["changed"] >= 1

    # Read back: each operator watches exactly the namespaces that enable it, and is Ready.
    apps = client.AppsV1Api(api_client)
    spark = apps.read_namespaced_deployment(processing.SPARK_OPERATOR, SPARK_NS)
    assert "--namespaces=it-proc-a,it-proc-b" in spark.spec.template.spec.containers[0].args
    assert spark.spec.template.spec.containers[0].image == DEFAULTS["processing_spark_operator_image"]
    flink = apps.read_namespaced_deployment(processing.FLINK_OPERATOR, FLINK_NS)
    assert flink.status.ready_replicas == spark.status.ready_replicas == 1
    config = client.CoreV1Api(api_client).read_namespaced_config_map(f"{processing.FLINK_OPERATOR}-config", FLINK_NS)
    assert "kubernetes.operator.watched.namespaces: it-proc-a\n" in config.data["config.yaml"]
    # Airflow: its three Deployments Ready, the DAG ConfigMap holds exactly the role's files/dags/*.py, the
    # metadata database comes from the Secret (a reference, no value in any object the role applied).
    # The apply did not wait for them (the secrets role wrote their Secret after it): poll, KWOK is quick.
    for _attempt in range(60):
        airflow = {d.metadata.name: d for d in apps.list_namespaced_deployment(AIRFLOW_NS).items}
        if all(d.status.ready_replicas == 1 for d in airflow.values()):
            break
        time.sleep(0.5)
    assert sorted(airflow) == ["airflow-api-server", "airflow-dag-processor", "airflow-scheduler"]
    assert all(d.status.ready_replicas == 1 for d in airflow.values())
    dags = client.CoreV1Api(api_client).read_namespaced_config_map("airflow-dags", AIRFLOW_NS)
    assert sorted(dags.data or {}) == DAGS
    env = {e.name: e for e in airflow["airflow-scheduler"].spec.template.spec.containers[0].env}
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].value_from.secret_key_ref.name == "airflow"
    # The Secret the secrets role wrote holds exactly the keys every Airflow container reads (a missing key would
    # keep the pods from starting), and the DAGs' MLflow Secret is there for envFrom.
    secret = client.CoreV1Api(api_client).read_namespaced_secret("airflow", AIRFLOW_NS)
    for deployment in airflow.values():
        spec = deployment.spec.template.spec
        for container in [*spec.containers, *(spec.init_containers or [])]:
            refs = {e.value_from.secret_key_ref.key for e in container.env
                    if e.value_from and e.value_from.secret_key_ref and e.value_from.secret_key_ref.name == "airflow"}
            assert refs == set(secret.data), (deployment.metadata.name, container.name)
            assert [f.secret_ref.name for f in container.env_from or []] == ["airflow-mlflow"]
    mlflow_secret = client.CoreV1Api(api_client).read_namespaced_secret("airflow-mlflow", AIRFLOW_NS)
    assert sorted(mlflow_secret.data) == ["MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME"]
    assert airflow["airflow-scheduler"].spec.template.spec.init_containers[0].args == ["db", "migrate"]
    assert role_names(api_client, "it-proc-a") == {"mlops-spark-driver", "mlops-spark-operator", "mlops-flink-job",
                                                   "mlops-flink-operator", "mlops-processing-edit", "mlops-processing-view"}
    assert role_names(api_client, "it-proc-b") == {"mlops-spark-driver", "mlops-spark-operator", "mlops-processing-edit",
                                                   "mlops-processing-view"}
    assert role_names(api_client, "it-proc-c") == set()
    core = client.CoreV1Api(api_client)
    assert {sa.metadata.name for sa in core.list_namespaced_service_account("it-proc-a").items} >= {"spark", "flink"}

    # No ClusterRoleBinding names a team's group or a ServiceAccount of a team namespace.
    for binding in client.RbacAuthorizationV1Api(api_client).list_cluster_role_binding().items:
        for subject in binding.subjects or []:
            assert not (subject.kind == "Group" and subject.name.startswith("it-proc-")), binding.metadata.name
            assert subject.namespace not in NAMESPACES, binding.metadata.name

    # The team's group: its own namespace only; the engine it did not enable stays closed; view reads only.
    sparkapps, flinkdeps = ("sparkoperator.k8s.io", "sparkapplications"), ("flink.apache.org", "flinkdeployments")
    assert allowed(api_client, "it-proc-a-engineers", "create", *sparkapps, "it-proc-a")
    assert allowed(api_client, "it-proc-a-engineers", "create", *flinkdeps, "it-proc-a")
    assert allowed(api_client, "it-proc-a-engineers", "create", "flink.apache.org", "flinksessionjobs", "it-proc-a")
    assert not allowed(api_client, "it-proc-a-engineers", "create", *sparkapps, "it-proc-b")
    assert not allowed(api_client, "it-proc-b-engineers", "create", *sparkapps, "it-proc-a")
    assert allowed(api_client, "it-proc-b-engineers", "create", *sparkapps, "it-proc-b")
    assert not allowed(api_client, "it-proc-b-engineers", "create", *flinkdeps, "it-proc-b")
    assert not allowed(api_client, "it-proc-c-engineers", "create", *sparkapps, "it-proc-c")
    assert allowed(api_client, "it-proc-a-viewers", "list", *sparkapps, "it-proc-a")
    assert not allowed(api_client, "it-proc-a-viewers", "create", *sparkapps, "it-proc-a")
    # Drivers and the operators: pods in the namespaces that enable them, nowhere else.
    driver = "system:serviceaccount:it-proc-a:spark"
    assert allowed(api_client, "", "create", "", "pods", "it-proc-a", user=driver)
    assert not allowed(api_client, "", "create", "", "pods", "it-proc-b", user=driver)
    spark_operator = f"system:serviceaccount:{SPARK_NS}:{processing.SPARK_OPERATOR}"
    flink_operator = f"system:serviceaccount:{FLINK_NS}:{processing.FLINK_OPERATOR}"
    assert allowed(api_client, "", "create", "", "pods", "it-proc-b", user=spark_operator)
    assert not allowed(api_client, "", "create", "", "pods", "it-proc-c", user=spark_operator)
    assert allowed(api_client, "", "update", "flink.apache.org", "flinkdeployments", "it-proc-a", user=flink_operator)
    assert not allowed(api_client, "", "create", "", "pods", "it-proc-b", user=flink_operator)

    second = converge(tmp_path, kubeconfig, crds_file, TEAMS)
    assert recap(second.stdout)["changed"] == 0, second.stdout[-3000:]

    # Check mode: team b asks for Flink; reported, not written.
    more = copy.deepcopy(TEAMS)
    more[1]["processing"]["flink"] = True
    check = converge(tmp_path, kubeconfig, crds_file, more, "--check")
    assert check.returncode == 0 and recap(check.stdout)["changed"] == 1, check.stdout[-3000:]
    assert "mlops-flink-job" not in role_names(api_client, "it-proc-b")

    # Team b drops Spark: its Roles, bindings and ServiceAccount go; the operator stops watching it.
    fewer = copy.deepcopy(TEAMS)
    del fewer[1]["processing"]
    gone = converge(tmp_path, kubeconfig, crds_file, fewer)
    assert recap(gone.stdout)["changed"] >= 1, gone.stdout[-3000:]
    assert role_names(api_client, "it-proc-b") == set()
    assert "--namespaces=it-proc-a" in apps.read_namespaced_deployment(processing.SPARK_OPERATOR, SPARK_NS).spec.template.spec.containers[0].args
