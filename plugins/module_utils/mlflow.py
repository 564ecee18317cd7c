# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The MLflow tracking server's process, rendered in one place.

``server_containers`` renders the command line and environment of the MLflow Deployment's
two containers: the init container that migrates the database (``mlflow db upgrade``) and the
server (``mlflow server`` with basic auth, the artifact proxy on the storage bucket and host
validation). The mlflow role puts them into the Deployment; the real-process test
(tests/integration/test_mlflow_real.py) takes the same rendered containers and runs them
outside Kubernetes with ``resolve_container``, which resolves the environment and ``$(VAR)``
references the way the kubelet does. ``auth_config`` renders the basic-auth ini file.

``mlflow_objects`` renders every object of the role but its Secrets: namespace, quota,
identity, RBAC, PostgreSQL, the Deployment (containers from ``server_containers``), the
Service and the optional Ingress. The containers reference Secret keys (``valueFrom``); the
values are only in ``secret_objects``, which the role renders inside its no_log apply task.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any
from urllib.parse import quote

from ansible_collections.mlops.platform.plugins.module_utils.quantity import canonical_quantity, format_quantity, parse_quantity, size_errors
from ansible_collections.mlops.platform.plugins.module_utils.teams import namespace_errors
from ansible_collections.mlops.platform.plugins.module_utils.volumes import claim_spec, host_path_volume

# Where the auth ini is mounted in the server container (a key of the server Secret).
AUTH_CONFIG_FILE = "basic_auth.ini"
# Keys of the role's server Secret the containers reference.
SERVER_SECRET_KEYS = (
    "MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", AUTH_CONFIG_FILE,
)
DEFAULTS: dict[str, Any] = {
    "host": "0.0.0.0",
    "port": 5000,
    "workers": 2,
    "database_secret": "mlflow-database-secret",
    "database_secret_key": "connection-url",
    "server_secret": "mlflow-server",
    "artifacts_destination": "",
    "s3_endpoint_url": "",
    "region": "",
    "s3_credentials": True,
    "auth": True,
    "auth_config_dir": "/etc/mlflow/auth",
    "allowed_hosts": [],
    "cors_allowed_origins": [],
    "extra_args": [],
    # Where the server keeps its Prometheus metrics (mlflow server --expose-prometheus, served at
    # /metrics, behind basic auth when auth is on); empty: no metrics.
    "metrics_dir": "",
}
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ResolveError(ValueError):
    """A container's environment cannot be resolved (a missing Secret or key)."""


def _secret_env(name: str, secret: str, key: str) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def settings_errors(cfg: Mapping[str, Any]) -> list[str]:
    """Problems of the settings, each naming the role variable to fix."""
    errors = []
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        errors.append(f"unknown server settings {unknown}")
    merged = {**DEFAULTS, **cfg}
    if not str(merged["artifacts_destination"]).startswith(("s3://", "gs://", "wasbs://", "file:/")):
        errors.append(f"mlflow_artifacts_destination: {merged['artifacts_destination']!r} is not an artifact URI. "
                      "Fix: s3://<bucket>/<path>, from the storage role's bucket")
    port = merged["port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        errors.append(f"mlflow_port: {port!r} is not a port")
    workers = merged["workers"]
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        errors.append(f"mlflow_workers: {workers!r} must be a positive number")
    endpoint = merged["s3_endpoint_url"]
    if endpoint and not re.match(r"^https?://[^\s/]+", str(endpoint)):
        errors.append(f"mlflow_s3_endpoint_url: {endpoint!r} is not an http(s) URL")
    return errors


def variable_errors(values: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> list[str]:
    """The mlflow role's checks beyond its argument spec (namespace, replicas, the database volume),
    run by mlops.platform.validate_roles before anything changes."""
    errors = namespace_errors("mlflow_namespace", values["mlflow_namespace"]) if "mlflow_namespace" in values else []
    replicas = values.get("mlflow_replicas", 1)
    if replicas < 0:
        errors.append(f"mlflow_replicas: {replicas} is negative. Fix: use 1 or more (0 stops the server)")
    if values.get("mlflow_postgresql_enabled", False):
        errors += size_errors("mlflow_postgresql_volume_size", values.get("mlflow_postgresql_volume_size"))
    return errors


def service_hosts(service: str, namespace: str, extra: list[str] | None = None) -> list[str]:
    """Host headers the server accepts: its in-cluster names, loopback and ``extra`` (an Ingress host).

    Every name is allowed bare and with any port (``name:*``), as MLflow's host validation
    compares the whole Host header.
    """
    names = [service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
             f"{service}.{namespace}.svc.cluster.local", "localhost", "127.0.0.1", *(extra or [])]
    out: list[str] = []
    for name in dict.fromkeys(names):
        out += [name, f"{name}:*"]
    return out


# Fails with a message naming the setting, so `kubectl logs` says what to fix.
_DB_UPGRADE = (
    'mlflow db upgrade "$MLFLOW_BACKEND_STORE_URI" || {{ status=$?; '
    'echo "mlflow: database migration failed: check MLFLOW_BACKEND_STORE_URI '
    '(Secret {secret}, key {key}): is the database reachable and are the credentials right?" >&2; exit $status; }}'
)
# Checks that the artifact bucket answers before the server starts (boto3 ships with MLflow's image).
_CHECK_ARTIFACTS = """\
import os, sys
from urllib.parse import urlparse
import boto3, botocore.config, botocore.exceptions
dest = os.environ["MLFLOW_ARTIFACTS_DESTINATION"]
endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None
bucket = urlparse(dest).netloc
client = boto3.client("s3", endpoint_url=endpoint, config=botocore.config.Config(
    connect_timeout=5, read_timeout=10, retries={"max_attempts": 2}))
try:
    client.head_bucket(Bucket=bucket)
except botocore.exceptions.EndpointConnectionError as err:
    sys.exit(f"mlflow: MLFLOW_S3_ENDPOINT_URL={endpoint or 'AWS S3'} cannot be reached: {err}")
except botocore.exceptions.ClientError as err:
    code = err.response.get("Error", {}).get("Code", "")
    if code in ("404", "NoSuchBucket"):
        sys.exit(f"mlflow: MLFLOW_ARTIFACTS_DESTINATION={dest}: bucket {bucket} does not exist at {endpoint or 'AWS S3'}")
    sys.exit(f"mlflow: MLFLOW_ARTIFACTS_DESTINATION={dest}: access to bucket {bucket} refused ({code}): "
             "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the ServiceAccount's cloud identity")
print(f"mlflow: artifact bucket {bucket} reachable at {endpoint or 'AWS S3'}")
"""


def server_containers(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``{'init': [containers], 'server': container}`` of the MLflow pod: names, commands, environments.

    Init containers run in order: ``db-upgrade`` (``mlflow db upgrade``, migrations before
    start) and, for an s3:// destination, ``check-artifacts`` (the bucket answers).
    """
    c = {**DEFAULTS, **cfg}
    database = _secret_env("MLFLOW_BACKEND_STORE_URI", c["database_secret"], c["database_secret_key"])
    storage_env = [{"name": "MLFLOW_ARTIFACTS_DESTINATION", "value": str(c["artifacts_destination"])}]
    if c["s3_credentials"]:
        storage_env += [_secret_env(k, c["server_secret"], k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")]
    if c["region"]:
        storage_env.append({"name": "AWS_DEFAULT_REGION", "value": str(c["region"])})
    if c["s3_endpoint_url"]:
        storage_env.append({"name": "MLFLOW_S3_ENDPOINT_URL", "value": str(c["s3_endpoint_url"])})

    # The store URI and the artifact destination reach `mlflow server` through its environment
    # (click's envvar), never its argv.
    command = ["mlflow", "server", "--host", str(c["host"]), "--port", str(c["port"]),
               "--workers", str(c["workers"]), "--serve-artifacts"]
    env = [database, *storage_env]
    if c["auth"]:
        command += ["--app-name", "basic-auth"]
        env += [
            {"name": "MLFLOW_AUTH_CONFIG_PATH", "value": f"{c['auth_config_dir'].rstrip('/')}/{AUTH_CONFIG_FILE}"},
            _secret_env("MLFLOW_AUTH_ADMIN_USERNAME", c["server_secret"], "MLFLOW_AUTH_ADMIN_USERNAME"),
            _secret_env("MLFLOW_AUTH_ADMIN_PASSWORD", c["server_secret"], "MLFLOW_AUTH_ADMIN_PASSWORD"),
            _secret_env("MLFLOW_FLASK_SERVER_SECRET_KEY", c["server_secret"], "MLFLOW_FLASK_SERVER_SECRET_KEY"),
        ]
    if c["allowed_hosts"]:
        command += ["--allowed-hosts", ",".join(c["allowed_hosts"])]
    if c["cors_allowed_origins"]:
        command += ["--cors-allowed-origins", ",".join(c["cors_allowed_origins"])]
    if c["metrics_dir"]:
        command += ["--expose-prometheus", str(c["metrics_dir"])]
    command += [str(a) for a in c["extra_args"]]
    init = [{"name": "db-upgrade", "env": [database],
             "command": ["/bin/sh", "-c", _DB_UPGRADE.format(secret=c["database_secret"], key=c["database_secret_key"])]}]
    if str(c["artifacts_destination"]).startswith("s3://"):
        init.append({"name": "check-artifacts", "env": storage_env, "command": ["python", "-c", _CHECK_ARTIFACTS]})
    return {"init": init, "server": {"name": "mlflow", "command": command, "env": env}}


def auth_config(database_uri: str, default_permission: str = "READ") -> str:
    """The basic-auth ini: users and permissions in the tracking database (their own tables).

    The admin user comes from MLFLOW_AUTH_ADMIN_USERNAME/PASSWORD in the environment, so no
    password is written here. ``%`` is doubled: configparser interpolates it.
    """
    return (
        "[mlflow]\n"
        f"default_permission = {default_permission}\n"
        f"database_uri = {database_uri.replace('%', '%%')}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )


def expand_references(text: str, env: Mapping[str, str]) -> str:
    """Expand ``$(VAR)`` as the kubelet does: unknown references stay as written, ``$$`` is ``$``."""
    def repl(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)
    return _VAR_REF.sub(repl, text)


def resolve_container(container: Mapping[str, Any], secrets: Mapping[str, Mapping[str, str]],
                      base_env: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of a container spec outside Kubernetes.

    ``secrets`` maps Secret name to its decoded data. Each ``env`` entry is resolved in
    order (a ``value`` may reference earlier ones with ``$(VAR)``), then ``command`` and
    ``args`` are expanded; a missing Secret or key raises ``ResolveError`` naming it.
    """
    env: dict[str, str] = dict(base_env or {})
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = expand_references(str(entry["value"]), env)
            continue
        ref = ((entry.get("valueFrom") or {}).get("secretKeyRef")) or {}
        data = secrets.get(ref.get("name"))
        if data is None or ref.get("key") not in data:
            raise ResolveError(f"env {entry['name']}: Secret {ref.get('name')!r} has no key {ref.get('key')!r}")
        env[entry["name"]] = data[ref["key"]]
    argv = [expand_references(str(a), env) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
    return argv, env


def _pod_amounts(pod_spec: Mapping[str, Any], kind: str, resource: str) -> Fraction:
    """Effective requests or limits of one pod: max(largest init container, sum of containers)."""
    def amount(container: Mapping[str, Any]) -> Fraction:
        value = ((container.get("resources") or {}).get(kind) or {}).get(resource)
        return parse_quantity(value) if value is not None else Fraction(0)
    main = sum((amount(c) for c in pod_spec.get("containers") or []), Fraction(0))
    init = max((amount(c) for c in pod_spec.get("initContainers") or []), default=Fraction(0))
    return max(main, init)


def quota_errors(objects: list[Mapping[str, Any]], quota: Mapping[str, Any]) -> list[str]:
    """Whether the pods and claims of ``objects`` fit ``quota`` ({requests, limits, count}).

    A Deployment counts one pod more than its replicas (the rolling update surges one), a
    StatefulSet its replicas and its claim templates. Each problem names the resource, the
    numbers and the variables to change.
    """
    totals: dict[str, Fraction] = {}
    pods = 0
    claims = 0
    for obj in objects:
        if obj.get("kind") not in ("Deployment", "StatefulSet"):
            continue
        spec = obj.get("spec") or {}
        replicas = int(spec.get("replicas", 1)) + (1 if obj["kind"] == "Deployment" else 0)
        pod = (spec.get("template") or {}).get("spec") or {}
        pods += replicas
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                key = f"{kind}.{resource}"
                totals[key] = totals.get(key, Fraction(0)) + replicas * _pod_amounts(pod, kind, resource)
        for claim in spec.get("volumeClaimTemplates") or []:
            size = ((claim.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage", "0")
            totals["requests.storage"] = totals.get("requests.storage", Fraction(0)) + replicas * parse_quantity(size)
            claims += replicas
    errors = []
    for kind in ("requests", "limits"):
        for resource, hard in (quota.get(kind) or {}).items():
            need = totals.get(f"{kind}.{resource}", Fraction(0))
            if need > parse_quantity(hard):
                errors.append(f"{kind}.{resource}: the pods need {format_quantity(need, binary=resource != 'cpu')} "
                              f"but mlflow_quota.{kind}.{resource} is {hard}. Fix: raise the quota or lower "
                              "mlflow_resources / mlflow_postgresql_resources / replicas")
    counts = quota.get("count") or {}
    if "pods" in counts and pods > int(counts["pods"]):
        errors.append(f"pods: {pods} needed (replicas plus one for a rolling update) but mlflow_quota.count.pods is "
                      f"{counts['pods']}")
    if "persistentvolumeclaims" in counts and claims > int(counts["persistentvolumeclaims"]):
        errors.append(f"persistentvolumeclaims: {claims} needed but mlflow_quota.count.persistentvolumeclaims is "
                      f"{counts['persistentvolumeclaims']}")
    return errors


def quota_hard(quota: Mapping[str, Any]) -> dict[str, str]:
    """``spec.hard`` of the namespace's ResourceQuota from ``{requests, limits, count}``, as the API server stores it."""
    hard = {f"{kind}.{res}": canonical_quantity(v) for kind in ("requests", "limits")
            for res, v in (quota.get(kind) or {}).items()}
    hard.update({str(k): str(v) for k, v in (quota.get("count") or {}).items()})
    return dict(sorted(hard.items()))


# The role's objects --------------------------------------------------------------------------

_POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
_CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
_PG_READY = ["sh", "-c", 'exec pg_isready -h 127.0.0.1 -U "$POSTGRES_USER" -d "$POSTGRES_DB"']


def labels(instance: str, **extra: str) -> dict[str, str]:
    """The labels of every object of the role; ``extra`` adds or overrides (``component``, ``name``)."""
    out = {
        "app.kubernetes.io/managed-by": "mlops.platform",
        "app.kubernetes.io/part-of": "mlops-platform",
        "app.kubernetes.io/name": "mlflow",
        "app.kubernetes.io/instance": instance,
    }
    out.update({f"app.kubernetes.io/{k}": v for k, v in extra.items()})
    return out


def _postgresql(s: Mapping[str, Any]) -> list[dict]:
    ns, name, pg = s["namespace"], s["name"], s["postgresql"]
    pg_name = f"{name}-postgresql"
    db_labels = labels(name, component="database", name="postgresql")
    selector = {"app.kubernetes.io/name": "postgresql", "app.kubernetes.io/instance": name}
    secret = s["database_secret"]
    env = [*(_secret_env(var, secret, key) for var, key in
             (("POSTGRES_USER", "username"), ("POSTGRES_PASSWORD", "password"), ("POSTGRES_DB", "database"))),
           {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"}]
    claim = claim_spec(pg["volume_size"], pg.get("host_path") or "", pg.get("storage_class") or "")
    objects = [host_path_volume(ns, pg_name, pg["volume_size"], pg["host_path"], db_labels)] if pg.get("host_path") else []
    objects += [{
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": pg_name, "namespace": ns, "labels": db_labels},
        "spec": {"selector": selector,
                 "ports": [{"name": "postgresql", "port": 5432, "targetPort": "postgresql", "protocol": "TCP"}]},
    }, {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": pg_name, "namespace": ns, "labels": db_labels},
        "spec": {
            "serviceName": pg_name,
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": db_labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {**_POD_SECURITY, "runAsUser": 70, "runAsGroup": 70, "fsGroup": 70},
                    "containers": [{
                        "name": "postgresql",
                        "image": pg["image"],
                        "env": env,
                        "ports": [{"name": "postgresql", "containerPort": 5432, "protocol": "TCP"}],
                        "readinessProbe": {"exec": {"command": _PG_READY}, "periodSeconds": 10},
                        "livenessProbe": {"exec": {"command": _PG_READY}, "initialDelaySeconds": 30, "periodSeconds": 20},
                        "resources": pg.get("resources") or {},
                        "securityContext": _CONTAINER_SECURITY,
                        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"},
                                         {"name": "run", "mountPath": "/var/run/postgresql"}],
                    }],
                    "volumes": [{"name": "run", "emptyDir": {}}],
                },
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": db_labels}, "spec": claim}],
        },
    }]
    return objects


def _ingress(s: Mapping[str, Any], server_labels: dict) -> dict:
    ingress = s["ingress"]
    metadata: dict[str, Any] = {"name": s["name"], "namespace": s["namespace"], "labels": server_labels}
    if ingress.get("annotations"):
        metadata["annotations"] = ingress["annotations"]
    spec: dict[str, Any] = {}
    if ingress.get("class_name"):
        spec["ingressClassName"] = ingress["class_name"]
    if ingress.get("tls_secret"):
        spec["tls"] = [{"hosts": [ingress.get("host", "")], "secretName": ingress["tls_secret"]}]
    spec["rules"] = [{"host": ingress.get("host", ""), "http": {"paths": [{
        "path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": s["name"], "port": {"name": "http"}}}}]}}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata, "spec": spec}


def mlflow_objects(settings: Mapping[str, Any]) -> list[dict]:
    """Every object of the mlflow role but its Secrets, in the order a reader expects.

    ``settings``: ``namespace``, ``name``, ``image``, ``replicas``, ``port``, ``resources``,
    ``init_resources``, ``pod_security``, ``quota`` ({requests, limits, count}),
    ``service_account_annotations``, ``server_secret``, ``database_secret``, ``auth``,
    ``auth_config_dir``, ``ingress`` ({enabled, host, class_name, annotations, tls_secret}),
    ``postgresql`` ({enabled, image, volume_size, storage_class, host_path, resources}) and
    ``server``, the settings of ``server_containers``.
    """
    s = settings
    ns, name = s["namespace"], s["name"]
    base = labels(name)
    server_labels = labels(name, component="tracking-server")
    selector = {"app.kubernetes.io/name": "mlflow", "app.kubernetes.io/instance": name}
    containers = server_containers(s["server"])
    home = {"name": "HOME", "value": "/tmp"}
    account: dict[str, Any] = {"name": name, "namespace": ns, "labels": server_labels}
    if s.get("service_account_annotations"):
        account["annotations"] = s["service_account_annotations"]

    objects: list[dict] = [{
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": {**base, "pod-security.kubernetes.io/enforce": s["pod_security"],
                                            "pod-security.kubernetes.io/enforce-version": "latest"}},
    }, {
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "mlflow-quota", "namespace": ns, "labels": base},
        "spec": {"hard": quota_hard(s.get("quota") or {})},
    }, {
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": account, "automountServiceAccountToken": False,
    }, {
        # Read access to the server's own Secrets only (seed 003), by name.
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": f"{name}-secrets", "namespace": ns, "labels": server_labels},
        "rules": [{"apiGroups": [""], "resources": ["secrets"],
                   "resourceNames": [s["server_secret"], s["database_secret"]], "verbs": ["get", "watch"]}],
    }, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": f"{name}-secrets", "namespace": ns, "labels": server_labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{name}-secrets"},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
    }]
    if s["postgresql"].get("enabled"):
        objects += _postgresql(s)

    mounts = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict] = [{"name": "tmp", "emptyDir": {}}]
    if s["auth"]:
        mounts.append({"name": "auth", "mountPath": s["auth_config_dir"], "readOnly": True})
        volumes.append({"name": "auth", "secret": {"secretName": s["server_secret"],
                                                   "items": [{"key": AUTH_CONFIG_FILE, "path": AUTH_CONFIG_FILE}],
                                                   "defaultMode": 0o440}})
    server = containers["server"]
    objects += [{
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": server_labels},
        "spec": {
            "replicas": s["replicas"],
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": server_labels},
                "spec": {
                    "serviceAccountName": name,
                    "automountServiceAccountToken": False,
                    "securityContext": {**_POD_SECURITY, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000},
                    "initContainers": [{
                        "name": init["name"],
                        "image": s["image"],
                        "command": init["command"],
                        "env": [*init["env"], home],
                        "resources": s.get("init_resources") or {},
                        "securityContext": _CONTAINER_SECURITY,
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    } for init in containers["init"]],
                    "containers": [{
                        "name": server["name"],
                        "image": s["image"],
                        "command": server["command"],
                        "env": [*server["env"], home],
                        "ports": [{"name": "http", "containerPort": s["port"], "protocol": "TCP"}],
                        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10},
                        "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "initialDelaySeconds": 30,
                                          "periodSeconds": 20, "failureThreshold": 6},
                        "resources": s.get("resources") or {},
                        "securityContext": _CONTAINER_SECURITY,
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
        },
    }, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": server_labels},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": s["port"], "targetPort": "http", "protocol": "TCP"}]},
    }]
    if (s.get("ingress") or {}).get("enabled"):
        objects.append(_ingress(s, server_labels))
    # Separate copies: the bundle and YAML dumps must not see shared (aliased) dicts.
    return json.loads(json.dumps(objects))


def database_url(database: Mapping[str, Any]) -> str:
    """``connection_url``, or ``<scheme>://<username>:<password>@<host>:<port>/<database>`` with the
    user and password percent-encoded (``/`` too)."""
    if database.get("connection_url"):
        return str(database["connection_url"])
    user, password = (quote(str(database[k]), safe="") for k in ("username", "password"))
    return f"{database['scheme']}://{user}:{password}@{database['host']}:{database['port']}/{database['database']}"


def _b64(value: Any) -> str:
    return base64.b64encode(str(value).encode()).decode()


def secret_objects(settings: Mapping[str, Any], credentials: Mapping[str, Any]) -> list[dict]:
    """The Secrets the role owns: the server Secret and, with ``database_secret_create``, the seed 003 one.

    ``settings`` as for ``mlflow_objects`` plus ``auth_default_permission`` and
    ``database_secret_create``; ``credentials``: ``admin_username``, ``admin_password``,
    ``flask_secret_key``, ``s3_access_key_id``, ``s3_secret_access_key`` and ``database``
    (username, password, host, port, database, driver, scheme, connection_url).
    """
    s, c = settings, credentials
    ns, name = s["namespace"], s["name"]
    url = database_url(c["database"])
    server_data = {
        "MLFLOW_AUTH_ADMIN_USERNAME": c["admin_username"],
        "MLFLOW_AUTH_ADMIN_PASSWORD": c["admin_password"],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": c["flask_secret_key"],
        "AWS_ACCESS_KEY_ID": c["s3_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": c["s3_secret_access_key"],
        AUTH_CONFIG_FILE: auth_config(url, s.get("auth_default_permission", "READ")),
    }
    secrets = [{
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": s["server_secret"], "namespace": ns, "labels": labels(name, component="tracking-server")},
        "type": "Opaque",
        "data": {k: _b64(v) for k, v in server_data.items()},
    }]
    if s.get("database_secret_create"):
        db = c["database"]
        data = {k: db[k] for k in ("username", "password", "host", "port", "database", "driver")}
        secrets.append({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": s["database_secret"], "namespace": ns, "labels": labels(name, component="database")},
            "type": "Opaque",
            "data": {**{k: _b64(v) for k, v in data.items()}, "connection-url": _b64(url)},
        })
    return secrets
