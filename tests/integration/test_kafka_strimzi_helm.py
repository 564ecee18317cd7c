"""The kafka role's Strimzi operator install (Helm) on the offline cluster, with a chart archive of our own.

Strimzi's chart cannot be downloaded here, so the test packages a tiny chart with the real chart's name and the
pinned version: its crds/ are Strimzi's own CRDs (io.strimzi:api 0.48.0, ``roles/kafka/files/broker.sh crds``),
its template only records the values it was given in a ConfigMap. The role installs it through the air-gapped
path (``kafka_strimzi_chart_archive``) with the helm binary that scripts/helm.sh builds, then applies the Kafka
resources against the CRDs the chart brought. What happened is read back from helm and the API server: a
second converge runs no helm upgrade, check mode changes nothing, an older chart version is refused before Helm
runs, and an archive of another version fails the settings check.
"""

from __future__ import annotations

import json
import pathlib
import subprocess

import pytest
import yaml
from ansible_run import recap, run_role
from k8s_wait import fresh_namespace
from kubernetes import client

pytestmark = pytest.mark.cluster

NS = "it-strimzi-helm"
CHART = "strimzi-kafka-operator"
VERSION = "0.48.0"
RECORD = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Chart.Name }}-values
data:
  chart: "{{ .Chart.Name }}-{{ .Chart.Version }}"
  watchNamespaces: {{ .Values.watchNamespaces | toJson | quote }}
  extra: {{ .Values.extra | quote }}
"""


def package(helm: str, workdir: pathlib.Path, version: str, crds: list[dict]) -> pathlib.Path:
    chart = workdir / CHART
    (chart / "templates").mkdir(parents=True)
    (chart / "crds").mkdir()
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {CHART}\nversion: {version}\nappVersion: {version}\n")
    (chart / "values.yaml").write_text('watchNamespaces: []\nextra: ""\n')
    (chart / "templates" / "record.yaml").write_text(RECORD)
    for crd in crds:
        (chart / "crds" / f"{crd['metadata']['name']}.yaml").write_text(yaml.safe_dump(crd))
    dest = workdir / "dist"
    subprocess.run([helm, "package", str(chart), "--destination", str(dest)], check=True, capture_output=True)
    archive = dest / f"{CHART}-{version}.tgz"
    assert archive.is_file()
    return archive


@pytest.fixture(scope="module")
def archives(helm, strimzi_crds_file, tmp_path_factory) -> dict:
    crds = json.loads(pathlib.Path(strimzi_crds_file).read_text())["items"]
    assert {c["spec"]["names"]["kind"] for c in crds} >= {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"}
    work = tmp_path_factory.mktemp("strimzi-chart")
    return {"current": str(package(helm, work, VERSION, crds)), "old": str(package(helm, work / "old", "0.47.0", crds))}


@pytest.fixture(scope="module")
def cleanup(api_client):
    with fresh_namespace(api_client, NS):
        yield


def converge(tmp_path: pathlib.Path, variables: dict, *args: str):
    tmp_path.mkdir(parents=True, exist_ok=True)
    return run_role("mlops.platform.kafka", tmp_path, variables, *args)


def role_vars(kubeconfig: str, helm: str, archive: str, **extra) -> dict:
    return {"kafka_kubeconfig": kubeconfig, "kafka_namespace": NS, "kafka_mode": "strimzi", "teams": [],
            "kafka_strimzi_crds_file": "", "kafka_strimzi_install": True, "kafka_strimzi_chart_archive": archive,
            "kafka_helm_binary": helm, "kafka_helm_timeout": "2m", **extra}


def releases(helm: str, kubeconfig: str) -> dict:
    proc = subprocess.run([helm, "list", "-n", NS, "-o", "json", "--kubeconfig", kubeconfig],
                          capture_output=True, text=True, check=True)
    return {r["name"]: r for r in json.loads(proc.stdout)}


def recorded(api_client) -> dict:
    return client.CoreV1Api(api_client).read_namespaced_config_map(f"{CHART}-values", NS).data


def test_air_gapped_operator_install_is_pinned_idempotent_and_guarded(
        helm, archives, cleanup, kubeconfig, api_client, tmp_path):
    variables = role_vars(kubeconfig, helm, archives["current"], kafka_strimzi_watch_namespaces=["it-strimzi-team"])

    # Check mode on an empty cluster: nothing is installed.
    checked = converge(tmp_path / "check", variables, "--check")
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    assert releases(helm, kubeconfig) == {}

    first = converge(tmp_path / "1", variables)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert recap(first.stdout)["changed"] == 2  # the release, then the Kafka resources on the CRDs it brought
    found = releases(helm, kubeconfig)
    assert {n: (r["chart"], r["status"], r["revision"]) for n, r in found.items()} == {
        CHART: (f"{CHART}-{VERSION}", "deployed", "1")}
    assert recorded(api_client) == {"chart": f"{CHART}-{VERSION}", "watchNamespaces": '["it-strimzi-team"]', "extra": ""}
    kafka = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        "kafka.strimzi.io", "v1beta2", NS, "kafkas", "mlops")
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"

    # Second converge: no helm upgrade (revision 1), nothing changed.
    second = converge(tmp_path / "2", variables)
    assert recap(second.stdout)["changed"] == 0, second.stdout[-3000:]
    assert releases(helm, kubeconfig)[CHART]["revision"] == "1"

    # Check mode with a changed value: reported, not applied.
    changed_vars = {**variables, "kafka_strimzi_values": {"extra": "yes"}}
    checked = converge(tmp_path / "check2", changed_vars, "--check")
    assert checked.returncode == 0 and recap(checked.stdout)["changed"] == 1, checked.stdout[-3000:]
    assert releases(helm, kubeconfig)[CHART]["revision"] == "1"
    assert recorded(api_client)["extra"] == ""

    # An older chart version: refused before Helm runs, the release untouched.
    older = converge(tmp_path / "old", role_vars(
        kubeconfig, helm, archives["old"], kafka_strimzi_chart_version="0.47.0"))
    assert older.returncode != 0
    assert "kafka_strimzi_chart_version 0.47.0 < live 0.48.0 (Helm release it-strimzi-helm/strimzi-kafka-operator)" in older.stdout
    assert "kafka_strimzi_allow_downgrade: true" in older.stdout and "helm rollback" in older.stdout
    assert "Install the Strimzi Cluster Operator chart" not in older.stdout
    assert releases(helm, kubeconfig)[CHART]["revision"] == "1"

    # An archive of another version than the pinned one: the settings check fails, nothing runs.
    mismatch = converge(tmp_path / "mismatch", role_vars(kubeconfig, helm, archives["old"]))
    assert mismatch.returncode != 0
    assert f"kafka_strimzi_chart_archive '{archives['old']}' is missing or is not the {VERSION} chart" in mismatch.stdout
    assert "Read the installed Strimzi operator release" not in mismatch.stdout
    assert releases(helm, kubeconfig)[CHART]["revision"] == "1"
