"""GitOps delivery through a real Argo CD, on an offline cluster of its own (mlops-it-gitops).

Argo CD v3.2.11 is built from its Go module by roles/gitops/files/argocd.sh (cached); its CRDs come
from the module's manifests/crds. The application controller and the repo server run as processes
against the cluster, with Debian's redis-server; the tree is served from a bare repository (file://).
playbooks/gitops.yml renders team_isolation (mlops_render_only), commits it and applies the
app-of-apps; the test shows the Application Synced and Healthy, the objects equal to what the push
path creates, a second converge changing nothing, selfHeal restoring a deleted object, and every
rendered Application, AppProject, GitRepository and Kustomization accepted by a server-side dry run.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import time

import pytest
import yaml
from ansible_collections.mlops.platform.plugins.module_utils.gitops import build_tree
from ansible_run import recap, run_playbook, run_role
from servers import free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "roles" / "cluster" / "files" / "offline-cluster.sh"
ARGOCD = ROOT / "roles" / "gitops" / "files" / "argocd.sh"
NAME = "mlops-it-gitops"


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
def gitops(tmp_path_factory):
    """The cluster, Argo CD's CRDs (the role applies them too; the controller needs them when it starts),
    its settings for a controller outside the cluster, redis, the repo server and the application controller."""
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
        ok(kubectl(kubeconfig, "apply", "--server-side", "-f", crds))
        ok(kubectl(kubeconfig, "apply", "--server-side", "-f", flux_crds))
        for _attempt in range(60):  # a CRD has no status.conditions for a moment after its creation
            if kubectl(kubeconfig, "wait", "--for=condition=Established", "crd", "--all", "--timeout=30s").returncode == 0:
                break
            time.sleep(0.5)
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
             "data": {"timeout.reconciliation": "10s", "cluster.inClusterEnabled": "false"}},
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
        yield {"kubeconfig": kubeconfig, "work": work, "logs": logs, "server": server}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run([str(CLUSTER), "down"], env=env, capture_output=True, check=False)


def converge(gitops: dict, *extra: str):
    repo = gitops["work"] / "platform.git"
    return run_playbook("playbooks/gitops.yml", "-i", "inventories/local", "-e", "gitops_engine=argocd",
                        "-e", f"cluster_provider=kwok cluster_name={NAME} cluster_kubeconfig={gitops['kubeconfig']}",
                        "-e", f"gitops_repo_dir={repo}",
                        "-e", f"gitops_destination_server={gitops['server']}",
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


def team_objects(kubeconfig: str) -> list[dict]:
    kinds = "namespaces,serviceaccounts,roles,rolebindings,networkpolicies,resourcequotas,limitranges"
    items = json.loads(ok(kubectl(kubeconfig, "get", kinds, "-A", "-l", "app.kubernetes.io/managed-by=mlops.platform",
                                  "-o", "json")))["items"]
    # Argo CD's namespace carries the label too (the gitops role applies it), it is not a team object.
    return [o for o in items if not (o["kind"] == "Namespace" and o["metadata"]["name"] == "argocd")]


def spec_of(obj: dict) -> dict:
    """What both paths decide: the object less server bookkeeping and Argo CD's tracking annotation."""
    out = {k: v for k, v in obj.items() if k not in ("status", "metadata")}
    meta = obj["metadata"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k not in ("argocd.argoproj.io/tracking-id", "kubectl.kubernetes.io/last-applied-configuration")}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != "kubernetes.io/metadata.name"}
    return {**out, "name": meta["name"], "namespace": meta.get("namespace"), "labels": labels, "annotations": annotations}


def test_argocd_syncs_the_rendered_platform_and_heals_it(gitops, tmp_path):
    kubeconfig = gitops["kubeconfig"]
    start = time.monotonic()
    first = converge(gitops)
    assert first.returncode == 0, first.stdout[-4000:]
    assert recap(first.stdout)["changed"] >= 1
    assert "Wait until every Application is Synced and Healthy" in first.stdout
    apps = wait_synced(gitops, {"mlops-team-isolation", "mlops-root"}, timeout=5)
    synced_after = time.monotonic() - start
    app = apps["mlops-team-isolation"]
    assert app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "0"
    assert app["spec"]["source"]["repoURL"].startswith("file://")
    settings = json.loads(ok(kubectl(kubeconfig, "get", "configmap", "argocd-cm", "-n", "argocd", "-o", "json")))["data"]
    assert "obj.status.health.status" in settings["resource.customizations.health.argoproj.io_Application"]
    assert settings["cluster.inClusterEnabled"] == "false"
    synced = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): spec_of(o) for o in team_objects(kubeconfig)}
    assert len(synced) == 28, sorted(synced)

    # The tree: one directory per component, a kustomization.yaml listing every file, no Secret.
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(gitops["work"] / "platform.git"), str(clone)], check=True)
    component = clone / "components" / "team-isolation"
    listed = yaml.safe_load((component / "kustomization.yaml").read_text())["resources"]
    assert listed == sorted(p.name for p in component.iterdir() if p.name != "kustomization.yaml")
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout

    # A second converge: no commit, no change.
    print(f"phase first converge {time.monotonic() - start:.1f}")
    second = converge(gitops)
    print(f"phase second converge {time.monotonic() - start:.1f}")
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap(second.stdout)["changed"] == 0, second.stdout[-4000:]
    refs = subprocess.run(["git", "--git-dir", str(gitops["work"] / "platform.git"), "rev-parse", "main"],
                          capture_output=True, text=True, check=True).stdout
    assert refs == head

    # Check mode: renders, finds the same tree and the same objects, writes nothing.
    checked = converge(gitops, "--check")
    assert checked.returncode == 0 and recap(checked.stdout)["changed"] == 0, checked.stdout[-4000:]

    # selfHeal: a NetworkPolicy deleted by hand comes back.
    ok(kubectl(kubeconfig, "delete", "networkpolicy", "mlops-default-deny", "-n", "financial-ml"))
    deadline = time.monotonic() + 90
    while kubectl(kubeconfig, "get", "networkpolicy", "mlops-default-deny", "-n", "financial-ml").returncode != 0:
        assert time.monotonic() < deadline, "selfHeal did not restore networkpolicy financial-ml/mlops-default-deny"
        time.sleep(1)
    wait_synced(gitops, {"mlops-team-isolation"})
    print(f"phase selfheal {time.monotonic() - start:.1f}")

    # The push path on the same cluster: the role finds nothing to change (same objects, same content).
    pushed = run_role("mlops.platform.team_isolation", tmp_path, {
        "team_isolation_kubeconfig": kubeconfig,
        "team_isolation_teams": yaml.safe_load((ROOT / "inventories/local/group_vars/all/teams.yml").read_text())["teams"]})
    assert pushed.returncode == 0, pushed.stdout[-4000:]
    # It reports a change: the field ownership moves from Argo CD's manager to the collection's.
    after_push = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): spec_of(o) for o in team_objects(kubeconfig)}
    assert after_push.keys() == synced.keys()
    differs = [k for k in synced if {**synced[k], "annotations": {}} != {**after_push[k], "annotations": {}}]
    assert not differs, differs
    print(f"argocd: Synced+Healthy {synced_after:.1f} s after the converge started")

    # Remove a team from the inventory: the commit drops its files, Argo CD prunes its namespace and
    # the root Application its AppProject.
    teams = yaml.safe_load((ROOT / "inventories/local/group_vars/all/teams.yml").read_text())["teams"]
    kept = tmp_path / "teams.json"
    kept.write_text(json.dumps({"teams": teams[:1]}))
    removed = teams[1]["name"]
    print(f"phase push {time.monotonic() - start:.1f}")
    third = converge(gitops, "-e", f"@{kept}")
    print(f"phase prune converge {time.monotonic() - start:.1f}")
    assert third.returncode == 0, third.stdout[-4000:]
    deadline = time.monotonic() + 90
    while True:
        namespace = kubectl(kubeconfig, "get", "namespace", removed, "-o", "json")
        project = kubectl(kubeconfig, "get", "appprojects.argoproj.io", "-n", "argocd", f"team-{removed}")
        gone = namespace.returncode != 0 or json.loads(namespace.stdout)["status"].get("phase") == "Terminating"
        if gone and project.returncode != 0:
            break
        assert time.monotonic() < deadline, f"not pruned: namespace {removed} {namespace.stdout[:200]}, project {project.stdout}"
        time.sleep(1)
    assert kubectl(kubeconfig, "get", "namespace", teams[0]["name"]).returncode == 0
    print(f"phase pruned {time.monotonic() - start:.1f}")


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
