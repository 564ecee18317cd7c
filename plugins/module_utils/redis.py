# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Redis for the platform (seed 002): one Redis in the cluster (local) or an external endpoint (ElastiCache).

- ``role_settings(values)``: the role's settings from its variables (``redis_*``), defaults filled in.
- ``redis_conf(settings)``: the ``redis.conf`` the ConfigMap holds. It never holds the password: the
  container's start script (``START_SCRIPT``) writes ``requirepass`` from the Secret (environment
  ``REDIS_PASSWORD``) into a 0600 file on a memory volume and starts ``redis-server <conf> --include <file>``.
- ``redis_objects(settings)``: Namespace, ConfigMap, Service, StatefulSet (and a node-directory
  PersistentVolume with ``host_path``), labelled for pruning.
- ``published(settings)``: the ``mlops_redis`` fact (host, port, TLS, Secret names; never the password).
- ``variable_errors(values, context)``: the role's checks beyond its argument spec, run by validate_roles.

Plain Python, no cluster; used by the role's filters (plugins/filter/redis.py) and validate_roles.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from ansible_collections.mlops.platform.plugins.module_utils.quantity import QuantityError, parse_quantity, size_errors
from ansible_collections.mlops.platform.plugins.module_utils.teams import (
    LABEL_COMPONENT,
    LABEL_MANAGED_BY,
    LABEL_PART_OF,
    MANAGED_BY,
    PART_OF,
    namespace_errors,
)
from ansible_collections.mlops.platform.plugins.module_utils.volumes import claim_spec, host_path_volume

COMPONENT = "cache"
MODES = ("internal", "external", "none")
PASSWORD_KEY = "password"
CONF_PATH = "/etc/redis/redis.conf"
RUN_DIR = "/run/redis"
DATA_DIR = "/data"
# The image's redis user; the pod runs as it (restricted Pod Security).
REDIS_UID = 999

DEFAULTS: dict[str, Any] = {
    "mode": "internal",
    "namespace": "redis",
    "name": "redis",
    "image": "docker.io/library/redis:7.4.2",
    "port": 6379,
    "password_secret": "redis-auth",
    "maxmemory": "192mb",
    "maxmemory_policy": "allkeys-lru",
    "persistence": True,
    "config": {},
    "volume_size": "1Gi",
    "storage_class": "",
    "host_path": "",
    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
    "pod_security": "restricted",
    "external": {"host": "", "port": 6379, "tls": True, "ca_secret": ""},
    "team_secret": "redis",
}

# Directives the role sets itself (or that would carry a secret): not accepted in redis_config.
RESERVED = ("requirepass", "masterauth", "masteruser", "port", "bind", "dir", "include", "aclfile", "user",
            "tls-port", "unixsocket", "daemonize", "pidfile", "maxmemory", "maxmemory-policy", "appendonly")
MAXMEMORY_POLICIES = ("noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu",
                      "volatile-random", "volatile-ttl")
# Redis needs memory beyond maxmemory (buffers, fragmentation, the fork of an AOF rewrite): at most this
# share of the container's memory limit, or the kernel kills it before it evicts.
MAXMEMORY_SHARE = 0.8
_CONFIG_KEY = re.compile(r"^[a-z][a-z0-9-]*$")
_MEMORY = re.compile(r"^([0-9]+)(b|k|kb|m|mb|g|gb)?$", re.IGNORECASE)
_MEMORY_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")

# The container's command: the password never reaches the ConfigMap, the arguments or the log. Refuses to
# start without one (Redis would then serve anyone who reaches the port). "$@": extra redis-server options
# (none in the pod; the real-server test adds its port and directory).
START_SCRIPT = (
    'set -eu\n'
    '[ -n "${REDIS_PASSWORD:-}" ] || { echo "redis: REDIS_PASSWORD is empty, refusing to start without a password" >&2; exit 1; }\n'
    'umask 077\n'
    'printf \'requirepass %s\\n\' "$REDIS_PASSWORD" > "$REDIS_RUN_DIR/auth.conf"\n'
    'exec redis-server "$REDIS_CONF" --include "$REDIS_RUN_DIR/auth.conf" --dir "$REDIS_DATA_DIR" "$@"\n'
)


def _labels(name: str) -> dict[str, str]:
    return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_PART_OF: PART_OF, "app.kubernetes.io/name": "redis",
            "app.kubernetes.io/instance": name, LABEL_COMPONENT: COMPONENT}


def _selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "redis", "app.kubernetes.io/instance": name}


def role_settings(values: dict) -> dict:
    """The settings from the role's variables (``redis_<key>``), each missing one from DEFAULTS."""
    settings = {key: values.get(f"redis_{key}", default) for key, default in DEFAULTS.items()}
    settings["external"] = {**DEFAULTS["external"], **(settings["external"] or {})}
    settings["resources"] = settings["resources"] or {}
    settings["config"] = settings["config"] or {}
    return settings


def memory_bytes(value: Any) -> int:
    """A Redis memory value (``192mb``, ``1gb``, ``100000``) in bytes; ValueError when it is none."""
    match = _MEMORY.match(str(value).strip())
    if not match or isinstance(value, bool):
        raise ValueError(f"{value!r} is not a Redis memory size")
    return int(match.group(1)) * _MEMORY_UNITS[(match.group(2) or "").lower()]


def _conf_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def redis_conf(settings: dict) -> str:
    """The redis.conf of the ConfigMap: listener, memory, persistence, then the extra directives, sorted."""
    s = {**DEFAULTS, **settings}
    persistence = bool(s["persistence"])
    lines = [
        "# redis.conf rendered by mlops.platform (role redis). No password and no path here: the start",
        f"# script writes requirepass from the Secret {s['password_secret']} into a 0600 file it includes,",
        "# and sets dir to the data volume.",
        "bind * -::*",
        "protected-mode yes",
        f"port {int(s['port'])}",
        "tcp-keepalive 300",
        "timeout 0",
        'logfile ""',
        "loglevel notice",
        f"maxmemory {s['maxmemory']}",
        f"maxmemory-policy {s['maxmemory_policy']}",
        f"appendonly {'yes' if persistence else 'no'}",
        "appendfsync everysec",
        'save 3600 1 300 100 60 10000' if persistence else 'save ""',
    ]
    lines += [f"{key} {_conf_value(value)}" for key, value in sorted(s["config"].items())]
    return "\n".join(lines) + "\n"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def redis_objects(settings: dict) -> list[dict]:
    """Every object of the internal Redis; the password Secret is the secrets role's (secrets_redis)."""
    s = {**DEFAULTS, **settings}
    ns, name, port = s["namespace"], s["name"], int(s["port"])
    labels = _labels(name)
    conf = redis_conf(s)
    config_name = f"{name}-config"
    objects: list[dict] = [{
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_PART_OF: PART_OF,
                                            **{f"pod-security.kubernetes.io/{mode}": s["pod_security"]
                                               for mode in ("enforce", "audit", "warn")}}},
    }, {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": config_name, "namespace": ns, "labels": labels},
        "data": {"redis.conf": conf},
    }, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"selector": _selector(name), "ports": [{"name": "redis", "port": port, "targetPort": "redis", "protocol": "TCP"}]},
    }]
    if s["host_path"]:
        objects.append(host_path_volume(ns, name, s["volume_size"], s["host_path"], labels))
    probe = {"exec": {"command": ["sh", "-c", 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -p "$REDIS_PORT" ping | grep -q PONG']},
             "periodSeconds": 10, "timeoutSeconds": 5}
    container = {
        "name": "redis", "image": s["image"],
        "command": ["sh", "-c", START_SCRIPT, "redis-server"],
        "env": [{"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": s["password_secret"], "key": PASSWORD_KEY}}},
                {"name": "REDIS_CONF", "value": CONF_PATH}, {"name": "REDIS_RUN_DIR", "value": RUN_DIR},
                {"name": "REDIS_DATA_DIR", "value": DATA_DIR},
                {"name": "REDIS_PORT", "value": str(port)}],
        "ports": [{"name": "redis", "containerPort": port, "protocol": "TCP"}],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "initialDelaySeconds": 15, "periodSeconds": 20},
        "resources": s["resources"],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True},
        "volumeMounts": [{"name": "data", "mountPath": DATA_DIR}, {"name": "run", "mountPath": RUN_DIR},
                         {"name": "config", "mountPath": "/etc/redis", "readOnly": True}],
    }
    objects.append({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "serviceName": name, "replicas": 1, "selector": {"matchLabels": _selector(name)},
            "template": {
                # A changed redis.conf restarts Redis (it reads the file at start).
                "metadata": {"labels": labels, "annotations": {"mlops.platform/config-checksum": _digest(conf)}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": REDIS_UID, "runAsGroup": REDIS_UID,
                                        "fsGroup": REDIS_UID, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [{"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                                {"name": "config", "configMap": {"name": config_name}}],
                },
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": labels},
                                      "spec": claim_spec(s["volume_size"], s["host_path"], s["storage_class"])}],
        },
    })
    return json.loads(json.dumps(objects))


def published(settings: dict) -> dict:
    """The mlops_redis fact: where Redis is and which Secrets hold its password; never the password."""
    s = {**DEFAULTS, **settings}
    mode = s["mode"]
    if mode == "internal":
        host, port, tls = f"{s['name']}.{s['namespace']}.svc.cluster.local", int(s["port"]), False
    elif mode == "external":
        ext = {**DEFAULTS["external"], **(s["external"] or {})}
        host, port, tls = str(ext["host"]), int(ext["port"]), bool(ext["tls"])
    else:
        return {"enabled": False, "mode": mode, "host": "", "port": 0, "tls": False, "url": "",
                "password_secret": {}, "team_secret": ""}
    scheme = "rediss" if tls else "redis"
    out = {"enabled": True, "mode": mode, "host": host, "port": port, "tls": tls, "url": f"{scheme}://{host}:{port}",
           "password_secret": ({"namespace": s["namespace"], "name": s["password_secret"], "key": PASSWORD_KEY}
                               if mode == "internal" else {}),
           "team_secret": s["team_secret"]}
    if mode == "external" and (s["external"] or {}).get("ca_secret"):
        out["ca_secret"] = s["external"]["ca_secret"]
    return out


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
def _port(value: Any) -> int:
    """A TCP port as an int, 0 when it is none (the check then names it)."""
    try:
        port = int(value)
    except (TypeError, ValueError):
        return 0
    return port if 1 <= port <= 65535 and not isinstance(value, bool) else 0


def _resource_errors(resources: Any, maxmemory: Any) -> list[str]:
    if not isinstance(resources, dict):
        return ["redis_resources: must be a mapping with requests and limits"]
    errors: list[str] = []
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    for key in ("cpu", "memory"):
        # Both set: a namespace LimitRange or quota that demands them (seed 001) accepts the pod as it is.
        for part, values in (("requests", requests), ("limits", limits)):
            if key not in values:
                errors.append(f"redis_resources.{part}.{key}: not set. Fix: set requests and limits of cpu and memory "
                              "(a quota with limits.cpu refuses pods without them)")
                continue
            try:
                parse_quantity(values[key])
            except QuantityError as exc:
                errors.append(f"redis_resources.{part}.{key}: {exc}")
        if errors:
            continue
        if parse_quantity(requests[key]) > parse_quantity(limits[key]):
            errors.append(f"redis_resources.requests.{key}: {requests[key]} is above its limit {limits[key]}. "
                          "Fix: a request at most the limit")
    if not errors:
        try:
            limit = parse_quantity(limits["memory"])
            if memory_bytes(maxmemory) > limit * MAXMEMORY_SHARE:
                errors.append(f"redis_maxmemory: {maxmemory} leaves too little of the memory limit {limits['memory']} "
                              f"(at most {int(MAXMEMORY_SHARE * 100)}%: buffers and the AOF rewrite's fork need the rest, or the "
                              "container is killed instead of evicting keys). Fix: lower redis_maxmemory or raise limits.memory")
        except ValueError:
            pass  # redis_maxmemory's own message
    return errors


def _config_errors(config: Any) -> list[str]:
    if not isinstance(config, dict):
        return ["redis_config: must be a mapping of redis.conf directives, e.g. {notify-keyspace-events: Ex}"]
    errors = []
    for key, value in config.items():
        if not isinstance(key, str) or not _CONFIG_KEY.match(key):
            errors.append(f"redis_config.{key}: is not a redis.conf directive name. Fix: e.g. notify-keyspace-events")
        elif key.lower() in RESERVED:
            errors.append(f"redis_config.{key}: is set by the role (or would hold a secret). Fix: use the role's variable "
                          "(redis_port, redis_maxmemory, redis_persistence, ...) or the secrets role's secrets_redis")
        elif isinstance(value, (dict, list)) or "\n" in str(value):
            errors.append(f"redis_config.{key}: must be one line of text, a number or a boolean")
    return errors


def variable_errors(values: dict, context: dict | None = None) -> list[str]:
    """The redis role's checks beyond its argument spec, run by validate_roles and the role before any change.

    With the secrets role's values in ``context`` (validate_roles), also that ``secrets_redis`` puts the
    password Secret where this Redis reads it and points the teams at this Redis.
    """
    s = role_settings(values)
    context = context or {}
    mode = s["mode"]
    errors: list[str] = []
    if mode not in MODES:
        return [f"redis_mode: {mode!r}. Fix: one of {', '.join(MODES)}"]
    if mode == "internal":
        errors += namespace_errors("redis_namespace", s["namespace"])
        for key in ("name", "password_secret"):
            if not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", str(s[key])) or len(str(s[key])) > 52:
                errors.append(f"redis_{key}: {s[key]!r} is not a DNS-1123 label of at most 52 characters")
        errors += size_errors("redis_volume_size", s["volume_size"])
        if s["maxmemory_policy"] not in MAXMEMORY_POLICIES:
            errors.append(f"redis_maxmemory_policy: {s['maxmemory_policy']!r}. Fix: one of {', '.join(MAXMEMORY_POLICIES)}")
        try:
            if memory_bytes(s["maxmemory"]) == 0:
                errors.append("redis_maxmemory: 0 means no limit; the container would be killed instead of evicting. "
                              "Fix: e.g. 192mb")
        except ValueError:
            errors.append(f"redis_maxmemory: {s['maxmemory']!r} is not a Redis memory size. Fix: e.g. 192mb, 1gb")
        errors += _resource_errors(s["resources"], s["maxmemory"])
        errors += _config_errors(s["config"])
        if not _port(s["port"]):
            errors.append(f"redis_port: {s['port']} is not a TCP port")
    elif mode == "external":
        ext = s["external"]
        if not ext.get("host"):
            errors.append("redis_external.host: empty with redis_mode external. Fix: the ElastiCache primary endpoint "
                          "(a vault or inventory value)")
        elif not _HOST.match(str(ext["host"])):
            errors.append(f"redis_external.host: {ext['host']!r} is not a host name")
        if not _port(ext.get("port")):
            errors.append(f"redis_external.port: {ext.get('port')!r} is not a TCP port")
    secrets = context.get("secrets_redis") or {}
    # Compared only with valid settings: where Redis is, is known then.
    if not errors and mode != "none" and str(secrets.get("enabled", False)).lower() in ("true", "1", "yes", "on"):
        where = published(s)
        if mode == "internal" and secrets.get("namespace") and (
                secrets.get("namespace") != s["namespace"] or secrets.get("name") != s["password_secret"]):
            errors.append(f"secrets_redis: puts the password Secret at {secrets.get('namespace')}/{secrets.get('name')}, "
                          f"Redis reads {s['namespace']}/{s['password_secret']}. Fix: the same namespace and name")
        if "host" in secrets and (str(secrets.get("host")) != where["host"] or _port(secrets.get("port")) != where["port"]):
            errors.append(f"secrets_redis: points the teams at {secrets.get('host')}:{secrets.get('port')}, Redis is at "
                          f"{where['host']}:{where['port']}. Fix: set secrets_redis.host and port to it")
    return errors
