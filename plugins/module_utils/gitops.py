# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""GitOps delivery: the objects the platform roles render (k8s_bundle ``render_only``) as a Git-ready
tree, committed to a Git repository, and the Argo CD app-of-apps or the Flux Kustomizations that apply it.

The tree, every name derived from the objects, so the same inventory gives the same bytes:

    components/<component>/kustomization.yaml      resources: the files below, sorted
    components/<component>/<kind>-[<namespace>-]<name>.yaml   one object each, as the role would send it
    argocd/kustomization.yaml, application-<component>.yaml, appproject-<name>.yaml   (engine argocd)
    flux/kustomization.yaml, gitrepository.yaml, kustomization-<component>.yaml        (engine flux)

A plain Secret never lands in the tree: with the Sealed Secrets controller's certificate each one is sealed
(strict scope, deterministic with a seed key, so the same inputs give the same bytes) into a SealedSecret that
carries its labels, annotations and type; without a certificate the whole call fails before anything is written,
naming each one and the fix. ExternalSecrets (the secrets role's external mode) hold no value and pass through.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    yaml = None

from ansible_collections.mlops.platform.plugins.module_utils import sealing

ENGINES = ("none", "argocd", "flux")
# Bundle name (k8s_bundle ``name``) -> (component directory, sync wave), seed 003's order: namespaces and
# teams; then storage and Kafka; then MLflow, monitoring and the platform secrets; then serving. The secrets
# sync in MLflow's and monitoring's wave, not before: some land in the namespaces those create (Grafana's
# admin Secret in monitoring, site.yml runs secrets after monitoring for the same reason), and Grafana only
# becomes healthy with it, so a later wave would wait forever (the Application's retry covers the moment
# before the namespace exists). Every bundle the rendered roles write must be here (or in
# gitops_components): an unknown one fails the call, since its objects would silently miss the tree.
DEFAULT_COMPONENTS = {
    "team_isolation": {"component": "team-isolation", "wave": 0},
    "secrets": {"component": "secrets", "wave": 2},
    "storage": {"component": "storage", "wave": 1},
    "kafka": {"component": "kafka", "wave": 1},
    "mlflow": {"component": "mlflow", "wave": 2},
    "monitoring": {"component": "monitoring", "wave": 2},
    # Redis waits for its password Secret (secrets role, same wave); the operators of the processing
    # layer only need the team namespaces.
    "redis": {"component": "redis", "wave": 2},
    "processing": {"component": "processing", "wave": 1},
    # The Seldon charts as Argo CD Applications or Flux HelmReleases (seldon role, gitops_charts.yml): the
    # controller and its CRDs are Healthy before the runtimes' wave applies SeldonRuntimes.
    "seldon-controller": {"component": "seldon-controller", "wave": 2},
    "seldon-crds": {"component": "seldon", "wave": 3},
    "seldon-runtimes": {"component": "seldon", "wave": 3},
}
# The API server fills a StatefulSet's volumeClaimTemplates with apiVersion, kind and status.phase: Pending;
# Argo CD's diff would keep such an Application OutOfSync forever (argo-cd issues 11143, 16707), with no
# difference a sync could remove. Only these server-filled fields are ignored; the claims' spec is compared.
IGNORE_DIFFERENCES = [{"group": "apps", "kind": "StatefulSet", "jqPathExpressions": [
    ".spec.volumeClaimTemplates[]?.apiVersion", ".spec.volumeClaimTemplates[]?.kind",
    ".spec.volumeClaimTemplates[]?.status", ".spec.volumeClaimTemplates[]?.metadata.creationTimestamp"]},
    # A printer column's priority 0 is its default: the API server drops it (omitempty), Argo CD's diff would keep
    # a CRD that spells it out (the Flink operator's) OutOfSync forever. Only a zero priority is ignored.
    {"group": "apiextensions.k8s.io", "kind": "CustomResourceDefinition", "jqPathExpressions": [
        ".spec.versions[]?.additionalPrinterColumns[]? | select(.priority == 0) | .priority"]}]
# Bundles that only read back (a check-mode comparison of objects another bundle already renders).
READ_ONLY_BUNDLES = ("team_isolation_verify",)
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
    if values.get("gitops_sealing_cert") and not values.get("gitops_sealing_seed_key"):
        errors.append("gitops_sealing_seed_key: empty while gitops_sealing_cert is set; give a secret (vault) so that "
                      "the sealing is deterministic and a second converge commits nothing")
    unknown = [r for r in values.get("gitops_render_roles") or [] if r in ("cluster", "gitops")]
    if unknown:
        errors.append(f"gitops_render_roles: {', '.join(unknown)} render no platform object; remove them")
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
    """{component: objects} from the files k8s_bundle wrote (NNN-<name>.yaml), and the read-only bundles ignored.

    A bundle that maps to no component fails: its objects would be missing from the tree."""
    found: dict[str, list[dict]] = {}
    ignored = []
    unknown = []
    for file_name in sorted(os.listdir(render_dir)):
        match = re.match(r"^\d+-(.+)\.yaml$", file_name)
        if not match:
            continue
        bundle = match.group(1)
        if bundle in READ_ONLY_BUNDLES and bundle not in components:
            ignored.append(bundle)
            continue
        if bundle not in components:
            unknown.append(bundle)
            continue
        with open(os.path.join(render_dir, file_name), encoding="utf-8") as handle:
            objects = [d for d in yaml.safe_load_all(handle) if d]
        found.setdefault(components[bundle]["component"], []).extend(objects)
    if unknown:
        raise GitOpsError(
            "rendered bundles that map to no component (their objects would miss the Git tree): "
            + ", ".join(sorted(set(unknown))) + f"; known: {', '.join(sorted(components))}. Fix: add each to "
            "gitops_components ({component: <dns label>, wave: <int>}, the defaults included when you set it), "
            "or remove its role from gitops_render_roles")
    return found, ignored


def object_key(obj: dict) -> tuple:
    meta = obj.get("metadata") or {}
    return (obj.get("apiVersion", "").rpartition("/")[0], obj.get("kind"), meta.get("namespace") or "", meta.get("name"))


def deduplicate(tree: dict[str, list[dict]], waves: dict[str, int]) -> list[str]:
    """An object two components render (the secrets and kafka roles both render the Kafka namespace, as the push
    path applies it from both) stays in the component of the earliest wave only: Argo CD tracks an object in one
    Application, a second one reports a SharedResourceWarning and stays OutOfSync. Different content fails."""
    owner: dict[tuple, tuple[str, dict]] = {}
    for component in sorted(tree, key=lambda c: (waves.get(c, 0), c)):
        for obj in tree[component]:
            owner.setdefault(object_key(obj), (component, obj))
    moved = []
    for component in sorted(tree):
        kept = []
        for obj in tree[component]:
            first, first_obj = owner[object_key(obj)]
            if first == component:
                kept.append(obj)
                continue
            what = f"{obj['kind']} {'/'.join(p for p in object_key(obj)[2:] if p)}"
            if first_obj != obj:
                raise GitOpsError(f"{what}: rendered differently by components {first} and {component}; one object "
                                  "can be managed by one Application only: render it the same or in one role")
            moved.append(f"{component}: {what} (kept in {first})")
        tree[component] = kept
    return moved


def plain_secrets(tree: dict[str, list[dict]]) -> list[str]:
    return [f"{component}: Secret {o['metadata'].get('namespace', '')}/{o['metadata']['name']}"
            for component, objects in sorted(tree.items()) for o in objects
            if o.get("kind") == "Secret" and o.get("apiVersion") == "v1"]


def secret_values(obj: dict) -> dict[str, bytes]:
    """The values of a v1 Secret as the API server would store them (data decoded, stringData over it)."""
    values = {k: base64.b64decode(v or "") for k, v in (obj.get("data") or {}).items()}
    values.update({k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()})
    return values


def seed_key_bytes(seed_key: str) -> bytes:
    """The HMAC key of the deterministic sealing, from the vaulted gitops_sealing_seed_key."""
    return hashlib.sha256(b"mlops.platform/gitops/seal-seed/v1" + seed_key.encode()).digest()


def seal_secrets(tree: dict[str, list[dict]], certificate: str, seed_key: str) -> list[str]:
    """Replace every v1 Secret of the tree by its SealedSecret (strict scope), in place; the names sealed.

    Deterministic with seed_key: the same certificate, names and values give the same ciphertext, so a
    re-render commits nothing. Errors name the Secret, never a value."""
    if not seed_key:
        raise GitOpsError("gitops_sealing_seed_key is empty: sealing needs it (vaulted, no_log) so that a re-render "
                          "gives the same ciphertext and a second converge commits nothing")
    try:
        public_key = sealing.load_public_key(certificate)
    except sealing.SealingError as exc:
        raise GitOpsError(f"gitops_sealing_cert: {exc}") from None
    key = seed_key_bytes(seed_key)
    sealed = []
    for component, objects in sorted(tree.items()):
        for index, obj in enumerate(objects):
            if not (obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1"):
                continue
            meta = obj["metadata"]
            where = f"{component}: Secret {meta.get('namespace', '')}/{meta['name']}"
            if not meta.get("namespace"):
                raise GitOpsError(f"{where}: a strict SealedSecret needs the Secret's namespace in its metadata")
            try:
                objects[index] = sealing.sealed_secret(
                    public_key, meta["name"], meta["namespace"], secret_values(obj), scope="strict",
                    secret_type=obj.get("type") or "Opaque", labels=meta.get("labels"),
                    annotations=meta.get("annotations"), seed_key=key)
            except sealing.SealingError as exc:
                raise GitOpsError(f"{where}: cannot be sealed ({exc})") from None
            except (ValueError, TypeError) as exc:  # the message could quote a value: only its type
                raise GitOpsError(f"{where}: cannot be sealed (a value is not valid base64 or text: {type(exc).__name__})") from None
            sealed.append(where)
    return sealed


def read_certificate(value: str) -> str:
    """gitops_sealing_cert: the PEM itself, or the path of a file holding it."""
    if not value or "-----BEGIN" in value:
        return value
    try:
        with open(os.path.expanduser(value), encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise GitOpsError(f"gitops_sealing_cert: {value}: {exc.strerror}; give the PEM or the path of a file holding "
                          "it (kubeseal --fetch-cert, or GET /v1/cert.pem of the controller)") from None


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
        spec["ignoreDifferences"] = IGNORE_DIFFERENCES
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
    shared = deduplicate(rendered, {spec["component"]: spec["wave"] for spec in components.values()})
    rendered = {c: objects for c, objects in rendered.items() if objects}
    certificate = read_certificate(params.get("sealing_cert") or "")
    sealed = []
    secrets = plain_secrets(rendered)
    if secrets and certificate:
        sealed = seal_secrets(rendered, certificate, params.get("sealing_seed_key") or "")
    elif secrets:
        raise GitOpsError("plain Secrets would land in the Git tree (nothing was written): " + "; ".join(secrets)
                          + ". Fix: set gitops_sealing_cert (the Sealed Secrets controller's certificate: kubeseal "
                          "--fetch-cert or GET /v1/cert.pem) and gitops_sealing_seed_key (vault) so that each is "
                          "sealed into a SealedSecret, or deliver them as ExternalSecrets (secrets_mode: external)")
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
    # What the role applies itself. Argo CD: the AppProjects and the root only; the root then creates the
    # component Applications wave by wave (applied directly, all of them would sync at once and the waves
    # would order nothing). Flux: everything (dependsOn orders the Kustomizations).
    bootstrap = [o for o in delivery if o["kind"] == "AppProject" or o["metadata"]["name"] == f"{params['prefix']}root"] \
        if params["engine"] == "argocd" else delivery
    # A hard-refresh request for the root (only the annotation, applied under a field manager of its own);
    # gitops_status asks the same of each component Application once it exists.
    refresh = [{"apiVersion": o["apiVersion"], "kind": o["kind"],
                "metadata": {"name": o["metadata"]["name"], "namespace": o["metadata"]["namespace"],
                             "annotations": {"argocd.argoproj.io/refresh": "hard"}}}
               for o in bootstrap if o["kind"] == "Application"]
    facts = {"components": {c: {"wave": waves[c], "objects": len(rendered[c])} for c in sorted(rendered)},
             "ignored": sorted(set(ignored)), "shared": shared, "sealed": sealed, "delivery": delivery, "bootstrap": bootstrap,
             "refresh": refresh}
    return files, facts


def git(args: list[str], cwd: str, own_home: bool = True) -> str:
    """git with the collection's identity; own_home keeps the user's configuration out (a local repository).
    A remote needs the user's HOME: its SSH keys and known hosts, or a credential helper."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "mlops.platform", "GIT_AUTHOR_EMAIL": "mlops.platform@localhost",
           "GIT_COMMITTER_NAME": "mlops.platform", "GIT_COMMITTER_EMAIL": "mlops.platform@localhost",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}
    if own_home:
        env["HOME"] = cwd
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,  # pylint: disable=ansible-bad-function
                          check=False)
    if done.returncode != 0:
        raise GitOpsError(f"git {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def commit_tree(files: dict[str, str], repo: str, branch: str, message: str, check_mode: bool,
                push_url: str = "") -> dict:
    """Make the branch hold exactly files; a commit only when something differs.

    Without push_url the branch is in the bare repository repo (created when missing). With push_url
    (the repository Argo CD or Flux clones, e.g. git@host:org/platform.git) the branch is fetched from
    and pushed to it with the user's Git credentials; it must exist (nothing creates a remote)."""
    remote = push_url or os.path.abspath(repo)
    local = not push_url
    if local and not os.path.isdir(repo):
        if check_mode:
            return {"changed": True, "commit": None, "files_changed": sorted(files)}
        os.makedirs(repo, mode=0o700)
        git(["init", "--bare", "-q", "-b", branch, repo], repo)
    work = tempfile.mkdtemp(prefix="mlops-gitops-")
    try:
        git(["init", "-q", "-b", branch], work)
        git(["remote", "add", "origin", remote], work)
        try:
            has_branch = bool(git(["ls-remote", "--heads", "origin", branch], work, own_home=local))
        except GitOpsError as err:
            raise GitOpsError(f"gitops_push_url: cannot read the repository ({err}). Fix: create the repository, "
                              "give this control node access to it (SSH key or credential helper) or correct the URL") from err
        if has_branch:
            git(["fetch", "-q", "origin", branch], work, own_home=local)
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
        git(["push", "-q", "origin", f"HEAD:refs/heads/{branch}"], work, own_home=local)
        return {"changed": True, "commit": git(["rev-parse", "HEAD"], work), "files_changed": changed_files}
    finally:
        shutil.rmtree(work, ignore_errors=True)
