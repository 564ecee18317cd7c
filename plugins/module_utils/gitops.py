# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""GitOps delivery: the objects the platform roles render (k8s_bundle ``render_only``) as a Git-ready
tree, committed to a Git repository, and the Argo CD app-of-apps or the Flux Kustomizations that apply it.

The tree, every name derived from the objects, so the same inventory gives the same bytes:

    components/<component>/kustomization.yaml      resources: the files below, sorted
    components/<component>/<kind>-[<namespace>-]<name>.yaml   one object each, as the role would send it
    argocd/kustomization.yaml, application-<component>.yaml, appproject-<name>.yaml   (engine argocd)
    flux/kustomization.yaml, gitrepository.yaml, kustomization-<component>.yaml        (engine flux)

A plain Secret never lands in the tree: the whole call fails before anything is written, naming each one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    yaml = None

ENGINES = ("none", "argocd", "flux")
# Bundle name (k8s_bundle ``name``) -> (component directory, sync wave), seed 003's order: namespaces,
# teams and secrets; then storage and the database; then MLflow; then serving.
DEFAULT_COMPONENTS = {
    "team_isolation": {"component": "team-isolation", "wave": 0},
    "secrets": {"component": "secrets", "wave": 0},
    "storage": {"component": "storage", "wave": 1},
    "kafka": {"component": "kafka", "wave": 1},
    "mlflow": {"component": "mlflow", "wave": 2},
    "monitoring": {"component": "monitoring", "wave": 2},
    # The Seldon charts as Argo CD Applications or Flux HelmReleases (seldon role, gitops_charts.yml): the
    # controller and its CRDs are Healthy before the runtimes' wave applies SeldonRuntimes.
    "seldon-controller": {"component": "seldon-controller", "wave": 2},
    "seldon-crds": {"component": "seldon", "wave": 3},
    "seldon-runtimes": {"component": "seldon", "wave": 3},
}
LABELS = {"app.kubernetes.io/managed-by": "mlops.platform", "app.kubernetes.io/part-of": "mlops-platform",
          "app.kubernetes.io/component": "gitops"}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class GitOpsError(Exception):
    """Bad input; nothing was written."""


def variable_errors(values: dict, context: dict | None = None) -> list[str]:
    """The gitops role's checks beyond its argument spec, run by mlops.platform.validate_roles."""
    errors = []
    engine = values.get("gitops_engine", "none")
    if engine not in ENGINES:
        errors.append(f"gitops_engine: {engine!r} is not one of {', '.join(ENGINES)}")
    if engine == "none":
        return errors
    # Absent: the role's default (file:// of gitops_repo_dir) applies.
    url = values.get("gitops_repo_url", "file://")
    if not url:
        errors.append("gitops_repo_url: empty; set the URL Argo CD or Flux clones (file:///path/to/bare.git works offline)")
    elif engine == "flux" and not re.match(r"^(http|https|ssh)://", url):
        errors.append(f"gitops_repo_url: {url!r}: Flux's GitRepository accepts http://, https:// or ssh:// URLs only; "
                      "serve the bare repository over HTTP or SSH")
    for name in ("gitops_argocd_namespace", "gitops_flux_namespace", "gitops_project"):
        value = values.get(name)
        if value is not None and not DNS_LABEL.match(str(value)):
            errors.append(f"{name}: {value!r} is not a DNS label (lowercase letters, digits and '-', at most 63)")
    waves = {}
    for bundle, spec in (values.get("gitops_components") or {}).items():
        if not isinstance(spec, dict) or not DNS_LABEL.match(str(spec.get("component", ""))):
            errors.append(f"gitops_components.{bundle}.component: must be a DNS label")
            continue
        if not isinstance(spec.get("wave"), int):
            errors.append(f"gitops_components.{bundle}.wave: must be an integer")
            continue
        other = waves.setdefault(spec["component"], spec["wave"])
        if other != spec["wave"]:
            errors.append(f"gitops_components.{bundle}: component {spec['component']} has waves {other} and {spec['wave']}; give it one")
    return errors


def object_file(obj: dict) -> str:
    meta = obj["metadata"]
    parts = [obj["kind"].lower(), meta.get("namespace"), meta["name"]]
    return "-".join(p for p in parts if p).replace(":", "-").replace("/", "-") + ".yaml"


def dump(obj) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)


def read_rendered(render_dir: str, components: dict) -> tuple[dict[str, list[dict]], list[str]]:
    """{component: objects} from the files k8s_bundle wrote (NNN-<name>.yaml), and the bundle names ignored."""
    found: dict[str, list[dict]] = {}
    ignored = []
    for file_name in sorted(os.listdir(render_dir)):
        match = re.match(r"^\d+-(.+)\.yaml$", file_name)
        if not match:
            continue
        bundle = match.group(1)
        if bundle not in components:
            ignored.append(bundle)
            continue
        with open(os.path.join(render_dir, file_name), encoding="utf-8") as handle:
            objects = [d for d in yaml.safe_load_all(handle) if d]
        found.setdefault(components[bundle]["component"], []).extend(objects)
    return found, ignored


def plain_secrets(tree: dict[str, list[dict]]) -> list[str]:
    return [f"{component}: Secret {o['metadata'].get('namespace', '')}/{o['metadata']['name']}"
            for component, objects in sorted(tree.items()) for o in objects
            if o.get("kind") == "Secret" and o.get("apiVersion") == "v1"]


def component_files(objects: list[dict]) -> dict[str, str]:
    """{file name: YAML} of one component directory, its kustomization.yaml included."""
    files = {}
    for obj in objects:
        name = object_file(obj)
        if name in files:
            raise GitOpsError(f"two objects write {name}; object names must differ")
        files[name] = dump(obj)
    files["kustomization.yaml"] = dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                                        "resources": sorted(files)})
    return files


def argocd_objects(params: dict, waves: dict[str, int]) -> list[dict]:
    """The app-of-apps: an AppProject for the platform and one per team, one Application per component."""
    namespace = params["argocd_namespace"]
    server = params["destination_server"]
    repo = params["repo_url"]
    out = [{
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": params["project"], "namespace": namespace, "labels": LABELS},
        "spec": {"description": "The mlops.platform components (cluster-wide: namespaces, CRDs, RBAC)",
                 "sourceRepos": [repo], "destinations": [{"server": server, "namespace": "*"}],
                 "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]},
    }]
    for team in params["teams"]:
        namespaces = team.get("namespaces") or [team["name"]]
        out.append({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
            "metadata": {"name": f"team-{team['name']}", "namespace": namespace, "labels": LABELS},
            "spec": {"description": f"Team {team['name']}: deploys only into its namespaces ({', '.join(namespaces)})",
                     "sourceRepos": [repo], "destinations": [{"server": server, "namespace": n} for n in namespaces],
                     "clusterResourceWhitelist": [], "namespaceResourceBlacklist": [
                         {"group": "", "kind": "ResourceQuota"}, {"group": "", "kind": "LimitRange"},
                         {"group": "networking.k8s.io", "kind": "NetworkPolicy"}]},
        })
    automated = {"prune": params["prune"], "selfHeal": params["self_heal"]} if params["automated"] else None
    for component, wave in sorted(waves.items(), key=lambda item: (item[1], item[0])):
        spec = {"project": params["project"],
                "source": {"repoURL": repo, "targetRevision": params["branch"], "path": f"components/{component}"},
                "destination": {"server": server},
                "syncPolicy": {"syncOptions": ["ServerSideApply=true", "CreateNamespace=false"],
                               "retry": {"limit": 5, "backoff": {"duration": "5s", "factor": 2, "maxDuration": "1m"}}}}
        if automated:
            spec["syncPolicy"]["automated"] = automated
        out.append({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                    "metadata": {"name": f"{params['prefix']}{component}", "namespace": namespace, "labels": LABELS,
                                 "annotations": {"argocd.argoproj.io/sync-wave": str(wave)},
                                 "finalizers": ["resources-finalizer.argocd.argoproj.io"]},
                    "spec": spec})
    return out


def argocd_root(params: dict) -> dict:
    """The root Application of the app-of-apps: it syncs argocd/ (the component Applications, wave by wave)."""
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": f"{params['prefix']}root", "namespace": params["argocd_namespace"], "labels": LABELS},
            "spec": {"project": params["project"],
                     "source": {"repoURL": params["repo_url"], "targetRevision": params["branch"], "path": "argocd"},
                     "destination": {"server": params["destination_server"], "namespace": params["argocd_namespace"]},
                     "syncPolicy": {"automated": {"prune": params["prune"], "selfHeal": params["self_heal"]}}}}


def flux_objects(params: dict, waves: dict[str, int]) -> list[dict]:
    """A GitRepository and one Kustomization per component, each depending on every component of the wave before."""
    namespace = params["flux_namespace"]
    name = params["prefix"].rstrip("-") or "mlops-platform"
    out = [{"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": name, "namespace": namespace, "labels": LABELS},
            "spec": {"interval": "1m", "url": params["repo_url"], "ref": {"branch": params["branch"]}}}]
    ordered = sorted(set(waves.values()))
    for component, wave in sorted(waves.items(), key=lambda item: (item[1], item[0])):
        before = [w for w in ordered if w < wave]
        depends = sorted(c for c, w in waves.items() if before and w == before[-1])
        spec = {"interval": "10m", "path": f"./components/{component}", "prune": params["prune"], "wait": True,
                "timeout": "5m", "sourceRef": {"kind": "GitRepository", "name": name}}
        if depends:
            spec["dependsOn"] = [{"name": f"{params['prefix']}{c}"} for c in depends]
        out.append({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                    "metadata": {"name": f"{params['prefix']}{component}", "namespace": namespace, "labels": LABELS},
                    "spec": spec})
    return out


def build_tree(params: dict) -> tuple[dict[str, str], dict]:
    """{relative path: content} of the whole tree, and facts about it; raises GitOpsError before anything is written."""
    if yaml is None:
        raise GitOpsError("the gitops tree needs PyYAML")
    components = params["components"] or DEFAULT_COMPONENTS
    rendered, ignored = read_rendered(params["render_dir"], components)
    if not rendered:
        raise GitOpsError(f"{params['render_dir']}: no rendered component (run the platform roles with mlops_render_only first)")
    secrets = plain_secrets(rendered)
    if secrets:
        raise GitOpsError("plain Secrets would land in the Git tree; seal them (secrets role, SealedSecret) or use "
                          "ExternalSecrets: " + "; ".join(secrets))
    waves = {spec["component"]: spec["wave"] for spec in components.values() if spec["component"] in rendered}
    files = {}
    for component, objects in sorted(rendered.items()):
        for name, content in component_files(objects).items():
            files[f"components/{component}/{name}"] = content
    delivery = []
    if params["engine"] == "argocd":
        delivery = argocd_objects(params, waves)
        prefix = "argocd"
    elif params["engine"] == "flux":
        delivery = flux_objects(params, waves)
        prefix = "flux"
    if delivery:
        names = {}
        for obj in delivery:
            names[object_file(obj)] = dump(obj)
        names["kustomization.yaml"] = dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                                            "resources": sorted(names)})
        files.update({f"{prefix}/{n}": c for n, c in names.items()})
        if params["engine"] == "argocd":
            # Not in the tree (it points at it): the root of the app-of-apps, applied by the role.
            delivery = [*delivery, argocd_root(params)]
    # A hard-refresh request per Application (only the annotation, applied under a field manager of its own).
    refresh = [{"apiVersion": o["apiVersion"], "kind": o["kind"],
                "metadata": {"name": o["metadata"]["name"], "namespace": o["metadata"]["namespace"],
                             "annotations": {"argocd.argoproj.io/refresh": "hard"}}}
               for o in delivery if o["kind"] == "Application"]
    facts = {"components": {c: {"wave": waves[c], "objects": len(rendered[c])} for c in sorted(rendered)},
             "ignored": sorted(set(ignored)), "delivery": delivery, "refresh": refresh}
    return files, facts


def git(args: list[str], cwd: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "mlops.platform", "GIT_AUTHOR_EMAIL": "mlops.platform@localhost",
           "GIT_COMMITTER_NAME": "mlops.platform", "GIT_COMMITTER_EMAIL": "mlops.platform@localhost",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": cwd}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,  # pylint: disable=ansible-bad-function
                          check=False)
    if done.returncode != 0:
        raise GitOpsError(f"git {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def commit_tree(files: dict[str, str], repo: str, branch: str, message: str, check_mode: bool) -> dict:
    """Make the branch of the bare repository hold exactly files; a commit only when something differs."""
    if not os.path.isdir(repo):
        if check_mode:
            return {"changed": True, "commit": None, "files_changed": sorted(files)}
        os.makedirs(repo, mode=0o700)
        git(["init", "--bare", "-q", "-b", branch, repo], repo)
    work = tempfile.mkdtemp(prefix="mlops-gitops-")
    try:
        git(["init", "-q", "-b", branch], work)
        git(["remote", "add", "origin", os.path.abspath(repo)], work)
        has_branch = bool(git(["ls-remote", "--heads", "origin", branch], work))
        if has_branch:
            git(["fetch", "-q", "origin", branch], work)
            git(["checkout", "-q", "-B", branch, "FETCH_HEAD"], work)
        for entry in os.listdir(work):
            if entry != ".git":
                path = os.path.join(work, entry)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        for rel, content in files.items():
            path = os.path.join(work, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(content)
        git(["add", "-A"], work)
        status = git(["status", "--porcelain"], work)
        if not status and has_branch:
            return {"changed": False, "commit": git(["rev-parse", "HEAD"], work), "files_changed": []}
        changed_files = sorted(line[3:] for line in status.splitlines())
        if check_mode:
            return {"changed": True, "commit": None, "files_changed": changed_files}
        git(["commit", "-q", "-m", message], work)
        git(["push", "-q", "origin", f"HEAD:refs/heads/{branch}"], work)
        return {"changed": True, "commit": git(["rev-parse", "HEAD"], work), "files_changed": changed_files}
    finally:
        shutil.rmtree(work, ignore_errors=True)
