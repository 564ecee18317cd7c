"""GitOps mode of the seldon role and Argo CD's Helm install, on an offline cluster of its own (mlops-it-gitops-b).

1. playbooks/site.yml with gitops_engine=argocd renders team_isolation and seldon (mlops_render_only: no SeldonRuntime,
   no CRD, no team namespace reaches the cluster) and commits the tree; the push path (site.yml's roles, engine none)
   then applies the same objects: the tree's SeldonRuntimes and Servers equal what seldon_runtime sent, every file of
   the tree passes a server-side dry run, and, with the controller install on, the chart Applications (Helm source
   pinned to seldon_version) and their AppProject pass one too against Argo CD's real CRDs.
2. roles/gitops/tasks/install.yml installs Argo CD from an air-gapped archive with the real helm (scripts/helm.sh);
   the chart is a tiny one of our own with the real chart's name and version (the real one cannot be downloaded
   here; its templates record the values they get). Check mode first (reports the install, installs nothing), then
   the install, a second run changing nothing, and an older chart refused before Helm runs.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest
import yaml
from ansible_run import recap, run_playbook

pytestmark = pytest.mark.cluster

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "roles" / "cluster" / "files" / "offline-cluster.sh"
ARGOCD = ROOT / "roles" / "gitops" / "files" / "argocd.sh"
NAME = "mlops-it-gitops-b"
# The kafka role is not run here: the runtimes get Kafka from the override (both paths alike).
KAFKA = "seldon_kafka_bootstrap=kafka-bootstrap.kafka:9092"
CHART_VERSION = "9.1.9"


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    settings = dict(line.split("=", 1) for line in subprocess.run(
        [str(CLUSTER), "env"], capture_output=True, text=True, check=True).stdout.split())
    binary = pathlib.Path(settings["MLOPS_CACHE_DIR"]) / "bin" / f"kubernetes-{settings['K8S_VERSION']}" / "kubectl"
    return subprocess.run([str(binary), "--kubeconfig", kubeconfig, *args], input=stdin, capture_output=True, text=True,
                          check=False)


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The cluster with Argo CD's CRDs and namespace (what the gitops role's crds mode applies); deleted afterwards."""
    work = tmp_path_factory.mktemp("gitops-b")
    kubeconfig = str(work / "kubeconfig")
    env = {**os.environ, "MLOPS_CLUSTER_NAME": NAME, "MLOPS_KUBECONFIG": kubeconfig, "MLOPS_CLUSTER_NODES": "1"}
    try:
        crds = subprocess.run([str(ARGOCD), "crds"], capture_output=True, text=True, check=True).stdout.strip()
        up = subprocess.run([str(CLUSTER), "up"], env=env, capture_output=True, text=True, check=False)
        assert up.returncode == 0, f"offline cluster {NAME} did not come up: {up.stderr[-2000:]}"
        ok(kubectl(kubeconfig, "apply", "--server-side", "-f", crds))
        ok(kubectl(kubeconfig, "create", "namespace", "argocd"))
        for _attempt in range(60):  # a CRD has no status.conditions for a moment after its creation
            if kubectl(kubeconfig, "wait", "--for=condition=Established", "crd", "--all", "--timeout=30s").returncode == 0:
                break
            time.sleep(0.5)
        yield {"kubeconfig": kubeconfig, "work": work}
    finally:
        subprocess.run([str(CLUSTER), "down"], env=env, capture_output=True, check=False)


def site(cluster: dict, *extra: str):
    return run_playbook("playbooks/site.yml", "-i", "inventories/local",
                        "-e", f"cluster_provider=kwok cluster_name={NAME} cluster_kubeconfig={cluster['kubeconfig']}",
                        *extra)


def tree(repo: pathlib.Path, component: str) -> dict[str, dict]:
    """{file: object} of components/<component> at the branch's head."""
    listing = subprocess.run(["git", "--git-dir", str(repo), "ls-tree", "--name-only", f"main:components/{component}"],
                             capture_output=True, text=True, check=True).stdout.split()
    return {name: yaml.safe_load(subprocess.run(["git", "--git-dir", str(repo), "show", f"main:components/{component}/{name}"],
                                                capture_output=True, text=True, check=True).stdout)
            for name in listing if name != "kustomization.yaml"}


def dry_run(kubeconfig: str, objects: list[dict]) -> None:
    listing = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    ok(kubectl(kubeconfig, "apply", "--server-side", "--dry-run=server", "--field-manager=mlops.platform", "-f", "-",
               stdin=listing))


def test_seldon_renders_for_gitops_and_the_tree_equals_the_push_path(cluster, tmp_path):
    kubeconfig, repo = cluster["kubeconfig"], tmp_path / "platform.git"
    roles = json.dumps({"gitops_render_roles": ["team_isolation", "seldon"], "gitops_apply": False,
                        "gitops_repo_dir": str(repo)})
    rendered = site(cluster, "-e", "gitops_engine=argocd", "-e", roles, "-e", KAFKA)
    assert recap(rendered.stdout)["failed"] == 0, rendered.stdout[-4000:]
    # Rendered, not applied: neither the stand-in CRDs nor a team namespace nor a runtime is on the cluster.
    assert kubectl(kubeconfig, "get", "crd", "seldonruntimes.mlops.seldon.io").returncode != 0
    assert kubectl(kubeconfig, "get", "namespace", "financial-ml").returncode != 0
    seldon = tree(repo, "seldon")
    runtimes = {f: o for f, o in seldon.items() if o["kind"] in ("SeldonRuntime", "Server")}
    assert any(o["kind"] == "SeldonRuntime" for o in runtimes.values())
    assert any(o["kind"] == "CustomResourceDefinition" for o in seldon.values())

    # The push path for the same roles and inventory, recording what it sends (mlops_render_dir, as bench/run.py does).
    pushed_dir = tmp_path / "pushed"
    playbook = tmp_path / "push.yml"
    playbook.write_text("- hosts: mlops_platform\n  gather_facts: false\n  roles:\n    - mlops.platform.cluster\n"
                        "    - mlops.platform.team_isolation\n    - mlops.platform.seldon\n")
    pushed = run_playbook(playbook, "-i", "inventories/local", "-e",
                          f"cluster_provider=kwok cluster_name={NAME} cluster_kubeconfig={kubeconfig} mlops_render_dir={pushed_dir}",
                          "-e", KAFKA)
    assert recap(pushed.stdout)["failed"] == 0, pushed.stdout[-4000:]
    (sent_file,) = pushed_dir.glob("*-seldon-runtimes.yaml")
    sent = {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o for o in yaml.safe_load_all(sent_file.read_text())}
    assert {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o for o in runtimes.values()} == sent
    # Every file of both components is accepted by the API server as the engine would apply it.
    dry_run(kubeconfig, list(tree(repo, "team-isolation").values()) + list(seldon.values()))

    # With the controller install on, the charts become Argo CD Applications with a Helm source.
    charts = json.dumps({"gitops_render_roles": ["seldon"], "gitops_apply": False, "gitops_repo_dir": str(repo),
                         "seldon_install_controller": True, "seldon_offline_crds": False,
                         "seldon_setup_values": {"controller": {"resources": {"limits": {"cpu": "500m"}}}}})
    again = site(cluster, "-e", "gitops_engine=argocd", "-e", charts, "-e", KAFKA)
    assert recap(again.stdout)["failed"] == 0, again.stdout[-4000:]
    controller = tree(repo, "seldon-controller")
    apps = {o["metadata"]["name"]: o for o in controller.values() if o["kind"] == "Application"}
    assert sorted(apps) == ["seldon-core-v2-crds", "seldon-core-v2-setup"]
    setup = apps["seldon-core-v2-setup"]["spec"]["source"]
    assert setup["chart"] == "seldon-core-v2-setup" and setup["targetRevision"] == "2.10.2"
    # The values controller.yml gives Helm: clusterwide, Kafka's bootstrap, seldon_setup_values over them.
    assert setup["helm"]["valuesObject"] == {"controller": {"clusterwide": True, "resources": {"limits": {"cpu": "500m"}}},
                                             "kafka": {"bootstrap": "kafka-bootstrap.kafka:9092"}}
    dry_run(kubeconfig, list(controller.values()))

    # Once the engine holds the charts (the Applications applied; no controller runs here), an older seldon_version
    # is refused by the read-only preflight before anything is rendered or committed.
    ok(kubectl(kubeconfig, "apply", "--server-side", "-f", "-",
               stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(controller.values())})))
    head = subprocess.run(["git", "--git-dir", str(repo), "rev-parse", "main"], capture_output=True, text=True, check=True).stdout
    older = site(cluster, "-e", "gitops_engine=argocd", "-e", charts, "-e", KAFKA, "-e", "seldon_version=2.9.0")
    assert recap(older.stdout)["failed"] == 1
    assert "seldon_version 2.9.0 < live 2.10.2 (Application argocd/seldon-core-v2-setup)" in older.stdout, older.stdout[-3000:]
    assert subprocess.run(["git", "--git-dir", str(repo), "rev-parse", "main"], capture_output=True, text=True,
                          check=True).stdout == head


ARGO_RECORD = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-values
data:
  chart: "{{ .Chart.Name }}-{{ .Chart.Version }}"
  tag: {{ .Values.global.image.tag | quote }}
  health: {{ index .Values.configs.cm "resource.customizations.health.argoproj.io_Application" | quote }}
"""


def package(helm: str, workdir: pathlib.Path, version: str) -> pathlib.Path:
    chart = workdir / version / "argo-cd"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: argo-cd\nversion: {version}\nappVersion: v3.2.11\n")
    (chart / "values.yaml").write_text('global:\n  image:\n    tag: ""\nconfigs:\n  cm: {}\n')
    (chart / "templates" / "record.yaml").write_text(ARGO_RECORD)
    subprocess.run([helm, "package", str(chart), "--destination", str(workdir / "dist")], check=True, capture_output=True)
    return workdir / "dist" / f"argo-cd-{version}.tgz"


def install(cluster: dict, helm: str, tmp_path: pathlib.Path, archive: pathlib.Path, *extra: str, **variables):
    tmp_path.mkdir(parents=True, exist_ok=True)
    playbook = tmp_path / "install.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.include_role:\n"
                        "        name: mlops.platform.gitops\n        tasks_from: install.yml\n")
    values = {"gitops_argocd_namespace": "argocd-helm", "gitops_argocd_chart_archive": str(archive),
              "gitops_helm_binary": helm, "gitops_helm_timeout": "2m", "gitops_kubeconfig": cluster["kubeconfig"],
              "ansible_python_interpreter": sys.executable, **variables}
    return run_playbook(playbook, "-i", "localhost,", "-c", "local", "-e", json.dumps(values), *extra)


def releases(helm: str, kubeconfig: str) -> dict:
    done = subprocess.run([helm, "list", "-n", "argocd-helm", "-o", "json", "--kubeconfig", kubeconfig],
                          capture_output=True, text=True, check=True)
    return {r["name"]: r for r in json.loads(done.stdout)}


def test_argocd_helm_install_from_an_archive_is_idempotent_and_refuses_a_downgrade(cluster, helm, tmp_path):
    kubeconfig = cluster["kubeconfig"]
    archive, old = package(helm, tmp_path / "charts", CHART_VERSION), package(helm, tmp_path / "charts", "9.1.8")

    checked = install(cluster, helm, tmp_path / "check", archive, "--check")
    assert recap(checked.stdout)["failed"] == 0 and recap(checked.stdout)["changed"] == 1, checked.stdout[-3000:]
    assert releases(helm, kubeconfig) == {}

    first = install(cluster, helm, tmp_path / "1", archive)
    assert recap(first.stdout)["changed"] == 1, first.stdout[-3000:]
    record = json.loads(ok(kubectl(kubeconfig, "get", "configmap", "argocd-values", "-n", "argocd-helm", "-o", "json")))["data"]
    assert record["chart"] == f"argo-cd-{CHART_VERSION}" and record["tag"] == "v3.2.11"
    assert "obj.status.health.status" in record["health"]  # the Application health Lua reaches argocd-cm via the values

    second = install(cluster, helm, tmp_path / "2", archive)
    assert recap(second.stdout) == {**recap(second.stdout), "changed": 0, "failed": 0}, second.stdout[-3000:]
    assert install(cluster, helm, tmp_path / "2c", archive, "--check").stdout.count("changed=0") == 1
    assert releases(helm, kubeconfig)["argocd"]["revision"] == "1"

    refused = install(cluster, helm, tmp_path / "3", old, gitops_argocd_chart_version="9.1.8")
    assert recap(refused.stdout)["failed"] == 1
    assert "Refuse an Argo CD chart version older than the installed one" in refused.stdout
    assert f"gitops_argocd_chart_version 9.1.8 < live {CHART_VERSION} (Helm release argocd-helm/argocd)" in refused.stdout
    assert "gitops_argocd_allow_downgrade: true" in refused.stdout
    assert releases(helm, kubeconfig)["argocd"]["revision"] == "1"

    wrong = install(cluster, helm, tmp_path / "4", old)  # the archive of another version than gitops_argocd_chart_version
    assert recap(wrong.stdout)["failed"] == 1 and "is not the 9.1.9 chart" in wrong.stdout
