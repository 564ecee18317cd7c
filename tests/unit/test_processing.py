"""The processing role's model: pod sizes as the operators compute them, the checks against a team's LimitRange
and quota, the team key, and the objects (no team subject in a cluster-wide binding, operators watching only the
enabled namespaces, every object labelled)."""

from __future__ import annotations

import copy
import pathlib

import yaml
from ansible_collections.mlops.platform.plugins.module_utils import processing

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULTS = yaml.safe_load((ROOT / "roles" / "processing" / "defaults" / "main.yml").read_text(encoding="utf-8"))
VALUES = {**{k: v for k, v in DEFAULTS.items() if "{{" not in str(v)}, "processing_spark": True, "processing_flink": True}
TEAMS = [
    {"name": "team-a", "access": {"edit": {"groups": ["a-eng"]}, "view": {"groups": ["a-view"]}},
     "service_accounts": [{"name": "runner", "access": "edit"}], "processing": {"spark": True, "flink": True}},
    {"name": "team-b", "namespaces": ["b-one", "b-two"], "access": {"admin": {"users": ["bob"]}}, "processing": {"spark": True}},
    {"name": "team-c"},
]


def local_vars() -> dict:
    out: dict = {}
    for path in sorted((ROOT / "inventories" / "local" / "group_vars" / "all").glob("*.yml")):
        out.update(yaml.safe_load(path.read_text()))
    return out


def settings(**extra) -> dict:
    return processing.role_settings({**VALUES, **extra})


def test_spark_pods_ask_memory_plus_overhead_as_spark_does():
    small = processing.spark_pod({"cpu": "500m", "cpu_limit": "1", "memory": "512Mi"})
    assert small == {"requests": {"cpu": "500m", "memory": "896Mi"}, "limits": {"cpu": "1", "memory": "896Mi"}, "overhead": "384Mi"}
    # 10 % above 3840Mi; rounded up to whole MiB.
    assert processing.spark_pod({"cpu": "2", "memory": "8Gi"})["requests"]["memory"] == "9012Mi"
    assert processing.spark_pod({"cpu": "1", "memory": "1Gi", "memory_overhead": "1Gi"})["limits"] == {"cpu": "1", "memory": "2Gi"}


def test_examples_render_spark_and_flink_notation():
    plan = processing.processing_plan(TEAMS, settings())
    app, dep = processing.example_objects(plan, settings())[:2]
    assert app["spec"]["driver"] | {"labels": None, "securityContext": None} == {
        "cores": 1, "coreRequest": "500m", "coreLimit": "1", "memory": "512m", "memoryOverhead": "384m",
        "serviceAccount": "spark", "labels": None, "securityContext": None}
    assert dep["spec"]["jobManager"]["resource"] == {"cpu": 0.5, "memory": "1024m"}
    assert dep["spec"]["serviceAccount"] == "flink"


def test_defaults_fit_the_local_teams_and_an_oversized_application_is_named():
    local = local_vars()
    values = {**VALUES, "processing_teams": local["teams"], "processing_crds_file": ""}
    assert processing.variable_errors(values, local) == []
    big = copy.deepcopy(values)
    big["processing_flink_deployment"]["taskmanager"] = {"cpu": "4", "memory": "6Gi", "replicas": 3}
    errors = processing.variable_errors(big, local)
    assert "processing_flink_deployment in team 'financial-ml': one application's limits.cpu 12500m is above the team's quota 8. " \
           "Fix: make the application smaller or raise the team's limit_range/quota" in errors
    # Team financial-mlops-pytorch does not enable Flink: nothing about it.
    assert not [e for e in errors if "financial-mlops-pytorch" in e]
    tight = copy.deepcopy(local["teams"])
    tight[1]["limit_range"] = {"default": {"cpu": "1", "memory": "1Gi"}, "default_request": {"cpu": "250m", "memory": "1Gi"},
                               "min": {"memory": "1Gi"}}
    errors = processing.variable_errors({**values, "processing_teams": tight}, local)
    assert errors == ["processing_spark_application in team 'financial-mlops-pytorch': the driver pod's memory request 896Mi "
                      "is below the team's LimitRange min 1Gi. Fix: make the application smaller or raise the team's "
                      "limit_range/quota",
                      "processing_spark_application in team 'financial-mlops-pytorch': the executor pod's memory request "
                      "896Mi is below the team's LimitRange min 1Gi. Fix: make the application smaller or raise the "
                      "team's limit_range/quota"]


def test_settings_and_team_keys_are_checked():
    bad_teams = [{"name": "x", "processing": {"spark": "yes", "airflow": True}}, {"name": "y", "processing": ["spark"]}]
    errors = processing.variable_errors({**VALUES, "processing_teams": bad_teams, "processing_crds_file": "/nonexistent.json",
                                         "processing_flink_namespace": "spark-operator", "processing_airflow": True,
                                         "processing_airflow_namespace": "kube-system",
                                         "processing_airflow_dags": {"bad name.py": "x" * 1100 * 1024},
                                         "processing_instance": "Bad_Name",
                                         "processing_spark_application": {"driver": {"cpu": "lots"}}}, {})
    joined = "\n".join(errors)
    for part in ("processing_airflow_namespace: 'kube-system' is a Kubernetes system namespace",
                 "processing_airflow_dags: 'bad name.py' is not a ConfigMap key",
                 "processing_airflow_dags: 1126400 bytes of DAGs do not fit in one ConfigMap",
                 "processing_instance: 'Bad_Name' is not a DNS-1123 label",
                 "processing_flink_namespace: the same as processing_spark_namespace. Fix: give each component its own",
                 "processing_crds_file: /nonexistent.json does not exist",
                 "processing_spark_application.driver.cpu: 'lots' is not a Kubernetes quantity",
                 "processing_spark_application.driver.memory: missing",
                 "processing_spark_application.executor: must be a mapping",
                 "team 'x': processing: unknown key(s) airflow", "team 'x': processing.spark: 'yes' is not a boolean",
                 "team 'y': processing: must be a mapping"):
        assert part in joined, part
    # A team namespace is no place for an operator; everything off checks nothing.
    assert processing.variable_errors({**VALUES, "processing_teams": TEAMS, "processing_spark_namespace": "b-two"}, {}) == [
        "processing_spark_namespace: 'b-two' is a team namespace. Fix: give the operator a namespace of its own"]
    assert processing.variable_errors({"processing_enabled": False, "processing_teams": bad_teams}, {}) == []


def test_objects_keep_teams_namespaced_and_operators_scoped():
    plan = processing.processing_plan(TEAMS, settings(processing_flink=False))
    assert plan["spark_namespaces"] == ["team-a", "b-one", "b-two"] and plan["flink_namespaces"] == []
    objects = processing.processing_objects(plan, settings(processing_flink=False))
    assert objects[0]["kind"] == "Namespace"
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "mlops.platform" and labels["mlops.platform/instance"] == "processing"
        assert labels["app.kubernetes.io/component"] == "processing"
        if obj["kind"] == "ClusterRoleBinding":
            assert all(s["namespace"] == "spark-operator" for s in obj["subjects"])
        assert obj["kind"] != "Deployment" or obj["metadata"]["name"] != processing.FLINK_OPERATOR
        assert obj["metadata"].get("namespace") != "team-c"
    by_name = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}
    args = by_name[("Deployment", "spark-operator", processing.SPARK_OPERATOR)]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespaces=team-a,b-one,b-two" in args
    edit = by_name[("RoleBinding", "team-a", processing.SUBMIT_ROLE)]["subjects"]
    assert {(s["kind"], s["name"]) for s in edit} == {("Group", "a-eng"), ("ServiceAccount", "runner")}
    assert [s["name"] for s in by_name[("RoleBinding", "b-two", processing.SUBMIT_ROLE)]["subjects"]] == ["bob"]
    assert ("RoleBinding", "b-one", processing.VIEW_ROLE) not in by_name  # nobody views team b
    rules = by_name[("Role", "team-a", processing.SUBMIT_ROLE)]["rules"]
    assert rules[0] == {"apiGroups": ["sparkoperator.k8s.io"], "resources": ["sparkapplications", "scheduledsparkapplications"],
                        "verbs": processing.ALL_VERBS}
    assert not [r for r in rules if "flink.apache.org" in r["apiGroups"]]


def test_an_operator_without_enabled_teams_watches_only_its_own_namespace():
    plan = processing.processing_plan([TEAMS[2]], settings())
    objects = processing.processing_objects(plan, settings())
    spark = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == processing.SPARK_OPERATOR)
    assert "--namespaces=spark-operator" in spark["spec"]["template"]["spec"]["containers"][0]["args"]
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert "kubernetes.operator.watched.namespaces: flink-operator\n" in config["data"]["config.yaml"]


def test_the_role_prunes_every_kind_it_applies():
    tasks = yaml.safe_load((ROOT / "roles" / "processing" / "tasks" / "main.yml").read_text(encoding="utf-8"))
    apply = next(t for t in tasks if "mlops.platform.k8s_bundle" in t)
    pruned = {(k["api_version"], k["kind"]) for k in apply["mlops.platform.k8s_bundle"]["prune"]["kinds"]}
    assert pruned == set(processing.PRUNE_KINDS)
    plan = processing.processing_plan(TEAMS, settings())
    applied = {(o["apiVersion"], o["kind"]) for o in processing.processing_objects(plan, settings())}
    assert applied - pruned == {("v1", "Namespace")}


def test_airflow_reads_its_secret_and_ships_the_dag_files(tmp_path):
    assert processing.dag_files([]) == {}
    (tmp_path / "b.py").write_text("# b\n")
    (tmp_path / "a.py").write_text("# a\n")
    dags = processing.dag_files([str(tmp_path / "b.py"), str(tmp_path / "a.py")])
    assert dags == {"a.py": "# a\n", "b.py": "# b\n"}
    objects = processing.processing_objects(processing.processing_plan([], settings(processing_spark=False, processing_flink=False)),
                                            settings(processing_spark=False, processing_flink=False, processing_airflow=True,
                                                     processing_airflow_dags=dags))
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert kinds == {("Namespace", "airflow"), ("ServiceAccount", "airflow"), ("ConfigMap", "airflow-dags"),
                     ("Service", "airflow-api-server"), ("Deployment", "airflow-api-server"), ("Deployment", "airflow-scheduler"),
                     ("Deployment", "airflow-dag-processor")}
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert config["data"] == dags
    scheduler = next(o for o in objects if o["metadata"]["name"] == "airflow-scheduler")["spec"]["template"]["spec"]
    env = {e["name"]: e for e in scheduler["containers"][0]["env"]}
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == {
        "name": "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "valueFrom": {"secretKeyRef": {"name": "airflow", "key": "sql_alchemy_conn"}}}
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow.mlflow.svc:5000"
    assert scheduler["initContainers"][0]["args"] == ["db", "migrate"]


def test_teardown_deletes_the_jobs_of_enabled_namespaces_only():
    jobs = processing.teardown_jobs(TEAMS, {"processing_spark": True, "processing_flink": False})
    assert {(j["namespace"], j["kind"]) for j in jobs} == {
        (ns, kind) for ns in ("team-a", "b-one", "b-two") for kind in ("ScheduledSparkApplication", "SparkApplication")}
    assert processing.teardown_jobs(TEAMS, {}) == []
    both = processing.teardown_jobs(TEAMS[:1], {"processing_enabled": True})
    assert [j["kind"] for j in both][-3:] == ["FlinkSessionJob", "FlinkDeployment", "FlinkStateSnapshot"]
