"""Upgrades on a cluster of its own: the previous release's versions, then the current ones, then a downgrade.

site.yml converges the local inventory with older MLflow, PostgreSQL and Seldon chart versions
(inventory overrides: the state an operator has before upgrading the collection), then with the
current defaults. Read back from the API server: the new versions landed, every object the roles
own kept its UID (nothing deleted or recreated), Deployments roll, a further converge changes
nothing. Then converges that ask for older versions (and a PostgreSQL major upgrade without its
opt-in) fail in site.yml's preflight, right after the cluster role, naming the variables: the API
server's audit log shows no write request of those runs, and no object's managedFields changed.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import time

import pytest
from ansible_run import recap
from audit_log import AuditLog

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "roles" / "cluster" / "files" / "offline-cluster.sh"
NAME = "mlops-it-upgrades"
# The previous release's versions; the current ones are the roles' defaults.
OLD = {"mlflow_version": "2.22.1", "mlflow_postgresql_image": "docker.io/library/postgres:16.4-alpine",
       "seldon_version": "2.9.1"}
NEW = {"mlflow": "v3.17.2-full", "postgresql": "16.6-alpine", "seldon": "2.10.2"}
# Made by the workloads and controllers, not by the roles: a rolling update replaces them by design.
WORKLOAD_MADE = ("pods", "replicasets", "controllerrevisions", "endpoints", "endpointslices", "events", "leases")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """An offline cluster of its own whose API server writes an audit log; deleted afterwards (also on failure)."""
    tmp = tmp_path_factory.mktemp("upgrades")
    kubeconfig, audit = str(tmp / "kubeconfig"), tmp / "audit.log"
    env = {**os.environ, "MLOPS_CLUSTER_NAME": NAME, "MLOPS_KUBECONFIG": kubeconfig, "MLOPS_CLUSTER_NODES": "1",
           "MLOPS_AUDIT_LOG": str(audit)}
    # A cluster of this name left behind by an interrupted run has no audit log here: start afresh.
    cluster_down(env)
    try:
        up = subprocess.run([str(CLUSTER), "up"], env=env, capture_output=True, text=True, check=False)
        assert up.returncode == 0, up.stderr[-3000:]
        assert audit.is_file(), f"the API server wrote no audit log at {audit}"
        yield (["-i", "inventories/local", "-e", f"cluster_provider=kwok cluster_name={NAME} cluster_kubeconfig={kubeconfig}"],
               kubeconfig, AuditLog(audit))
    finally:
        cluster_down(env)


def cluster_down(env: dict) -> None:
    """offline-cluster.sh down until the cluster's directory is gone: its `kwokctl get clusters` can miss a
    running cluster while another cluster is being deleted, and then reports it absent."""
    workdir = pathlib.Path(settings()["MLOPS_CACHE_DIR"]) / "kwok" / "clusters" / NAME
    for _attempt in range(5):
        subprocess.run([str(CLUSTER), "down"], env=env, capture_output=True, check=False)
        if not workdir.exists():
            return
        time.sleep(2)


def settings() -> dict:
    return dict(line.split("=", 1) for line in subprocess.run(
        [str(CLUSTER), "env"], capture_output=True, text=True, check=True).stdout.split())


def kubectl(kubeconfig: str, *args: str) -> subprocess.CompletedProcess:
    found = settings()
    binary = pathlib.Path(found["MLOPS_CACHE_DIR"]) / "bin" / f"kubernetes-{found['K8S_VERSION']}" / "kubectl"
    return subprocess.run([str(binary), "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, check=False)


def owned(kubeconfig: str) -> dict[str, dict]:
    """Every object the roles applied (label managed-by=mlops.platform, of every kind the API server lists), by kind/namespace/name."""
    served = kubectl(kubeconfig, "api-resources", "--verbs=list", "-o", "name")
    assert served.returncode == 0, served.stderr
    kinds = ",".join(n for n in served.stdout.split() if n.split(".")[0] not in WORKLOAD_MADE)
    found = kubectl(kubeconfig, "get", kinds, "-A", "-l", "app.kubernetes.io/managed-by=mlops.platform", "-o", "json")
    assert found.returncode == 0, found.stderr
    return {"/".join(p for p in (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) if p): o
            for o in json.loads(found.stdout)["items"]}


def image(objects: dict, key: str, container: str) -> str:
    spec = objects[key]["spec"]["template"]["spec"]
    return next(c["image"] for c in spec["containers"] if c["name"] == container)


def written(objects: dict) -> dict:
    """What a write to each object would change: its UID, generation and non-status managedFields."""
    return {k: (o["metadata"]["uid"], o["metadata"].get("generation"),
                [f for f in o["metadata"].get("managedFields", []) if f.get("subresource") != "status"])
            for k, o in objects.items()}


def failed_tasks(stdout: str) -> list[str]:
    """The names of the tasks that failed (the lines before each 'fatal:' of the default callback)."""
    names, task = [], None
    for line in stdout.splitlines():
        if line.startswith("TASK ["):
            task = line[len("TASK ["):line.rindex("]")].split(" : ")[-1]
        elif line.startswith("fatal:") and task:
            names.append(task)
    return names


def converge(ansible_playbook, args: list, extra: dict | None = None):
    argv = [*args] + (["-e", json.dumps(extra)] if extra else [])
    return ansible_playbook("playbooks/site.yml", *argv)


def test_upgrade_keeps_every_object_and_a_downgrade_is_refused_before_any_change(ansible_playbook, cluster):
    args, kubeconfig, audit = cluster
    started = time.monotonic()
    old = converge(ansible_playbook, args, OLD)
    assert old.returncode == 0, old.stdout[-4000:]
    before = owned(kubeconfig)
    assert image(before, "Deployment/mlflow/mlflow", "mlflow").endswith(":v2.22.1-full")
    assert image(before, "StatefulSet/mlflow/mlflow-postgresql", "postgresql").endswith(":16.4-alpine")
    crd = "CustomResourceDefinition/seldonruntimes.mlops.seldon.io"
    assert before[crd]["metadata"]["annotations"]["mlops.platform/version"] == "2.9.1"

    upgrade_started = time.monotonic()
    upgrade = converge(ansible_playbook, args)
    assert upgrade.returncode == 0, upgrade.stdout[-4000:]
    upgrade_seconds = time.monotonic() - upgrade_started
    after = owned(kubeconfig)
    # The new versions landed, read back from the cluster.
    assert image(after, "Deployment/mlflow/mlflow", "mlflow").endswith(f":{NEW['mlflow']}")
    assert image(after, "StatefulSet/mlflow/mlflow-postgresql", "postgresql").endswith(f":{NEW['postgresql']}")
    assert after[crd]["metadata"]["annotations"]["mlops.platform/version"] == NEW["seldon"]
    # Nothing deleted or recreated: every object is still there with its UID; the upgrade changed some.
    assert sorted(before) == sorted(after)
    recreated = [k for k in before if before[k]["metadata"]["uid"] != after[k]["metadata"]["uid"]]
    assert recreated == []
    updated = [k for k in before if before[k]["metadata"]["resourceVersion"] != after[k]["metadata"]["resourceVersion"]]
    assert "Deployment/mlflow/mlflow" in updated and "StatefulSet/mlflow/mlflow-postgresql" in updated and crd in updated
    assert "deleted " not in upgrade.stdout
    # Workloads roll: no Recreate strategy, no OnDelete StatefulSet.
    deployments = [k for k in after if k.startswith("Deployment/")]
    assert deployments and all(after[k]["spec"]["strategy"]["type"] == "RollingUpdate" for k in deployments)
    assert after["Deployment/mlflow/mlflow"]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert all(after[k]["spec"].get("updateStrategy", {}).get("type", "RollingUpdate") == "RollingUpdate"
               for k in after if k.startswith("StatefulSet/"))

    # The tracking server rolled: a ReplicaSet of the new image beside the old one's, both the Deployment's.
    sets = kubectl(kubeconfig, "get", "replicasets", "-n", "mlflow", "-o", "json")
    assert sets.returncode == 0, sets.stderr
    uid = after["Deployment/mlflow/mlflow"]["metadata"]["uid"]
    rolled = {c["image"].rsplit(":", 1)[-1] for rs in json.loads(sets.stdout)["items"]
              if any(o["uid"] == uid for o in rs["metadata"].get("ownerReferences", []))
              for c in rs["spec"]["template"]["spec"]["containers"] if c["name"] == "mlflow"}
    assert rolled == {"v2.22.1-full", NEW["mlflow"]}, rolled

    again = converge(ansible_playbook, args)
    assert again.returncode == 0, again.stdout[-4000:]
    assert recap(again.stdout)["changed"] == 0, again.stdout[-4000:]
    settled = owned(kubeconfig)

    # Downgrades (and a PostgreSQL major upgrade without its opt-in) are refused in site.yml's preflight,
    # right after the cluster role: not one write request reaches the API server.
    mark, refused_started = audit.mark(), time.monotonic()
    down = converge(ansible_playbook, args, {"mlflow_version": OLD["mlflow_version"],
                                             "mlflow_postgresql_image": "docker.io/library/postgres:17.2-alpine"})
    assert down.returncode != 0
    assert failed_tasks(down.stdout) == ["Refuse an MLflow or PostgreSQL version older than the live one, before any change"]
    said = down.stdout + down.stderr
    assert "mlflow_image (mlflow_version) 2.22.1-full < live 3.17.2-full (Deployment mlflow/mlflow)" in said
    assert "restore the database from a backup" in said and "mlflow_allow_downgrade: true" in said
    assert "mlflow_postgresql_image 17.2-alpine is a major upgrade from live 16.6-alpine" in said
    assert "mlflow_postgresql_major_upgrade: true" in said and "pg_dumpall" in said
    pg_down = converge(ansible_playbook, args, {"mlflow_postgresql_image": OLD["mlflow_postgresql_image"]})
    assert pg_down.returncode != 0
    assert "mlflow_postgresql_image 16.4-alpine < live 16.6-alpine (StatefulSet mlflow/mlflow-postgresql)" in (
        pg_down.stdout + pg_down.stderr)
    seldon = converge(ansible_playbook, args, {"seldon_version": OLD["seldon_version"]})
    assert seldon.returncode != 0
    assert failed_tasks(seldon.stdout) == ["Refuse a seldon_version older than the stand-in CRDs, before any change"]
    said = seldon.stdout + seldon.stderr
    assert "seldon_version 2.9.1 < live 2.10.2 (CustomResourceDefinition seldonruntimes.mlops.seldon.io)" in said
    assert "helm rollback" in said and "seldon_allow_downgrade: true" in said
    refused_seconds = time.monotonic() - refused_started
    writes = audit.writes_since(mark)
    assert writes == [], writes[:20]
    # And every object as the refused runs found it: same UID, generation and field owners (with their
    # timestamps) outside the status subresource, which the controllers keep writing.
    assert written(owned(kubeconfig)) == written(settled)
    print(f"\nupgrades: {len(before)} objects checked, deleted or recreated 0, updated {len(updated)} ({sorted(updated)}), "
          f"upgrade converge {upgrade_seconds:.0f} s, 3 refused runs {refused_seconds:.0f} s with 0 writes, whole test {time.monotonic() - started:.0f} s")
