"""Faults mid-converge: the API server or etcd killed between two roles, and one object refused by admission.

One offline cluster of its own (cluster_name mlops-it-faults, own kubeconfig) for the module; the
tests run in order on it. The faults are real: SIGKILL of the cluster's kube-apiserver or etcd
process, sent by the callback tests/integration/callback_plugins/fault_at_role.py when the play
reaches a role (so it falls exactly between two roles), and a ValidatingAdmissionPolicy (CEL,
no webhook server) that refuses one object of the mlflow role's bundle. After each fault the
cluster is started again as an operator would (offline-cluster.sh up), and the next converge must
succeed with every object that existed before the fault still there, with the same UID, none
twice, and a further run changing nothing. Run with -s for the figures (README, Reliability).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
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

    def __init__(self, kubeconfig: str, env: dict[str, str]):
        found = settings()
        self.kubeconfig = kubeconfig
        self.env = env
        self.holder = pathlib.Path(kubeconfig).with_name("fault-holder.pid")
        self.dir = pathlib.Path(found["MLOPS_CACHE_DIR"]) / "kwok" / "clusters" / NAME
        self.kubectl_bin = pathlib.Path(found["MLOPS_CACHE_DIR"]) / "bin" / f"kubernetes-{found['K8S_VERSION']}" / "kubectl"
        self.args = ["-i", "inventories/local", "-e", f"cluster_provider=kwok cluster_name={NAME} cluster_kubeconfig={kubeconfig}"]

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        # A whole-command bound too: with etcd down every kind listed waits out its own request timeout.
        return subprocess.run([str(self.kubectl_bin), "--kubeconfig", self.kubeconfig, "--request-timeout=20s", *args],
                              capture_output=True, text=True, input=stdin, check=False, timeout=180)

    def pid_file(self, component: str) -> pathlib.Path:
        return self.dir / "pids" / f"{component}.pid"

    def ports(self, component: str) -> list[int]:
        config = next(d for d in yaml.safe_load_all((self.dir / "kwok.yaml").read_text()) if d and "components" in d)
        return [p["port"] for c in config["components"] if c["name"] == component for p in c.get("ports") or []]

    def release(self) -> None:
        """Kill the process that holds a killed component's ports (see fault_at_role.py), if any."""
        if not self.holder.exists():
            return
        pid = int(self.holder.read_text())
        self.holder.unlink()
        if b"select.select(held" in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGKILL)

    def revive(self) -> float:
        """Start the cluster again as an operator would (offline-cluster.sh up, which stops what still
        runs and starts every component with its data); seconds until the API server is ready."""
        start = time.monotonic()
        # What still runs stops before the killed component's ports are let go: an API server must
        # never meet another cluster's etcd on its etcd's port.
        found = settings()
        stop = subprocess.run(
            [str(pathlib.Path(found["MLOPS_CACHE_DIR"]) / "bin" / f"kwok-{found['KWOK_VERSION']}" / "kwokctl"),
             "--name", NAME, "stop", "cluster"],
            env={**self.env, "KWOK_WORKDIR": str(self.dir.parent.parent)}, capture_output=True, text=True, check=False)
        assert stop.returncode == 0, stop.stderr[-2000:]
        self.release()
        up = subprocess.run([str(CLUSTER), "up"], env=self.env, capture_output=True, text=True, check=False)
        assert up.returncode == 0, up.stderr[-2000:]
        assert "result=started" in up.stdout, up.stdout + up.stderr[-2000:]
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
        assert len({k for k, _uid in keys}) == len(keys), "an object is listed twice"
        return dict(keys)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    kubeconfig = str(tmp_path_factory.mktemp("faults") / "kubeconfig")
    env = {**os.environ, "MLOPS_CLUSTER_NAME": NAME, "MLOPS_KUBECONFIG": kubeconfig, "MLOPS_CLUSTER_NODES": "1"}
    cluster = Cluster(kubeconfig, env)
    try:
        up = subprocess.run([str(CLUSTER), "up"], env=env, capture_output=True, text=True, check=False)
        assert up.returncode == 0, up.stderr[-2000:]
        yield cluster
    finally:
        cluster.release()
        start = time.monotonic()
        subprocess.run([str(CLUSTER), "down"], env=env, capture_output=True, check=False)
        FIGURES.append(f"cluster down in {time.monotonic() - start:.1f} s")
        print("\n" + "\n".join(FIGURES))


def converge(ansible_playbook, cluster: Cluster, *args: str, fault: tuple[str, str] | None = None, after: str = ""):
    """site.yml on the test cluster; with fault=(role, component) that component is killed when the play reaches the
    role (with after: its first task after a task of that other role)."""
    env = {}
    if fault:
        env = {"ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "tests" / "integration" / "callback_plugins"),
               "ANSIBLE_CALLBACKS_ENABLED": "fault_at_role", "MLOPS_FAULT_ROLE": fault[0], "MLOPS_FAULT_AFTER_ROLE": after,
               "MLOPS_FAULT_PID_FILE": str(cluster.pid_file(fault[1])), "MLOPS_FAULT_HOLDER": str(cluster.holder),
               "MLOPS_FAULT_PORTS": ",".join(map(str, cluster.ports(fault[1])))}
    start = time.monotonic()
    run = ansible_playbook("playbooks/site.yml", *cluster.args, *args, env=env)
    return run, time.monotonic() - start


def intact(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The objects of before that are missing from after or were replaced (another UID)."""
    return [k for k, uid in before.items() if after.get(k) != uid]


def test_api_server_killed_between_roles_fails_naming_the_role_then_reconverges(ansible_playbook, cluster):
    # The API server dies when the play reaches the storage role: team_isolation has applied.
    failed, seconds = converge(ansible_playbook, cluster, fault=("storage", "kube-apiserver"))
    said = failed.stdout + failed.stderr
    assert failed.returncode != 0, said[-4000:]
    assert recap(failed.stdout)["failed"] == 1
    server = yaml.safe_load(pathlib.Path(cluster.kubeconfig).read_text())["clusters"][0]["cluster"]["server"]
    assert f"storage: cannot reach the Kubernetes API server at {server}" in said, said[-4000:]
    assert "nothing of this apply was written (0 of " in said, said[-4000:]
    revived = cluster.revive()

    before = cluster.objects()
    assert any(k.startswith("core/Namespace//") for k in before), before  # the teams' namespaces
    assert not any("/minio" in k for k in before), [k for k in before if "/minio" in k]
    again, again_seconds = converge(ansible_playbook, cluster)
    assert again.returncode == 0, again.stdout[-4000:]
    after = cluster.objects()
    assert intact(before, after) == []
    third = converge(ansible_playbook, cluster)[0]
    assert third.returncode == 0 and recap(third.stdout)["changed"] == 0, third.stdout[-4000:]
    assert cluster.objects() == after
    FIGURES.append(f"kube-apiserver SIGKILL at role storage: failed run {seconds:.1f} s, API back in {revived:.1f} s, "
                   f"re-converge {again_seconds:.1f} s ok, {len(before)} objects before the fault, lost 0, "
                   f"{len(after)} after; third run changed=0")


def test_etcd_killed_between_roles_fails_clearly_then_reconverges_losing_nothing(ansible_playbook, cluster):
    before = cluster.objects()
    failed, seconds = converge(ansible_playbook, cluster, "-e", "mlflow_replicas=2", fault=("mlflow", "etcd"),
                               after="storage")
    said = failed.stdout + failed.stderr
    assert failed.returncode != 0, said[-4000:]
    server = yaml.safe_load(pathlib.Path(cluster.kubeconfig).read_text())["clusters"][0]["cluster"]["server"]
    # The apply's first request fails: its version guard's read of the live Deployment (504 from the API server).
    assert re.search(rf"mlflow: (504 Gateway Timeout|version_guards: cannot read Deployment mlflow): "
                     rf"the Kubernetes API server at {re.escape(server)} failed \(", said), said[-4000:]
    assert "its readiness check fails: etcd" in said and "nothing of this apply was written (0 of " in said, said[-4000:]
    FIGURES.append("etcd: " + next(x for x in said.splitlines() if "readiness check fails" in x).strip())
    revived = cluster.revive()
    assert intact(before, cluster.objects()) == []
    again, again_seconds = converge(ansible_playbook, cluster, "-e", "mlflow_replicas=2")
    assert again.returncode == 0, again.stdout[-4000:]
    after = cluster.objects()
    assert intact(before, after) == [] and set(after) == set(before)
    replicas = cluster.kubectl("-n", "mlflow", "get", "deployment", "mlflow", "-o", "jsonpath={.spec.replicas}")
    assert replicas.stdout == "2"
    third = converge(ansible_playbook, cluster, "-e", "mlflow_replicas=2")[0]
    assert third.returncode == 0 and recap(third.stdout)["changed"] == 0, third.stdout[-4000:]
    FIGURES.append(f"etcd SIGKILL at role mlflow: failed run {seconds:.1f} s, API back in {revived:.1f} s, "
                   f"re-converge {again_seconds:.1f} s ok, {len(before)} objects before, lost 0; third run changed=0")


POLICY = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: faults-refuse-mlflow-service}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - {apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [services]}
  validations:
    - expression: "object.metadata.name != 'mlflow'"
      message: the faults test refuses this Service
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: faults-refuse-mlflow-service}
spec:
  policyName: faults-refuse-mlflow-service
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {kubernetes.io/metadata.name: mlflow}
"""


def wait_refused(cluster: Cluster, refused: bool) -> None:
    """Until the API server enforces the policy (or no longer does): it loads policies asynchronously."""
    deadline = time.monotonic() + 60
    while True:
        probe = cluster.kubectl("-n", "mlflow", "label", "service", "mlflow", "faults-probe=1", "--dry-run=server")
        if ("the faults test refuses this Service" in probe.stderr) == refused:
            return
        assert time.monotonic() < deadline, probe.stdout + probe.stderr
        time.sleep(0.5)


def test_an_object_refused_by_admission_fails_its_role_naming_it_and_writes_nothing_of_that_role(ansible_playbook, cluster):
    # The previous test left the MLflow server at 2 replicas: the inventory's 1 is a pending change of
    # the mlflow role, in the same apply as the Service that the policy refuses.
    before = cluster.objects()
    created = cluster.kubectl("apply", "-f", "-", stdin=POLICY)
    assert created.returncode == 0, created.stderr
    wait_refused(cluster, True)
    failed, seconds = converge(ansible_playbook, cluster)
    said = failed.stdout + failed.stderr
    assert failed.returncode != 0, said[-4000:]
    assert "mlflow: Service/mlflow/mlflow: the API server refused it:" in said, said[-4000:]
    assert "the faults test refuses this Service" in said and "nothing of this apply was written (0 of " in said, said[-4000:]
    # The dry-run of the whole bundle caught it: nothing of the role half-applied, the earlier roles' objects intact.
    replicas = cluster.kubectl("-n", "mlflow", "get", "deployment", "mlflow", "-o", "jsonpath={.spec.replicas}")
    assert replicas.stdout == "2"
    assert intact(before, cluster.objects()) == []

    removed = cluster.kubectl("delete", "-f", "-", stdin=POLICY)
    assert removed.returncode == 0, removed.stderr
    wait_refused(cluster, False)
    again, again_seconds = converge(ansible_playbook, cluster)
    assert again.returncode == 0, again.stdout[-4000:]
    replicas = cluster.kubectl("-n", "mlflow", "get", "deployment", "mlflow", "-o", "jsonpath={.spec.replicas}")
    assert replicas.stdout == "1"
    after = cluster.objects()
    assert intact(before, after) == [] and set(after) == set(before)
    third = converge(ansible_playbook, cluster)[0]
    assert third.returncode == 0 and recap(third.stdout)["changed"] == 0, third.stdout[-4000:]
    FIGURES.append(f"Service mlflow/mlflow refused by a ValidatingAdmissionPolicy: failed run {seconds:.1f} s (nothing of the "
                   f"mlflow role written), re-converge after removing it {again_seconds:.1f} s ok, {len(before)} objects, "
                   "lost 0; third run changed=0")
