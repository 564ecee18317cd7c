"""Faults mid-converge: the API server or etcd killed between two roles, and one object refused by admission.

One offline cluster of its own (cluster_name mlops-it-faults, own kubeconfig) for the module; the
tests run in order on it. The faults are real: SIGKILL of the cluster's kube-apiserver or etcd
process, sent by the callback tests/integration/callback_plugins/fault_at_role.py when the play
reaches a role (so it falls exactly between two roles), and a ValidatingAdmissionPolicy (CEL,
no webhook server) that refuses one object of the mlflow role's bundle. After each fault the
component is started again exactly as kwokctl started it (its kwok.yaml entry), and the next
converge must succeed with every object that existed before the fault still there, with the same
UID, none twice, and a further run changing nothing.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import time

import pytest
import yaml
from ansible_run import recap

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "roles" / "cluster" / "files" / "offline-cluster.sh"
NAME = "mlops-it-faults"
FIGURES: list[str] = []


def settings() -> dict[str, str]:
    return dict(line.split("=", 1) for line in subprocess.run(
        [str(CLUSTER), "env"], capture_output=True, text=True, check=True).stdout.split())


class Cluster:
    """The test's offline cluster: its kubeconfig, its components' pid files, kubectl."""

    def __init__(self, kubeconfig: str):
        found = settings()
        self.kubeconfig = kubeconfig
        self.dir = pathlib.Path(found["MLOPS_CACHE_DIR"]) / "kwok" / "clusters" / NAME
        self.kubectl_bin = pathlib.Path(found["MLOPS_CACHE_DIR"]) / "bin" / f"kubernetes-{found['K8S_VERSION']}" / "kubectl"
        self.args = ["-i", "inventories/local", "-e", f"cluster_provider=kwok cluster_name={NAME} cluster_kubeconfig={kubeconfig}"]

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.kubectl_bin), "--kubeconfig", self.kubeconfig, "--request-timeout=20s", *args],
                              capture_output=True, text=True, input=stdin, check=False)

    def pid_file(self, component: str) -> pathlib.Path:
        return self.dir / "pids" / f"{component}.pid"

    def running(self, component: str) -> bool:
        text = self.pid_file(component).read_text().strip() if self.pid_file(component).exists() else ""
        return bool(text) and pathlib.Path(f"/proc/{text}").exists() and " Z " not in pathlib.Path(f"/proc/{text}/stat").read_text()

    def revive(self) -> float:
        """Start every component that is not running, as kwokctl started it; seconds until the API is ready.

        The controller manager and the scheduler exit on their own when they lose the API server
        (leader election), so they are started again too.
        """
        start = time.monotonic()
        config = next(d for d in yaml.safe_load_all((self.dir / "kwok.yaml").read_text()) if d and "components" in d)
        for component in config["components"]:
            name = component["name"]
            if self.running(name):
                continue
            for port in component.get("ports") or []:
                # kwokctl gives a new cluster the highest free ports: another cluster created while
                # this component was down can hold its port now.
                with socket.socket() as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if probe.connect_ex(("127.0.0.1", port["port"])) == 0:
                        pytest.fail(f"port {port['port']} of {name} was taken by another process while it was down")
            with open(self.dir / "logs" / f"{name}.log", "ab") as log:
                process = subprocess.Popen([component["binary"], *component.get("args", [])], cwd=component["workDir"],
                                           stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)
            # kwokctl stops the cluster's processes by these files (offline-cluster.sh down).
            self.pid_file(name).write_text(str(process.pid))
        deadline = time.monotonic() + 90
        while self.kubectl("get", "--raw", "/readyz").returncode != 0:
            assert time.monotonic() < deadline, "the API server did not become ready again"
            time.sleep(0.3)
        return time.monotonic() - start

    def objects(self) -> dict[str, str]:
        """{group/kind/namespace/name: uid} of every object the collection applied (labelled, owned by nobody)."""
        kinds = self.kubectl("api-resources", "--verbs=list", "-o", "name")
        assert kinds.returncode == 0, kinds.stderr
        names = ",".join(k for k in kinds.stdout.split() if k not in ("events", "events.events.k8s.io"))
        found = self.kubectl("get", names, "-A", "-l", "app.kubernetes.io/managed-by=mlops.platform", "-o", "json")
        assert found.returncode == 0, found.stderr
        keys = [(f"{o['apiVersion'].split('/')[0] if '/' in o['apiVersion'] else 'core'}/{o['kind']}/"
                 f"{o['metadata'].get('namespace', '')}/{o['metadata']['name']}", o["metadata"]["uid"])
                for o in json.loads(found.stdout)["items"] if not o["metadata"].get("ownerReferences")]
        assert len({k for k, _ in keys}) == len(keys), "an object is listed twice"
        return dict(keys)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    kubeconfig = str(tmp_path_factory.mktemp("faults") / "kubeconfig")
    env = {**os.environ, "MLOPS_CLUSTER_NAME": NAME, "MLOPS_KUBECONFIG": kubeconfig, "MLOPS_CLUSTER_NODES": "1"}
    try:
        up = subprocess.run([str(CLUSTER), "up"], env=env, capture_output=True, text=True, check=False)
        assert up.returncode == 0, up.stderr[-2000:]
        yield Cluster(kubeconfig)
    finally:
        start = time.monotonic()
        subprocess.run([str(CLUSTER), "down"], env=env, capture_output=True, check=False)
        FIGURES.append(f"cluster down in {time.monotonic() - start:.1f} s")
        print("\n" + "\n".join(FIGURES))


def converge(ansible_playbook, cluster: Cluster, *args: str, fault: tuple[str, str] | None = None):
    """site.yml on the test cluster; with fault=(role, component) that component is killed when the play reaches the role."""
    env = {}
    if fault:
        env = {"ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "tests" / "integration" / "callback_plugins"),
               "ANSIBLE_CALLBACKS_ENABLED": "fault_at_role", "MLOPS_FAULT_ROLE": fault[0],
               "MLOPS_FAULT_PID_FILE": str(cluster.pid_file(fault[1]))}
    start = time.monotonic()
    run = ansible_playbook("playbooks/site.yml", *cluster.args, *args, env=env)
    return run, time.monotonic() - start


def intact(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The objects of before that are missing from after or were replaced (another UID)."""
    return [k for k, uid in before.items() if after.get(k) != uid]


def test_api_server_killed_between_roles_fails_naming_the_role_then_reconverges(ansible_playbook, cluster):
    # The API server dies when the play reaches the storage role: team_isolation has applied.
    failed, seconds = converge(ansible_playbook, cluster, fault=("storage", "kube-apiserver"))
    FIGURES.append(f"failed run {seconds:.1f} s")
    said = failed.stdout + failed.stderr
    assert failed.returncode != 0, said[-4000:]
    assert recap(failed.stdout)["failed"] == 1
    server = yaml.safe_load(pathlib.Path(cluster.kubeconfig).read_text())["clusters"][0]["cluster"]["server"]
    assert f"storage: cannot reach the Kubernetes API server at {server}" in said, said[-4000:]
    assert "nothing of this apply was written (0 of " in said, said[-4000:]
    revived = cluster.revive()

    before = cluster.objects()
    assert any(k.startswith("core/Namespace//") for k in before), before  # the teams' namespaces
    assert not any("/minio" in k for k in before), "the storage role wrote although the API server was down"
    again, again_seconds = converge(ansible_playbook, cluster)
    assert again.returncode == 0, again.stdout[-4000:]
    after = cluster.objects()
    assert intact(before, after) == []
    third, _ = converge(ansible_playbook, cluster)
    assert third.returncode == 0 and recap(third.stdout)["changed"] == 0, third.stdout[-4000:]
    assert cluster.objects() == after
    FIGURES.append(f"kube-apiserver SIGKILL at role storage: failed run {seconds:.1f} s, API back in {revived:.1f} s, "
                   f"re-converge {again_seconds:.1f} s ok, {len(before)} objects before the fault, lost 0, "
                   f"{len(after)} after; third run changed=0")


def test_etcd_killed_between_roles_fails_clearly_then_reconverges_losing_nothing(ansible_playbook, cluster):
    before = cluster.objects()
    failed, seconds = converge(ansible_playbook, cluster, "-e", "mlflow_replicas=2", fault=("mlflow", "etcd"))
    said = failed.stdout + failed.stderr
    assert failed.returncode != 0, said[-4000:]
    assert "mlflow: " in said, said[-4000:]
    revived = cluster.revive()
    assert intact(before, cluster.objects()) == []
    again, again_seconds = converge(ansible_playbook, cluster, "-e", "mlflow_replicas=2")
    assert again.returncode == 0, again.stdout[-4000:]
    after = cluster.objects()
    assert intact(before, after) == [] and set(after) == set(before)
    replicas = cluster.kubectl("-n", "mlflow", "get", "deployment", "mlflow", "-o", "jsonpath={.spec.replicas}")
    assert replicas.stdout == "2"
    third, _ = converge(ansible_playbook, cluster, "-e", "mlflow_replicas=2")
    assert third.returncode == 0 and recap(third.stdout)["changed"] == 0, third.stdout[-4000:]
    FIGURES.append(f"etcd SIGKILL at role mlflow: failed run {seconds:.1f} s, API back in {revived:.1f} s, "
                   f"re-converge {again_seconds:.1f} s ok, {len(before)} objects before, lost 0; third run changed=0")
