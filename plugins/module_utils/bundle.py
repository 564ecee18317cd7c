# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Apply a bundle of Kubernetes objects with server-side apply: checked first, then written.

The order of work, so that bad input changes nothing:

1. every definition is checked without the API (apiVersion, kind, metadata.name, duplicates);
2. discovery: every kind must be served, or defined by a CustomResourceDefinition in the bundle;
3. every object that can be sent is read and dry-run (``dryRun=All``); an object whose dry-run
   equals what the server has is unchanged and is never written. Any refusal fails the call here;
4. the writes: CRDs and namespaces first (waiting until the CRDs are established), then the
   objects that had to wait for them (dry-run first too), then everything else, each group in
   Helm's install order (volumes, quotas, accounts, Secrets, RBAC, Services, then workloads);
5. optional prune of labelled objects that the bundle no longer holds, and optional wait until
   the workloads are ready.

``changed`` is the truth of step 3: an object counts when the server's copy would differ
(managed-field timestamps aside). Large objects (upstream CRDs run to hundreds of KiB, and a
dry-run makes the API server decode and validate all of it) carry the digest of the definition
this module applied; when the server's copy has that digest and still holds every field of the
definition, the object is unchanged without a dry-run: a new definition fails the first test, a
field changed by hand the second, and either goes through the dry-run as usual. Secrets' values never leave this module: diffs show
``<hidden>`` (``<hidden, changed>`` when a value differs).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    yaml = None
from ansible_collections.mlops.platform.plugins.module_utils.kube import ApiError, Client, Config, Failed, KubeError
from ansible_collections.mlops.platform.plugins.module_utils.status import readiness
from ansible_collections.mlops.platform.plugins.module_utils.versions import guard_errors

FIRST_KINDS = ("CustomResourceDefinition", "Namespace")
WAITABLE = ("Deployment", "StatefulSet", "DaemonSet", "Job")
HIDDEN = "<hidden>"
# Reads and dry-runs go out on this many connections at once: the API server answers them in
# parallel, one connection would wait for each answer in turn.
PLAN_CONNECTIONS = 4
# Larger definitions (serialized) carry DIGEST_ANNOTATION, see the module docstring.
LARGE_OBJECT = 32 * 1024
DIGEST_ANNOTATION = "mlops.platform/applied-digest"
SERVER_META = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink")
# Write order of everything else, after Helm's install order: what others refer to comes first.
# PersistentVolumes early: a claim created (by a StatefulSet) before its pre-bound volume is in
# the volume controller's cache waits for the controller's next resync, about 15 s.
INSTALL_ORDER = (
    "PriorityClass", "StorageClass", "PersistentVolume", "NetworkPolicy", "ResourceQuota", "LimitRange",
    "PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap",
    "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
    "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod",
    "ReplicationController", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob",
    "IngressClass", "Ingress", "APIService",
)


def install_rank(obj: dict) -> int:
    """Position in INSTALL_ORDER; kinds it does not list (custom resources) go last."""
    kind = obj["kind"]
    return INSTALL_ORDER.index(kind) if kind in INSTALL_ORDER else len(INSTALL_ORDER)


class BundleError(Exception):
    """Bad input or a refusal by the server; nothing of the bundle was written."""


def key(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')}/{ns}/{meta.get('name')}" if ns else f"{obj.get('kind')}/{meta.get('name')}"


def identity(obj: dict) -> tuple:
    meta = obj["metadata"]
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    return group, obj["kind"], meta.get("namespace") or "", meta["name"]


def check_definitions(definitions: list) -> list[dict]:
    """Static checks; every problem is reported at once, naming the definition."""
    problems = []
    seen: dict[tuple, int] = {}
    for index, obj in enumerate(definitions):
        where = f"definitions[{index}]"
        if not isinstance(obj, dict):
            problems.append(f"{where}: is a {type(obj).__name__}, not a mapping")
            continue
        meta = obj.get("metadata")
        for field, value in (("apiVersion", obj.get("apiVersion")), ("kind", obj.get("kind"))):
            if not isinstance(value, str) or not value:
                problems.append(f"{where}: {field} is missing; set it (for example apiVersion: v1, kind: ConfigMap)")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta.get("name"):
            problems.append(f"{where}: metadata.name is missing; every object needs a name")
            continue
        where = f"{where} ({key(obj)})"
        if meta["name"] in (".", "..") or "/" in meta["name"] or "%" in meta["name"] or len(meta["name"]) > 253:
            problems.append(f"{where}: metadata.name {meta['name']!r} cannot be used in a URL path (no '/', '%', '.' or '..')")
        if "namespace" in meta and (not isinstance(meta["namespace"], str) or not meta["namespace"]):
            problems.append(f"{where}: metadata.namespace is empty; remove it or name a namespace")
        if isinstance(obj.get("apiVersion"), str) and isinstance(obj.get("kind"), str):
            ident = identity(obj)
            if ident in seen:
                problems.append(f"{where}: the same object as definitions[{seen[ident]}]; keep one")
            seen[ident] = index
    if problems:
        raise BundleError("; ".join(problems))
    return definitions


def _crd_kinds(definitions: list[dict]) -> dict[tuple[str, str], dict]:
    """{(apiVersion, kind): crd} for the versions the bundle's CRDs serve."""
    kinds = {}
    for obj in definitions:
        if obj["kind"] != "CustomResourceDefinition":
            continue
        spec = obj.get("spec") or {}
        for version in spec.get("versions") or []:
            if version.get("served", True):
                kinds[(f"{spec.get('group')}/{version.get('name')}", (spec.get("names") or {}).get("kind"))] = obj
    return kinds


def with_digest(obj: dict) -> dict:
    """A large definition with DIGEST_ANNOTATION (the digest of the definition without it); others as they are."""
    body = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    if len(body) <= LARGE_OBJECT:
        return obj
    meta = obj["metadata"]
    annotations = {**(meta.get("annotations") or {}), DIGEST_ANNOTATION: hashlib.sha256(body.encode()).hexdigest()[:32]}
    return {**obj, "metadata": {**meta, "annotations": annotations}}


def contains(desired, live) -> bool:
    """Whether the live value holds every field of the desired one with the same value (the server may add more)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(k in live and contains(v, live[k]) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(live, list) and len(desired) == len(live) and all(map(contains, desired, live))
    return type(desired) is type(live) and desired == live


def unchanged_as_applied(obj: dict, live: dict | None) -> bool:
    """A large definition whose digest the server's copy carries and whose fields it still holds."""
    digest = (obj["metadata"].get("annotations") or {}).get(DIGEST_ANNOTATION)
    return (digest is not None and live is not None
            and ((live.get("metadata") or {}).get("annotations") or {}).get(DIGEST_ANNOTATION) == digest
            and contains(obj, live))


def normalized(obj: dict | None) -> dict | None:
    """What a change is measured on: no status, no server bookkeeping, no managed-field times."""
    if obj is None:
        return None
    # Copies of the two levels that change; the rest is shared with obj, only compared.
    out = {k: v for k, v in obj.items() if k != "status"}
    out["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_META}
    fields = (obj.get("metadata") or {}).get("managedFields") or []
    # Ownership still counts: who manages which fields, minus the time it last happened. The
    # server adds a "before-first-apply" entry to a dry-run against an object with no managed
    # fields at all (a bare Namespace) and drops it again on the real apply: not a change.
    out["_managers"] = sorted(
        (json_key(f.get("manager")), json_key(f.get("operation")), json_key(f.get("fieldsV1")))
        for f in fields if f.get("manager") != "before-first-apply"
    )
    return out


def json_key(value) -> str:
    return json.dumps(value, sort_keys=True)


def shown(obj: dict | None, other: dict | None = None) -> dict | None:
    """An object as diffs and results show it: no bookkeeping, Secrets' values hidden."""
    if obj is None:
        return None
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for name in SERVER_META:
        meta.pop(name, None)
    if out.get("kind") == "Secret":
        for field in ("data", "stringData"):
            values = out.get(field)
            if isinstance(values, dict):
                theirs = ((other or {}).get(field) or {}) if other else {}
                out[field] = {k: (HIDDEN if other is None or theirs.get(k) == v else "<hidden, changed>") for k, v in values.items()}
    return out


class Bundle:
    """One server-side apply of a list of definitions; see the module docstring for the order."""

    def __init__(self, client: Client, definitions: list[dict], field_manager: str = "mlops.platform",
                 force: bool = True, check_mode: bool = False, wait: bool = False, wait_timeout: float = 300,
                 crd_timeout: float = 60, poll: float = 0.5):
        self.client = client
        self.objects = [with_digest(o) for o in check_definitions(definitions)]
        self.field_manager = field_manager
        self.force = force
        self.check_mode = check_mode
        self.wait = wait
        self.wait_timeout = wait_timeout
        self.crd_timeout = crd_timeout
        self.poll = poll
        self.results: list[dict] = []
        self.diffs: list[dict] = []
        self._namespaces: dict[str, bool] = {}
        self._waiting_for: dict[str, str] = {}
        self._lock = threading.Lock()
        self._spawned: list[Client] = []
        # Connections not in use: the first client, then the ones spawned for work sent at once.
        self._idle: list[Client] = [client]
        self._new_kinds: set[tuple[str, str]] = set()
        # Live objects read by one list request per kind, namespace and common labels (_prefetch).
        self._live: dict[tuple, dict] = {}

    # Reading ----------------------------------------------------------------------------

    def _namespace_exists(self, name: str) -> bool:
        if name not in self._namespaces:
            self._namespaces[name] = self.client.get("v1", "Namespace", name) is not None
        return self._namespaces[name]

    def _discover(self) -> tuple[list[dict], list[dict]]:
        """(ready, deferred): deferred objects wait for a CRD or a namespace of this bundle."""
        crd_kinds = _crd_kinds(self.objects)
        bundle_namespaces = {o["metadata"]["name"] for o in self.objects if o["kind"] == "Namespace"}
        # Every group version and namespace read once, several at a time (the clients share the cache).
        # The first on this connection alone: its answer brings the TLS session the others resume.
        versions = list(dict.fromkeys(o["apiVersion"] for o in self.objects))
        if versions:
            self.client.resources(versions[0])
        for outcome in self._each(lambda version, client: client.resources(version), versions):
            if isinstance(outcome, Exception):
                raise outcome
        namespaces = [n for n in dict.fromkeys(o["metadata"].get("namespace") for o in self.objects) if n]
        found = self._each(lambda name, client: client.get("v1", "Namespace", name) is not None, namespaces)
        for index, name in enumerate(namespaces):
            exists = found[index]
            if isinstance(exists, Exception):
                raise exists
            self._namespaces[name] = exists
        problems, ready, deferred = [], [], []
        for index, obj in enumerate(self.objects):
            info = self.client.resource(obj["apiVersion"], obj["kind"])
            meta = obj["metadata"]
            if info is None:
                # In check mode an earlier role's CRDs may not exist yet either: reported, not sent.
                if (obj["apiVersion"], obj["kind"]) in crd_kinds or self.check_mode:
                    self._waiting_for[key(obj)] = f"kind {obj['kind']} ({obj['apiVersion']}) is not served yet"
                    deferred.append(obj)
                    continue
                problems.append(f"definitions[{index}] ({key(obj)}): the API server does not serve kind {obj['kind']} "
                                f"in {obj['apiVersion']}; install its CRD first or fix apiVersion/kind")
                continue
            if info["namespaced"] and not meta.get("namespace"):
                problems.append(f"definitions[{index}] ({key(obj)}): {obj['kind']} is namespaced; set metadata.namespace")
                continue
            if not info["namespaced"] and meta.get("namespace"):
                problems.append(f"definitions[{index}] ({key(obj)}): {obj['kind']} is cluster-scoped; remove metadata.namespace")
                continue
            namespace = meta.get("namespace")
            if namespace and not self._namespace_exists(namespace):
                # In check mode an earlier role may not have created it yet: reported, not sent.
                if namespace in bundle_namespaces or self.check_mode:
                    self._waiting_for[key(obj)] = f"namespace {namespace} does not exist yet"
                    deferred.append(obj)
                    continue
                problems.append(f"definitions[{index}] ({key(obj)}): namespace {namespace} does not exist and the bundle "
                                "does not create it; add the Namespace or create it first")
                continue
            ready.append(obj)
        if problems:
            raise BundleError("; ".join(problems))
        return ready, deferred

    def _plan(self, obj: dict, client: Client) -> dict:
        """Read the object and dry-run the apply: {'obj', 'before', 'after', 'action'}."""
        meta = obj["metadata"]
        before = self._live.get((obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]))
        try:
            if before is None:
                before = client.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        except ApiError as exc:
            raise BundleError(f"{key(obj)}: cannot read it: {exc}") from exc
        if unchanged_as_applied(obj, before):
            return {"obj": obj, "before": before, "after": before, "action": "unchanged"}
        deadline = time.monotonic() + self.crd_timeout
        while True:
            try:
                after = client.apply(obj, self.field_manager, self.force, dry_run=True)
                break
            except ApiError as exc:
                # A kind whose CRD this call has just established can answer 404 for a moment.
                if exc.status == 404 and (obj["apiVersion"], obj["kind"]) in self._new_kinds and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                raise BundleError(f"{key(obj)}: the API server refused it: {exc.message}") from exc
        if before is None:
            action = "created"
        elif normalized(before) == normalized(after):
            action = "unchanged"
        else:
            action = "updated"
        return {"obj": obj, "before": before, "after": after, "action": action}

    def _prefetch(self, objects: list[dict]) -> None:
        """Read at once the objects that share a kind, a namespace and labels: one list request per
        such group, filtered by those labels, instead of one read each. An object the list does not
        return (not labelled yet, not there) or a list the server refuses (no list permission) leaves
        the object to its own read in _plan: the answer is the same, only the number of requests differs."""
        groups: dict[tuple, list[dict]] = {}
        for obj in objects:
            groups.setdefault((obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace")), []).append(obj)
        work = []
        for (api_version, kind, namespace), members in groups.items():
            if len(members) < 2:
                continue
            common = {(k, str(v)) for k, v in (members[0]["metadata"].get("labels") or {}).items()}
            for member in members[1:]:
                common &= {(k, str(v)) for k, v in (member["metadata"].get("labels") or {}).items()}
            if common:
                work.append((api_version, kind, namespace, ",".join(f"{k}={v}" for k, v in sorted(common))))

        def fetch(group: tuple, client: Client) -> dict:
            api_version, kind, namespace, selector = group
            return {(api_version, kind, namespace, item["metadata"]["name"]): item
                    for item in client.list(api_version, kind, namespace, selector)}

        for outcome in self._each(fetch, work):
            if isinstance(outcome, dict):
                self._live.update(outcome)

    def _plan_all(self, objects: list[dict]) -> list[dict]:
        """Every object read and dry-run, several at a time; every refusal named, in bundle order."""
        self._prefetch(objects)
        outcomes = self._each(self._plan, objects)
        lost = [o for o in outcomes if isinstance(o, KubeError)]
        if lost:
            raise lost[0]
        problems = [str(o) for o in outcomes if isinstance(o, Exception)]
        if problems:
            raise BundleError("; ".join(problems))
        return outcomes

    def close(self) -> None:
        for client in [self.client, *self._spawned]:
            client.close()
        self._spawned = []
        self._idle = [self.client]

    # Writing ----------------------------------------------------------------------------

    def _checkout(self) -> Client:
        """A connection of its own for one piece of work: an idle one, or a new one."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
            client = self.client.spawn()
            self._spawned.append(client)
            return client

    def _each(self, work, items: list) -> list:
        """work(item, client) for every item, several at a time; outcomes (or errors) in order.

        At most PLAN_CONNECTIONS connections, the first client's included, kept for the next call.
        """
        def one(item):
            client = self._checkout()
            try:
                return work(item, client)
            except (BundleError, KubeError) as exc:
                return exc
            finally:
                with self._lock:
                    self._idle.append(client)
        if len(items) < 2:
            return [one(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(PLAN_CONNECTIONS, len(items))) as pool:
            return list(pool.map(one, items))

    def _send(self, plan: dict, client: Client) -> dict:
        obj = plan["obj"]
        try:
            plan["after"] = client.apply(obj, self.field_manager, self.force)
        except ApiError as exc:
            raise BundleError(f"{key(obj)}: {exc.message}") from exc
        return plan

    def _write(self, plans: list[dict]) -> None:
        """Write what changed, one kind after another in the given order, each kind's objects at once."""
        pending = [p for p in plans if p["action"] != "unchanged" and not self.check_mode]
        outcomes: dict[int, object] = {}
        for rank in dict.fromkeys(install_rank(p["obj"]) for p in pending):
            group = [p for p in pending if install_rank(p["obj"]) == rank]
            sent = self._each(self._send, group)
            for index, plan in enumerate(group):
                outcomes[id(plan)] = sent[index]
            failed = [o for o in outcomes.values() if isinstance(o, Exception)]
            if failed:
                for plan in plans:
                    if isinstance(outcomes.get(id(plan)), dict):
                        self._record(plan)
                # The API server gone (not a refusal): one message, not one per object.
                lost = [o for o in failed if not isinstance(o, BundleError)]
                if lost:
                    raise lost[0]
                raise BundleError("; ".join(str(o) for o in failed) + " (refused although the dry-run passed)")
        for plan in plans:
            if plan["obj"]["kind"] == "Namespace" and not self.check_mode:
                self._namespaces[plan["obj"]["metadata"]["name"]] = True
            self._record(plan)

    def written(self) -> str:
        """What this call wrote so far, for a failure's message: nothing, or how many objects and which."""
        done = [f"{r['action']} {r['object']}" for r in self.results if r["action"] != "unchanged"]
        if not done:
            return f"nothing of this apply was written (0 of {len(self.objects)} objects)"
        return f"{len(done)} of {len(self.objects)} objects were written before the failure: {', '.join(done)}"

    def _record(self, plan: dict) -> None:
        obj, before, after, action = plan["obj"], plan["before"], plan["after"], plan["action"]
        self.results.append({"object": key(obj), "kind": obj["kind"], "name": obj["metadata"]["name"],
                             "namespace": obj["metadata"].get("namespace"), "action": action})
        if action != "unchanged":
            self.diffs.append({"before_header": key(obj), "after_header": key(obj),
                               "before": shown(before, after) or {}, "after": shown(after, before) or {}})

    def _pending(self, objects: list[dict]) -> None:
        """Check mode: objects that wait for a CRD or namespace this bundle or an earlier role would create."""
        for obj in objects:
            self._record({"obj": obj, "before": None, "after": obj, "action": "created"})
            self.results[-1]["not_sent"] = self._waiting_for.get(key(obj), "")

    def _wait_established(self, crds: list[dict]) -> None:
        deadline = time.monotonic() + self.crd_timeout
        waiting = {c["metadata"]["name"] for c in crds}
        while waiting:
            for name in sorted(waiting):
                crd = self.client.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name) or {}
                conditions = {c.get("type"): c.get("status") for c in (crd.get("status") or {}).get("conditions") or []}
                if conditions.get("Established") == "True":
                    waiting.discard(name)
            if waiting:
                if time.monotonic() > deadline:
                    raise BundleError(f"CRDs not established after {self.crd_timeout:.0f} s: {', '.join(sorted(waiting))}")
                time.sleep(min(self.poll, 0.2))
        # Discovery can list a new kind a moment after Established is set (later under
        # load): wait until every served version lists its kind, within the same deadline.
        wanted: dict[str, set] = {}
        for crd in crds:
            for version in crd["spec"].get("versions") or []:
                if version.get("served", True):
                    group_version = f"{crd['spec']['group']}/{version['name']}"
                    wanted.setdefault(group_version, set()).add(crd["spec"]["names"]["kind"])
                    self._new_kinds.add((group_version, crd["spec"]["names"]["kind"]))
        while True:
            missing = sorted(f"{kind} ({group_version})" for group_version, kinds in wanted.items()
                             for kind in kinds - set(self.client.resources(group_version, refresh=True)))
            if not missing:
                return
            if time.monotonic() > deadline:
                raise BundleError(f"CRDs established but not served after {self.crd_timeout:.0f} s: {', '.join(missing)}")
            time.sleep(min(self.poll, 0.2))

    def _wait_ready(self) -> list[str]:
        """Wait until the bundle's workloads are ready; returns what is still not ready."""
        workloads = [o for o in self.objects if o["kind"] in WAITABLE]
        deadline = time.monotonic() + self.wait_timeout
        while True:
            waiting = []
            for obj in workloads:
                meta = obj["metadata"]
                ok, detail = readiness(self.client.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace")))
                if not ok:
                    if detail == "failed":
                        raise BundleError(f"{key(obj)} failed")
                    waiting.append(f"{key(obj)} ({detail})")
            if not waiting or time.monotonic() > deadline:
                return waiting
            time.sleep(self.poll)

    # The whole call ---------------------------------------------------------------------

    def run(self) -> None:
        ready, deferred = self._discover()
        plans = self._plan_all(ready)
        self._write([p for p in plans if p["obj"]["kind"] in FIRST_KINDS])
        rest = [p for p in plans if p["obj"]["kind"] not in FIRST_KINDS]
        # CRDs are established and their kinds served before what uses them is planned, and before
        # the call returns when it created or changed one: the next task's custom resources must
        # not race the API server's discovery.
        crds = [p["obj"] for p in plans if p["obj"]["kind"] == "CustomResourceDefinition" and (deferred or p["action"] != "unchanged")]
        if crds and not self.check_mode:
            self._wait_established(crds)
        if deferred:
            if self.check_mode:
                self._pending(deferred)
            else:
                rest += self._plan_all(deferred)
        # One write order for what waited for a namespace or CRD and what did not: a volume must
        # not come after the StatefulSet whose claim it serves.
        self._write(sorted(rest, key=lambda p: install_rank(p["obj"])))

    def wait_ready(self) -> None:
        not_ready = self._wait_ready() if self.wait and not self.check_mode else []
        if not_ready:
            raise BundleError(f"not ready after {self.wait_timeout:.0f} s: {', '.join(not_ready)}")

    def prune(self, label_selector: str, kinds: list[dict], namespaces: list[str] | None) -> None:
        """Delete the objects of those kinds that carry the label but are not in the bundle."""
        keep = {identity(o) for o in self.objects}
        for item in kinds:
            info = self.client.resource(item["api_version"], item["kind"])
            if info is None:
                continue
            scopes = (namespaces or [None]) if info["namespaced"] else [None]
            for namespace in scopes:
                if namespace and not self._namespace_exists(namespace):
                    continue
                for obj in self.client.list(item["api_version"], item["kind"], namespace, label_selector):
                    if identity(obj) in keep:
                        continue
                    meta = obj["metadata"]
                    try:
                        gone = self.client.delete(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"),
                                                  dry_run=self.check_mode)
                    except ApiError as exc:
                        raise BundleError(f"{key(obj)}: delete refused: {exc.message}") from exc
                    if gone:
                        self.results.append({"object": key(obj), "kind": obj["kind"], "name": meta["name"],
                                             "namespace": meta.get("namespace"), "action": "deleted"})
                        self.diffs.append({"before_header": key(obj), "after_header": key(obj),
                                           "before": shown(obj) or {}, "after": {}})

    def missing(self, required: list[dict]) -> list[str]:
        """Kind/namespace/name of the required objects from elsewhere that do not exist."""
        out = []
        for item in required:
            try:
                found = self.client.get(item["api_version"], item["kind"], item["name"], item.get("namespace"))
            except ApiError as exc:
                raise BundleError(f"wait_requires: cannot read {item['kind']} {item['name']}: {exc.message}") from exc
            if found is None:
                out.append("/".join(p for p in (item["kind"], item.get("namespace"), item["name"]) if p))
        return out

    def summary(self) -> dict:
        counts = {action: 0 for action in ("created", "updated", "unchanged", "deleted")}
        for result in self.results:
            counts[result["action"]] += 1
        return {
            "changed": any(r["action"] != "unchanged" for r in self.results),
            "objects": self.results,
            "changes": [f"{r['action']} {r['object']}" for r in self.results if r["action"] != "unchanged"],
            "counts": counts,
        }


def live_version(obj: dict | None, guard: dict) -> str:
    """The version a live object runs: its annotation, or the image of its (pod template's) container; '' when none."""
    if obj is None:
        return ""
    if guard.get("annotation"):
        return str((obj["metadata"].get("annotations") or {}).get(guard["annotation"], ""))
    pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or obj.get("spec") or {}
    for container in (pod.get("containers") or []) + (pod.get("initContainers") or []):
        if container.get("name") == guard.get("container"):
            return str(container.get("image", ""))
    return ""


def check_versions(client: Client, guards: list[dict]) -> None:
    """Refuse, before anything is written, a requested version older than the live one (or a major upgrade
    that needs a migration first): read each guard's object, and fail naming every refusal."""
    found = []
    for guard in guards:
        try:
            # A kind the server does not serve (Argo CD's Application before Argo CD is installed): nothing is live.
            obj = None if client.resource(guard["api_version"], guard["kind"]) is None else \
                client.get(guard["api_version"], guard["kind"], guard["name"], guard.get("namespace"))
        except ApiError as exc:
            raise BundleError(f"version_guards: cannot read {guard['kind']} {guard['name']}: {exc.message}") from exc
        source = "/".join(p for p in (guard.get("namespace"), guard["name"]) if p)
        found.append({**guard, "live": live_version(obj, guard), "source": f"{guard['kind']} {source}"})
    errors = guard_errors(found)
    if errors:
        raise BundleError("; ".join(errors))


def annotated(definitions: list, annotations: dict) -> list:
    """The definitions with these annotations added to each (copies; the input is left alone)."""
    if not annotations:
        return definitions
    out = []
    for obj in definitions:
        if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
            obj = {**obj, "metadata": {**obj["metadata"],
                                       "annotations": {**(obj["metadata"].get("annotations") or {}), **annotations}}}
        out.append(obj)
    return out


def connect(kubeconfig: str | None, context: str | None) -> Client:
    return Client(Config.load(kubeconfig, context))


def record(directory: str, name: str, definitions: list[dict]) -> str:
    """Write definitions, exactly as sent, to the next numbered file of directory (0600: may hold Secrets)."""
    if yaml is None:
        raise KubeError("render_dir needs PyYAML (pip install PyYAML)")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    number = len([f for f in os.listdir(directory) if f.endswith(".yaml")]) + 1
    path = os.path.join(directory, f"{number:03d}-{name}.yaml")
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        yaml.safe_dump_all(definitions, handle, sort_keys=False)
    return path


ARGUMENT_SPEC = {
    "definitions": {"type": "list", "elements": "dict", "default": []},
    "src": {"type": "path"},
    "field_manager": {"type": "str", "default": "mlops.platform"},
    "force_conflicts": {"type": "bool", "default": True},
    "wait": {"type": "bool", "default": False},
    "wait_timeout": {"type": "int", "default": 300},
    "wait_requires": {"type": "list", "elements": "dict", "default": [], "options": {
        "api_version": {"type": "str", "default": "v1"},
        "kind": {"type": "str", "required": True},
        "name": {"type": "str", "required": True},
        "namespace": {"type": "str"},
    }},
    "prune": {"type": "dict", "options": {
        "label_selector": {"type": "str", "required": True},
        "kinds": {"type": "list", "elements": "dict", "required": True, "options": {
            "api_version": {"type": "str", "required": True},
            "kind": {"type": "str", "required": True},
        }},
        "namespaces": {"type": "list", "elements": "str"},
    }},
    "annotations": {"type": "dict", "default": {}},
    "version_guards": {"type": "list", "elements": "dict", "default": [], "options": {
        "variable": {"type": "str", "required": True},
        "requested": {"type": "str", "required": True},
        "api_version": {"type": "str", "required": True},
        "kind": {"type": "str", "required": True},
        "name": {"type": "str", "required": True},
        "namespace": {"type": "str"},
        "container": {"type": "str"},
        "annotation": {"type": "str"},
        "reason": {"type": "str", "required": True},
        "allow_downgrade": {"type": "bool", "default": False},
        "downgrade_flag": {"type": "str", "required": True},
        "downgrade_fix": {"type": "str"},
        "major_flag": {"type": "str"},
        "allow_major_upgrade": {"type": "bool", "default": False},
        "major_procedure": {"type": "str"},
    }},
    "render_dir": {"type": "path"},
    "render_only": {"type": "bool", "default": False},
    "name": {"type": "str", "default": "bundle"},
    "kubeconfig": {"type": "path"},
    "context": {"type": "str"},
    "cluster_exists": {"type": "bool", "default": True},
}


# What a YAML file that cannot be read raises, besides OSError and ValueError.
YAML_ERRORS = yaml.YAMLError if yaml is not None else ValueError


def load_definitions(path: str) -> list:
    """The objects of a YAML file (every document) or a JSON file (one), the items of a List.

    JSON is read with the json module: 2.5 MiB of CRDs take 15 ms, against 0.6 s with YAML's loader."""
    is_json = path.endswith(".json")
    if yaml is None and not is_json:
        raise KubeError("src needs PyYAML (pip install PyYAML)")
    try:
        with open(path, encoding="utf-8") as handle:
            documents = [json.load(handle)] if is_json else list(
                yaml.load_all(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    except (OSError, ValueError, YAML_ERRORS) as exc:
        raise KubeError(f"src: cannot read {path}: {exc}") from exc
    objects = []
    for document in documents:
        if isinstance(document, dict) and str(document.get("kind", "")).endswith("List") and "items" in document:
            objects.extend(document.get("items") or [])
        elif document is not None:
            objects.append(document)
    return objects


def masked_params(params: dict) -> dict:
    """The arguments with Secrets' values hidden, for logs and the invocation echo."""
    out = dict(params)
    out["definitions"] = [shown(d) if isinstance(d, dict) and d.get("kind") == "Secret" else d for d in params["definitions"] or []]
    return out


def cluster_pending(params: dict, check_mode: bool, invocation: dict) -> dict:
    """Check mode before the cluster exists: every object would be created; nothing is sent."""
    if not check_mode:
        raise Failed("cluster_exists is false outside check mode: the cluster is not there. Fix: run the "
                     "mlops.platform.cluster role with cluster_create: true first", changes=[], invocation=invocation)
    try:
        objects = check_definitions(params["definitions"])
    except BundleError as exc:
        raise Failed(str(exc), changes=[], invocation=invocation) from exc
    results = [{"object": key(o), "kind": o["kind"], "name": o["metadata"]["name"], "namespace": o["metadata"].get("namespace"),
                "action": "created", "not_sent": "the cluster does not exist yet"} for o in objects]
    return {"changed": bool(results), "objects": results, "changes": [f"created {r['object']}" for r in results],
            "counts": {"created": len(results), "updated": 0, "unchanged": 0, "deleted": 0}, "invocation": invocation}


def render_only(params: dict, invocation: dict) -> dict:
    """GitOps render mode: the definitions checked (no API) and written to render_dir exactly as an
    apply would send them (large ones with their digest annotation); nothing reaches a cluster."""
    if not params["render_dir"]:
        raise Failed("render_only needs render_dir: the directory the definitions are written to", changes=[],
                     invocation=invocation)
    try:
        objects = [with_digest(o) for o in check_definitions(params["definitions"])]
        # Also in check mode: the render directory is the caller's scratch space, not the target.
        path = record(params["render_dir"], params["name"], objects)
    except (BundleError, KubeError) as exc:
        raise Failed(str(exc), changes=[], invocation=invocation) from exc
    results = [{"object": key(o), "kind": o["kind"], "name": o["metadata"]["name"], "namespace": o["metadata"].get("namespace"),
                "action": "unchanged", "not_sent": "render_only"} for o in objects]
    return {"changed": False, "objects": results, "changes": [], "rendered": path,
            "counts": {"created": 0, "updated": 0, "unchanged": len(results), "deleted": 0}, "invocation": invocation}


def apply_bundle(params: dict, check_mode: bool, diff: bool) -> dict:
    """The whole k8s_bundle task: returns its result or raises Failed."""
    invocation = {"module_args": masked_params(params)}
    if params.get("src"):
        try:
            params = {**params, "definitions": list(params["definitions"] or []) + load_definitions(params["src"]), "src": None}
        except KubeError as exc:
            raise Failed(str(exc), changes=[], invocation=invocation) from exc
    if params["annotations"]:
        params = {**params, "definitions": annotated(params["definitions"], params["annotations"])}
    if params["render_only"]:
        return render_only(params, invocation)
    if not params["cluster_exists"]:
        return cluster_pending(params, check_mode, invocation)
    bundle = None
    try:
        bundle = Bundle(connect(params["kubeconfig"], params["context"]), params["definitions"],
                        field_manager=params["field_manager"], force=params["force_conflicts"],
                        check_mode=check_mode, wait=params["wait"], wait_timeout=params["wait_timeout"])
        check_versions(bundle.client, params["version_guards"])
        bundle.run()
        if params["prune"]:
            bundle.prune(params["prune"]["label_selector"], params["prune"]["kinds"], params["prune"]["namespaces"])
        missing = [] if check_mode else bundle.missing(params["wait_requires"])
        if not missing:
            bundle.wait_ready()
        if params["render_dir"] and not check_mode:
            record(params["render_dir"], params["name"], bundle.objects)
    except (BundleError, KubeError) as exc:
        # What was written before the failure: nothing, unless the server refused a write after a
        # clean dry-run or went away between two writes. A re-run applies the rest.
        if bundle is None:
            raise Failed(f"{exc}; nothing was written", changes=[], invocation=invocation) from exc
        raise Failed(f"{exc}; {bundle.written()}", changes=bundle.summary()["changes"], invocation=invocation) from exc
    finally:
        if bundle is not None:
            bundle.close()
    result = bundle.summary()
    if params["wait_requires"] and not check_mode:
        result["missing"] = missing
    if diff:
        result["diff"] = bundle.diffs
    result["invocation"] = invocation
    return result
