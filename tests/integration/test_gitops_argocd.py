"""GitOps delivery through a real Argo CD, on an offline cluster of its own (mlops-it-gitops-argocd).

Argo CD v3.2.11 is built from its Go module by roles/gitops/files/argocd.sh (cached); its CRDs come
from the module's manifests/crds. The application controller and the repo server run as processes
against the cluster, with Debian's redis-server; the tree is served from a bare repository (file://).
The Sealed Secrets controller (roles/secrets/files/controllers.sh) runs as a process too (unshare -m,
its upstream RBAC) and its /v1/cert.pem is the role's gitops_sealing_cert.

playbooks/gitops.yml renders every platform role (team_isolation, storage, mlflow, monitoring, redis,
processing, secrets, kafka, seldon with its stand-in CRDs; mlops_render_only), seals each Secret into
a SealedSecret, commits the tree and applies the app-of-apps; the test shows every Application Synced
and Healthy, the waves in order, no secret value in Git or in the output, the objects (the unsealed
Secrets' keys and values included) equal to what the push path creates, a second converge changing nothing, selfHeal
restoring a deleted object, a removed team pruned, and every rendered Application, AppProject,
GitRepository and Kustomization accepted by a server-side dry run.

Not real here: no Strimzi operator and no Prometheus Operator run on the offline cluster, so the
test's own argocd-cm entries give their custom resources (Kafka, KafkaTopic, KafkaUser, Prometheus)
a health of "Healthy once applied" (OFFLINE_HEALTH); everything else uses Argo CD's own health checks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pathlib
import re
import secrets as pysecrets
import shutil
import subprocess
import time

import pytest
import yaml
from ansible_collections.mlops.platform.plugins.module_utils.gitops import build_tree
from ansible_run import recap, run_playbook, run_role
from controller_processes import CLUSTER, controllers, kubectl_path, start_sealed_secrets, stop
from servers import free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "roles" / "gitops" / "files" / "argocd.sh"
NAME = "mlops-it-gitops-argocd"
COMPONENTS = {"team-isolation": 0, "storage": 1, "kafka": 1, "processing": 1, "mlflow": 2, "monitoring": 2, "redis": 2,
              "secrets": 2, "seldon": 3}
# The objects of each component's directory (the Kafka namespace, rendered by kafka and secrets, only in kafka's).
OBJECTS = {"team-isolation": 28, "storage": 7, "kafka": 13, "processing": 49, "mlflow": 12, "monitoring": 51, "redis": 5,
           "secrets": 10, "seldon": 6}
APPS = {f"mlops-{c}" for c in COMPONENTS} | {"mlops-root"}
# No operator reconciles these here (see the module docstring): healthy once applied. Test settings only.
OFFLINE_HEALTH = {
    f"resource.customizations.health.{kind}": 'return {status = "Healthy", message = "offline test cluster: no operator"}'
    for kind in ("kafka.strimzi.io_Kafka", "kafka.strimzi.io_KafkaTopic", "kafka.strimzi.io_KafkaUser",
                 "monitoring.coreos.com_Prometheus")}
# The push path: the same roles, applied by their own tasks (what playbooks/site.yml does for them).
PUSH = """
- name: Push the platform roles
  hosts: mlops_platform
  gather_facts: false
  roles:
    - mlops.platform.cluster
    - mlops.platform.team_isolation
    - mlops.platform.storage
    - mlops.platform.mlflow
    - mlops.platform.monitoring
    - mlops.platform.redis
    - mlops.platform.processing
    - mlops.platform.secrets
    - mlops.platform.kafka
    - mlops.platform.seldon
"""


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([kubectl_path(), "--kubeconfig", kubeconfig, *args], input=stdin, capture_output=True,
                          text=True, check=False)


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def gitops(tmp_path_factory):
    """The cluster, Argo CD's CRDs (the role applies them too; the controller needs them when it starts),
    its settings for a controller outside the cluster, redis, the repo server, the application controller
    and the Sealed Secrets controller (its certificate in a file: gitops_sealing_cert)."""
    assert shutil.which("redis-server"), "redis-server is not installed: run scripts/setup.sh (make setup) as root"
    work = tmp_path_factory.mktemp("gitops")
    kubeconfig = str(work / "kubeconfig")
    env = {**os.environ, "MLOPS_CLUSTER_NAME": NAME, "MLOPS_KUBECONFIG": kubeconfig, "MLOPS_CLUSTER_NODES": "1"}
    procs: list[subprocess.Popen] = []
    try:
        bindir = pathlib.Path(subprocess.run([str(ARGOCD), "build"], capture_output=True, text=True, check=True).stdout.strip())
        crds = subprocess.run([str(ARGOCD), "crds"], capture_output=True, text=True, check=True).stdout.strip()
        flux_crds = subprocess.run([str(ARGOCD), "flux-crds"], capture_output=True, text=True, check=True).stdout.strip()
        up = subprocess.run([str(CLUSTER), "up"], env=env, capture_output=True, text=True, check=False)
        assert up.returncode == 0, f"offline cluster {NAME} did not come up: {up.stderr[-2000:]}"
        for listing in (crds, flux_crds, controllers("crds")):
            ok(kubectl(kubeconfig, "apply", "--server-side", "-f", listing))
        for _attempt in range(60):  # a CRD has no status.conditions for a moment after its creation
            if kubectl(kubeconfig, "wait", "--for=condition=Established", "crd", "--all", "--timeout=30s").returncode == 0:
                break
            time.sleep(0.5)

        def cluster_kubectl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
            done = kubectl(kubeconfig, *args, stdin=stdin)
            ok(done)
            return done

        sealer, cert, _log = start_sealed_secrets(kubeconfig, cluster_kubectl, work)
        procs.append(sealer)
        (work / "sealing-cert.pem").write_text(cert)
        # The controller runs outside the cluster: Argo CD's in-cluster destination would need a pod's
        # service account, so the cluster is registered by its URL and credentials (a cluster Secret).
        config = yaml.safe_load(ok(kubectl(kubeconfig, "config", "view", "--raw", "--flatten", "--minify")))
        cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
        server = cluster["server"]
        tls = {"certData": user["client-certificate-data"], "keyData": user["client-key-data"]}
        if "certificate-authority-data" in cluster:
            tls["caData"] = cluster["certificate-authority-data"]
        else:
            tls["insecure"] = bool(cluster.get("insecure-skip-tls-verify"))
        settings = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm", "namespace": "argocd",
                                                                   "labels": {"app.kubernetes.io/part-of": "argocd"}},
             # The role adds the Application health key (gitops_argocd_install); this is the test's own part.
             "data": {"timeout.reconciliation": "10s", "cluster.inClusterEnabled": "false", **OFFLINE_HEALTH}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cluster-offline", "namespace": "argocd", "labels": {
                "app.kubernetes.io/part-of": "argocd", "argocd.argoproj.io/secret-type": "cluster"}},
             "stringData": {"name": "offline", "server": server, "config": json.dumps({"tlsClientConfig": tls})}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "argocd-secret", "namespace": "argocd",
                                                                "labels": {"app.kubernetes.io/part-of": "argocd"}}},
        ]
        listing = json.dumps({"apiVersion": "v1", "kind": "List", "items": settings})
        ok(kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=listing))
        redis_port, repo_port = free_port(), free_port()
        logs = work / "logs"
        logs.mkdir()
        for name in ("gpg", "ssh", "tls", "gnupg"):
            (work / name).mkdir()
        proc_env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "HOME": str(work), "ARGOCD_GPG_ENABLED": "false",
                    "ARGOCD_GPG_DATA_PATH": str(work / "gpg"), "ARGOCD_GNUPGHOME": str(work / "gnupg"),
                    "ARGOCD_SSH_DATA_PATH": str(work / "ssh"), "ARGOCD_TLS_DATA_PATH": str(work / "tls")}

        def start(name: str, *argv: str) -> None:
            with open(logs / f"{name}.log", "w", encoding="utf-8") as log:
                procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=proc_env, cwd=work))

        start("redis", "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
        start("repo-server", str(bindir / "argocd-repo-server"), "--disable-tls", "--address", "127.0.0.1",
              "--port", str(repo_port), "--metrics-address", "127.0.0.1", "--metrics-port", str(free_port()),
              "--redis", f"127.0.0.1:{redis_port}", "--loglevel", "warn")
        start("application-controller", str(bindir / "argocd-application-controller"), "--kubeconfig", kubeconfig,
              "--namespace", "argocd", "--repo-server", f"127.0.0.1:{repo_port}", "--repo-server-plaintext",
              "--redis", f"127.0.0.1:{redis_port}", "--metrics-port", str(free_port()),
              # The root Application's health follows its children's at its next resync (default 120 s plus up
              # to 60 s of jitter); 10 s without jitter keeps the test short.
              "--app-resync", "10", "--app-resync-jitter", "0",
              "--self-heal-timeout-seconds", "1", "--loglevel", "warn")
        # The sealing seed key, as an inventory keeps it in a vault: an extra-vars file of its own (0600).
        seed = work / "sealing.json"
        seed.write_text(json.dumps({"gitops_sealing_seed_key": pysecrets.token_urlsafe(32)}))
        seed.chmod(0o600)
        yield {"kubeconfig": kubeconfig, "work": work, "logs": logs, "server": server, "seed": seed}
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            stop(proc)
        subprocess.run([str(CLUSTER), "down"], env=env, capture_output=True, check=False)


def cluster_vars(gitops: dict) -> list[str]:
    return ["-i", "inventories/local", "-e", f"cluster_provider=kwok cluster_name={NAME} cluster_kubeconfig={gitops['kubeconfig']}"]


def converge(gitops: dict, *extra: str):
    repo = gitops["work"] / "platform.git"
    return run_playbook("playbooks/gitops.yml", *cluster_vars(gitops), "-e", "gitops_engine=argocd",
                        "-e", f"gitops_repo_dir={repo}",
                        "-e", f"gitops_destination_server={gitops['server']}",
                        "-e", f"gitops_sealing_cert={gitops['work'] / 'sealing-cert.pem'}",
                        "-e", f"@{gitops['seed']}", "-e", "gitops_wait_timeout=600",
                        *extra)


def applications(kubeconfig: str) -> dict[str, dict]:
    items = json.loads(ok(kubectl(kubeconfig, "get", "applications.argoproj.io", "-n", "argocd", "-o", "json")))["items"]
    return {a["metadata"]["name"]: a for a in items}


def wait_synced(gitops: dict, names: set[str], timeout: float = 120) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        apps = applications(gitops["kubeconfig"])
        states = {n: ((apps.get(n) or {}).get("status", {}).get("sync", {}).get("status"),
                      (apps.get(n) or {}).get("status", {}).get("health", {}).get("status")) for n in names}
        if all(s == ("Synced", "Healthy") for s in states.values()):
            return apps
        if time.monotonic() > deadline:
            logs = {p.name: p.read_text()[-3000:] for p in gitops["logs"].iterdir()}
            pytest.fail(f"not Synced and Healthy after {timeout} s: {states}; logs: {logs}")
        time.sleep(1)


def spec_of(obj: dict) -> dict:
    """What both paths decide: the object less server bookkeeping and Argo CD's tracking annotation."""
    out = {k: v for k, v in obj.items() if k not in ("status", "metadata")}
    meta = obj["metadata"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k not in ("argocd.argoproj.io/tracking-id", "kubectl.kubernetes.io/last-applied-configuration")}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != "kubernetes.io/metadata.name"}
    return {**out, "name": meta["name"], "namespace": meta.get("namespace"), "labels": labels, "annotations": annotations}


def tree(clone: pathlib.Path) -> dict[str, list[dict]]:
    """{component: objects} of a clone of the GitOps repository."""
    out = {}
    for component in sorted((clone / "components").iterdir()):
        out[component.name] = [yaml.safe_load(p.read_text()) for p in sorted(component.iterdir())
                               if p.name != "kustomization.yaml"]
    return out


def live_objects(kubeconfig: str, objects: list[dict]) -> dict[tuple, dict]:
    """The cluster's objects for the tree's objects, a SealedSecret standing for the Secret it unseals into."""
    refs = []
    for obj in objects:
        kind, api = ("Secret", "v1") if obj["kind"] == "SealedSecret" else (obj["kind"], obj["apiVersion"])
        refs.append({"apiVersion": api, "kind": kind, "metadata": {
            k: v for k, v in obj["metadata"].items() if k in ("name", "namespace")}})
    listing = pathlib.Path(kubeconfig).with_name("refs.json")
    listing.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": refs}))
    items = json.loads(ok(kubectl(kubeconfig, "get", "-f", str(listing), "-o", "json")))["items"]
    return {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): spec_of(o) for o in items}


SECRET_KEYS = re.compile(r"password|secret|token|access_key|connection-url|dockerconfigjson|basic_auth", re.IGNORECASE)


def secret_values(objects: dict[tuple, dict]) -> set[str]:
    """The credentials among the Secrets' values (decoded; not the endpoints and regions they also hold, which
    the tree carries in the open elsewhere), to look for in Git and in the output; never printed."""
    return {base64.b64decode(v).decode(errors="replace") for key, o in objects.items() if key[0] == "Secret"
            for k, v in (o.get("data") or {}).items() if SECRET_KEYS.search(k)}


def fingerprint(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def test_argocd_syncs_the_rendered_platform_seals_its_secrets_and_heals_it(gitops, tmp_path):
    kubeconfig = gitops["kubeconfig"]
    start = time.monotonic()
    first = converge(gitops)
    assert first.returncode == 0, first.stdout[-6000:]
    assert recap(first.stdout)["changed"] >= 1
    assert "Wait until every Application is Synced and Healthy" in first.stdout
    apps = wait_synced(gitops, APPS, timeout=5)
    synced_after = time.monotonic() - start
    print(f"\n[figure] first converge to {len(APPS)} Applications Synced+Healthy: {synced_after:.1f} s")
    waves = {name: int(a["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) for name, a in apps.items()
             if name != "mlops-root"}
    assert waves == {f"mlops-{c}": w for c, w in COMPONENTS.items()}

    # The waves in order: the root creates a wave's Applications only once every Application of the waves
    # before is Healthy, so an object of an earlier wave's component exists before a later wave's Application
    # (and so before any of its objects): team namespaces < mlops-storage < the minio namespace < mlops-mlflow...
    def created(kind: str, name: str, namespace: str | None = None) -> str:
        where = ["-n", namespace] if namespace else []
        return json.loads(ok(kubectl(kubeconfig, "get", kind, name, *where, "-o", "json")))["metadata"]["creationTimestamp"]

    first_object = {"team-isolation": created("namespace", "financial-ml"), "storage": created("namespace", "minio"),
                    "kafka": created("namespace", "kafka"), "mlflow": created("namespace", "mlflow"),
                    "monitoring": created("namespace", "monitoring"),
                    "secrets": created("sealedsecrets.bitnami.com", "grafana-admin", "monitoring"),
                    "redis": created("namespace", "redis"), "processing": created("namespace", "spark-operator"),
                    "seldon": created("seldonruntimes.mlops.seldon.io", "seldon", "financial-ml")}
    app_created = {c: apps[f"mlops-{c}"]["metadata"]["creationTimestamp"] for c in COMPONENTS}
    for early, wave_a in COMPONENTS.items():
        for late, wave_b in COMPONENTS.items():
            if wave_a < wave_b:
                assert first_object[early] <= app_created[late] <= first_object[late], (early, late, first_object, app_created)
    order = {c: (COMPONENTS[c], app_created[c], first_object[c]) for c in COMPONENTS}
    print(f"[figure] Application created / first object: {order}")
    settings = json.loads(ok(kubectl(kubeconfig, "get", "configmap", "argocd-cm", "-n", "argocd", "-o", "json")))["data"]
    assert "obj.status.health.status" in settings["resource.customizations.health.argoproj.io_Application"]

    # The tree: one directory per component, a kustomization.yaml listing every file, no Secret: SealedSecrets.
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(gitops["work"] / "platform.git"), str(clone)], check=True)
    components = tree(clone)
    assert sorted(components) == sorted(COMPONENTS)
    assert {c: len(o) for c, o in components.items()} == OBJECTS
    for name in components:
        folder = clone / "components" / name
        listed = yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
        assert listed == sorted(p.name for p in folder.iterdir() if p.name != "kustomization.yaml")
    objects = [o for objs in components.values() for o in objs]
    assert not [o for o in objects if o["kind"] == "Secret"]
    sealed = sorted(f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in objects if o["kind"] == "SealedSecret")
    assert sealed == ["airflow/airflow", "airflow/airflow-mlflow", "financial-ml/kafka-credentials", "financial-ml/ml-platform",
                      "financial-ml/redis", "financial-mlops-pytorch/ghcr", "financial-mlops-pytorch/ml-platform", "kafka/financial-ml-scram-password",
                      "minio/minio-credentials", "mlflow/mlflow-database-secret", "mlflow/mlflow-server",
                      "monitoring/alertmanager-alertmanager-config", "monitoring/grafana-admin", "redis/redis-auth"]
    synced = live_objects(kubeconfig, objects)
    assert len(synced) == len(objects)
    # No value of any unsealed Secret in Git (every commit) or in the converge's output.
    values = {v for v in secret_values(synced) if len(v) >= 8}
    history = subprocess.run(["git", "--git-dir", str(gitops["work"] / "platform.git"), "log", "-p", "--all"],
                             capture_output=True, text=True, check=True).stdout
    leaked = sum(1 for v in values if v in history or v in first.stdout)
    assert len(values) >= 6 and leaked == 0, f"{leaked} of {len(values)} secret values appear in Git or the output"
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
    per_component = {c: len(o) for c, o in components.items()}
    print(f"[figure] {len(APPS)} Applications, {len(objects)} objects ({len(sealed)} SealedSecrets); "
          f"per component: {per_component}")

    # A second converge: the same bytes (deterministic sealing), no commit, no change.
    mark = time.monotonic()
    second = converge(gitops)
    print(f"[figure] second converge (no change): {time.monotonic() - mark:.1f} s")
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap(second.stdout)["changed"] == 0, second.stdout[-4000:]
    refs = subprocess.run(["git", "--git-dir", str(gitops["work"] / "platform.git"), "rev-parse", "main"],
                          capture_output=True, text=True, check=True).stdout
    assert refs == head

    # Check mode: renders, finds the same tree and the same objects, writes nothing.
    checked = converge(gitops, "--check")
    assert checked.returncode == 0 and recap(checked.stdout)["changed"] == 0, checked.stdout[-4000:]

    # selfHeal: a NetworkPolicy and MLflow's Deployment deleted by hand come back.
    ok(kubectl(kubeconfig, "delete", "networkpolicy", "mlops-default-deny", "-n", "financial-ml"))
    ok(kubectl(kubeconfig, "delete", "deployment", "mlflow", "-n", "mlflow", "--wait=false"))
    mark = time.monotonic()
    deadline = mark + 90
    while (kubectl(kubeconfig, "get", "networkpolicy", "mlops-default-deny", "-n", "financial-ml").returncode != 0
           or kubectl(kubeconfig, "get", "deployment", "mlflow", "-n", "mlflow").returncode != 0):
        assert time.monotonic() < deadline, "selfHeal did not restore financial-ml/mlops-default-deny and mlflow/mlflow"
        time.sleep(1)
    wait_synced(gitops, {"mlops-team-isolation", "mlops-mlflow"})
    print(f"[figure] selfHeal restored both objects (Synced+Healthy) in {time.monotonic() - mark:.1f} s")

    # The push path on the same cluster: the same objects with the same content, the unsealed Secrets'
    # keys and values included (compared, never printed). Field ownership moves to the collection.
    playbook = tmp_path / "push.yml"
    playbook.write_text(PUSH)
    mark = time.monotonic()
    pushed = run_playbook(str(playbook), *cluster_vars(gitops))
    print(f"[figure] push path over the synced platform: {time.monotonic() - mark:.1f} s")
    assert pushed.returncode == 0, pushed.stdout[-4000:]
    after_push = live_objects(kubeconfig, objects)
    assert after_push.keys() == synced.keys()
    differs = [f"{k} {fingerprint(synced[k])} != {fingerprint(after_push[k])}" for k in synced
               if {**synced[k], "annotations": {}} != {**after_push[k], "annotations": {}}]
    assert not differs, differs
    wait_synced(gitops, APPS)

    # Remove a team from the inventory: the commit drops its files, Argo CD prunes its namespace (with its
    # SealedSecrets) and the root Application its AppProject.
    teams = yaml.safe_load((ROOT / "inventories/local/group_vars/all/teams.yml").read_text())["teams"]
    kept = tmp_path / "teams.json"
    kept.write_text(json.dumps({"teams": teams[:1]}))
    removed = teams[1]["name"]
    mark = time.monotonic()
    third = converge(gitops, "-e", f"@{kept}")
    assert third.returncode == 0, third.stdout[-4000:]
    deadline = time.monotonic() + 90
    while True:
        namespace = kubectl(kubeconfig, "get", "namespace", removed, "-o", "json")
        project = kubectl(kubeconfig, "get", "appprojects.argoproj.io", "-n", "argocd", f"team-{removed}")
        sealed_left = kubectl(kubeconfig, "get", "sealedsecrets.bitnami.com", "-n", removed, "-o", "name").stdout.strip()
        gone = namespace.returncode != 0 or json.loads(namespace.stdout)["status"].get("phase") == "Terminating"
        if gone and project.returncode != 0 and not sealed_left:
            break
        assert time.monotonic() < deadline, f"not pruned: namespace {removed} {namespace.stdout[:200]}, project {project.stdout}"
        time.sleep(1)
    assert kubectl(kubeconfig, "get", "namespace", teams[0]["name"]).returncode == 0
    print(f"[figure] team removal converge and prune: {time.monotonic() - mark:.1f} s; whole test {time.monotonic() - start:.1f} s")


def test_every_rendered_delivery_object_passes_server_side_dry_run(gitops, tmp_path):
    kubeconfig = gitops["kubeconfig"]
    render = tmp_path / "render"
    render.mkdir()
    rendered = run_role("mlops.platform.team_isolation", tmp_path, {
        "team_isolation_kubeconfig": kubeconfig, "mlops_render_only": True, "mlops_render_dir": str(render),
        "team_isolation_teams": yaml.safe_load((ROOT / "inventories/local/group_vars/all/teams.yml").read_text())["teams"]})
    assert rendered.returncode == 0, rendered.stdout[-4000:]
    for engine in ("argocd", "flux"):
        facts = build_tree({
            "render_dir": str(render), "engine": engine, "components": {},
            # Flux's GitRepository accepts http, https and ssh URLs only (its CRD says so; file:// is refused).
            "repo_url": "file:///srv/platform.git" if engine == "argocd" else "https://git.example/platform.git",
            "branch": "main", "teams": [{"name": "financial-ml"}], "project": "dryrun-platform", "prefix": "dryrun-",
            "argocd_namespace": "argocd", "flux_namespace": "flux-system",
            "destination_server": "https://kubernetes.default.svc", "automated": True, "prune": True, "self_heal": True})[1]
        kinds = sorted({o["kind"] for o in facts["delivery"]})
        assert kinds == (["AppProject", "Application"] if engine == "argocd" else ["GitRepository", "Kustomization"])
        if engine == "flux":
            assert not [o for o in facts["delivery"] if o["kind"] == "Kustomization" and "dependsOn" in o["spec"]]
        listing = json.dumps({"apiVersion": "v1", "kind": "List", "items": facts["delivery"]})
        ok(kubectl(kubeconfig, "apply", "--server-side", "--dry-run=server", "-f", "-", stdin=listing))
