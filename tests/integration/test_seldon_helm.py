"""The seldon role's Helm path on the offline cluster, with chart archives of our own.

The real Seldon charts cannot be downloaded here, so the test packages two tiny charts with the
real charts' names and version (their templates only record the values they were given in a
ConfigMap) and installs them through the air-gapped path (seldon_chart_archives), with the helm
binary that scripts/helm.sh builds from the Go module proxy. What the role did is read back
from the API server and from helm itself.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
from k8s_wait import fresh_namespace
from kubernetes import client

pytestmark = pytest.mark.cluster

ROOT = pathlib.Path(__file__).resolve().parents[2]
NAMESPACE = "it-seldon-helm"
VERSION = "2.10.2"
RECORD = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Chart.Name }}-values
data:
  chart: "{{ .Chart.Name }}-{{ .Chart.Version }}"
  clusterwide: {{ .Values.controller.clusterwide | quote }}
  kafka: {{ .Values.kafka.bootstrap | quote }}
  extra: {{ .Values.extra | quote }}
"""


def package(helm: str, workdir: pathlib.Path, name: str, version: str) -> pathlib.Path:
    chart = workdir / name
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: {version}\n")
    (chart / "values.yaml").write_text('controller:\n  clusterwide: false\nkafka:\n  bootstrap: ""\nextra: ""\n')
    (chart / "templates" / "record.yaml").write_text(RECORD)
    dest = workdir / "dist"
    subprocess.run([helm, "package", str(chart), "--destination", str(dest)], check=True, capture_output=True)
    archive = dest / f"{name}-{version}.tgz"
    assert archive.is_file()
    return archive


@pytest.fixture(scope="module")
def archives(helm, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("charts")
    return {"crds": str(package(helm, work, "seldon-core-v2-crds", VERSION)),
            "setup": str(package(helm, work, "seldon-core-v2-setup", VERSION)),
            "old_setup": str(package(helm, work / "old", "seldon-core-v2-setup", "2.9.0")),
            "old_crds": str(package(helm, work / "old", "seldon-core-v2-crds", "2.9.0"))}


@pytest.fixture(scope="module")
def cleanup(api_client):
    """The release namespace (helm creates it) is deleted afterwards, and waited for, so a re-run starts clean."""
    with fresh_namespace(api_client, NAMESPACE):
        yield


def run_role(kubeconfig: str, helm: str, tmp_path: pathlib.Path, chart_archives: dict, expect_failure: bool = False,
             **extra) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    playbook = tmp_path / "seldon.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: mlops.platform.seldon\n")
    variables = tmp_path / "vars.json"
    variables.write_text(json.dumps({
        "seldon_teams": [], "seldon_install_controller": True, "seldon_namespace": NAMESPACE,
        "seldon_version": VERSION, "seldon_chart_archives": chart_archives, "seldon_helm_binary": helm,
        "seldon_helm_timeout": "2m", "seldon_kubeconfig": kubeconfig, "ansible_python_interpreter": sys.executable,
        **extra}))
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
           "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"), "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    argv = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "-e", f"@{variables}", str(playbook)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    out = json.loads(proc.stdout)
    failed = out["stats"]["localhost"]["failures"] > 0
    assert failed == expect_failure, f"rc={proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    return out


def recorded(api_client, chart: str) -> dict:
    return client.CoreV1Api(api_client).read_namespaced_config_map(f"{chart}-values", NAMESPACE).data


def releases(helm: str, kubeconfig: str) -> dict:
    proc = subprocess.run([helm, "list", "-n", NAMESPACE, "-o", "json", "--kubeconfig", kubeconfig],
                          capture_output=True, text=True, check=True)
    return {r["name"]: r for r in json.loads(proc.stdout)}


def test_air_gapped_install_from_archives_is_cluster_wide_and_idempotent(
        helm, archives, cleanup, kubeconfig, api_client, tmp_path):
    chart_archives = {"crds": archives["crds"], "setup": archives["setup"]}
    first = run_role(kubeconfig, helm, tmp_path / "1", chart_archives)
    assert first["stats"]["localhost"]["changed"] >= 2

    assert recorded(api_client, "seldon-core-v2-crds")["chart"] == f"seldon-core-v2-crds-{VERSION}"
    setup = recorded(api_client, "seldon-core-v2-setup")
    assert setup == {"chart": f"seldon-core-v2-setup-{VERSION}", "clusterwide": "true", "kafka": "", "extra": ""}
    found = releases(helm, kubeconfig)
    assert {n: (r["chart"], r["status"]) for n, r in found.items()} == {
        "seldon-core-v2-crds": (f"seldon-core-v2-crds-{VERSION}", "deployed"),
        "seldon-core-v2-setup": (f"seldon-core-v2-setup-{VERSION}", "deployed")}

    second = run_role(kubeconfig, helm, tmp_path / "2", chart_archives)
    assert second["stats"]["localhost"]["changed"] == 0
    assert releases(helm, kubeconfig)["seldon-core-v2-setup"]["revision"] == "1"

    # Kafka configured and an extra value: only the setup release changes.
    third = run_role(kubeconfig, helm, tmp_path / "3", chart_archives, seldon_kafka_bootstrap="kafka.kafka:9092",
                     seldon_setup_values={"extra": "yes"})
    assert third["stats"]["localhost"]["changed"] == 1
    assert recorded(api_client, "seldon-core-v2-setup") == {
        "chart": f"seldon-core-v2-setup-{VERSION}", "clusterwide": "true", "kafka": "kafka.kafka:9092", "extra": "yes"}
    assert releases(helm, kubeconfig)["seldon-core-v2-crds"]["revision"] == "1"


def test_an_archive_of_another_version_fails_before_helm_runs(helm, archives, cleanup, kubeconfig, tmp_path):
    out = run_role(kubeconfig, helm, tmp_path, {"crds": archives["crds"], "setup": archives["old_setup"]},
                   expect_failure=True)
    failed = [t for play in out["plays"] for t in play["tasks"]
              if t["hosts"]["localhost"].get("failed")]
    assert [t["task"]["name"].split(" : ")[-1] for t in failed] == [
        "Fail on a missing chart archive or one of another version"]
    message = failed[0]["hosts"]["localhost"]["results"][-1]["msg"]
    assert "seldon_chart_archives.setup" in message and f"-{VERSION}.tgz" in message
    ran = {t["task"]["name"].split(" : ")[-1] for play in out["plays"] for t in play["tasks"]}
    assert "Install the Seldon Core v2 CRDs chart" not in ran


def test_an_older_chart_version_is_refused_before_helm_runs(helm, archives, cleanup, kubeconfig, api_client, tmp_path):
    current = {"crds": archives["crds"], "setup": archives["setup"]}
    run_role(kubeconfig, helm, tmp_path / "1", current)  # installed (a no-op after the first test)
    installed = {n: r["revision"] for n, r in releases(helm, kubeconfig).items()}
    out = run_role(kubeconfig, helm, tmp_path / "2", {"crds": archives["old_crds"], "setup": archives["old_setup"]},
                   expect_failure=True, seldon_version="2.9.0")
    failed = [t for play in out["plays"] for t in play["tasks"] if t["hosts"]["localhost"].get("failed")]
    assert [t["task"]["name"].split(" : ")[-1] for t in failed] == [
        "Refuse a chart version older than the installed one, before any change"]
    message = " ".join(failed[0]["hosts"]["localhost"]["msg"])
    for release in ("seldon-core-v2-crds", "seldon-core-v2-setup"):
        assert f"seldon_version 2.9.0 < live {VERSION} (Helm release {NAMESPACE}/{release})" in message
    assert "helm rollback" in message and "seldon_allow_downgrade: true" in message
    assert {n: r["revision"] for n, r in releases(helm, kubeconfig).items()} == installed
    assert recorded(api_client, "seldon-core-v2-setup")["chart"] == f"seldon-core-v2-setup-{VERSION}"
