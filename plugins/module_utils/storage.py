# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The platform's object storage: one bucket plan for MinIO (local) and S3 (cloud).

``bucket_errors`` validates the ``storage_buckets`` setting and returns sentences that name
the bucket, the field and the fix. ``bucket_plan`` turns it and the team model into the
complete list of buckets (full name, versioning, encryption, lifecycle rules, cost tags and
the per-team prefixes) that both paths realise: the storage role's S3 tasks pass it to
amazon.aws, and ``minio_provision_script`` renders the shell script of the MinIO
bucket-provisioning Job from it. ``lifecycle_configuration`` is the S3
``LifecycleConfiguration`` of one bucket, as MinIO imports it and as S3 returns it.

``minio_objects`` renders the Kubernetes objects of the minio backend (namespace, optional
PersistentVolume, Service, StatefulSet, and the provisioning ConfigMap and Job named after a
digest of what they do) and ``minio_credentials_secret`` its root credentials Secret, which
the role renders only inside its no_log apply task.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
import shlex
from typing import Any

from ansible_collections.mlops.platform.plugins.module_utils.quantity import size_errors
from ansible_collections.mlops.platform.plugins.module_utils.teams import namespace_errors, normalize_teams
from ansible_collections.mlops.platform.plugins.module_utils.volumes import claim_spec, host_path_volume

BUCKET_KEYS = {"name", "versioning", "team_prefixes", "lifecycle", "tags", "description"}
RULE_KEYS = {
    "id", "prefix", "status", "expiration_days", "noncurrent_version_expiration_days",
    "abort_incomplete_multipart_upload_days",
}
RULE_DAYS = ("expiration_days", "noncurrent_version_expiration_days", "abort_incomplete_multipart_upload_days")
ENCRYPTIONS = ("AES256", "aws:kms", "none")

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_RULE_ID = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.]{0,254}$")
# S3 tag keys and values: letters, digits, spaces and + - = . _ : / @
_TAG = re.compile(r"^[\w .:/=+\-@]*$")


def bucket_name_errors(name: Any) -> list[str]:
    """Problems of an S3 bucket name (the rules S3 and MinIO both enforce)."""
    if not isinstance(name, str) or not _BUCKET_NAME.match(name):
        return [f"{name!r} is not a bucket name (3-63 characters: lowercase letters, digits, dots and "
                "hyphens, starting and ending with a letter or digit)"]
    problems = []
    if ".." in name or ".-" in name or "-." in name:
        problems.append(f"{name!r} has adjacent dots or a dot next to a hyphen")
    try:
        ipaddress.IPv4Address(name)
        problems.append(f"{name!r} looks like an IP address")
    except ValueError:
        pass
    return problems


def _check_rule(errors: list[str], where: str, rule: Any) -> None:
    if not isinstance(rule, dict):
        errors.append(f"{where}: must be a mapping with id and at least one of {', '.join(RULE_DAYS)}")
        return
    extra = sorted(str(k) for k in rule if k not in RULE_KEYS)
    if extra:
        errors.append(f"{where}: unknown key(s) {', '.join(extra)}. Fix: use {', '.join(sorted(RULE_KEYS))}")
    if not isinstance(rule.get("id"), str) or not _RULE_ID.match(rule["id"]):
        errors.append(f"{where}.id: {rule.get('id')!r} is not a rule id. Fix: letters, digits, '-', '_', '.'")
    if not any(k in rule for k in RULE_DAYS):
        errors.append(f"{where}: sets no action. Fix: set one of {', '.join(RULE_DAYS)}")
    for key in RULE_DAYS:
        if key in rule and (isinstance(rule[key], bool) or not isinstance(rule[key], int) or rule[key] < 1):
            errors.append(f"{where}.{key}: {rule[key]!r} is not a positive number of days")
    if rule.get("status", "Enabled") not in ("Enabled", "Disabled"):
        errors.append(f"{where}.status: {rule['status']!r}. Fix: Enabled or Disabled")
    prefix = rule.get("prefix", "")
    if not isinstance(prefix, str) or prefix.startswith("/"):
        errors.append(f"{where}.prefix: {prefix!r} is not a relative object key prefix")


def variable_errors(values: dict, context: dict | None = None) -> list[str]:
    """The storage role's checks beyond its argument spec (bucket names and rules, MinIO's namespace and
    volume size), run by mlops.platform.validate_roles before anything changes. The role checks the
    same settings again when used alone (vars/main.yml); the team model is the team_isolation check's."""
    errors = bucket_errors(values.get("storage_buckets", []), values.get("storage_bucket_name_prefix", ""),
                           values.get("storage_s3_encryption", "AES256"))
    if values.get("storage_backend", "minio") == "minio":
        if "storage_minio_namespace" in values:
            errors += namespace_errors("storage_minio_namespace", values["storage_minio_namespace"])
        errors += size_errors("storage_minio_volume_size", values.get("storage_minio_volume_size"))
    return errors


def bucket_errors(buckets: Any, name_prefix: str = "", encryption: str = "AES256") -> list[str]:
    """Every problem of ``storage_buckets`` (empty list when valid), each naming the field and the fix."""
    errors: list[str] = []
    if encryption not in ENCRYPTIONS:
        errors.append(f"storage_s3_encryption: {encryption!r}. Fix: one of {', '.join(ENCRYPTIONS)}")
    if not isinstance(buckets, list):
        return [*errors, "storage_buckets: must be a list of buckets"]
    seen: set[str] = set()
    for i, bucket in enumerate(buckets):
        where = f"storage_buckets[{i}]"
        if not isinstance(bucket, dict) or "name" not in bucket:
            errors.append(f"{where}: must be a mapping with at least a name")
            continue
        where = f"storage_buckets[{i}] ({bucket['name']})"
        extra = sorted(str(k) for k in bucket if k not in BUCKET_KEYS)
        if extra:
            errors.append(f"{where}: unknown key(s) {', '.join(extra)}. Fix: use {', '.join(sorted(BUCKET_KEYS))}")
        full = f"{name_prefix}{bucket['name']}"
        errors.extend(f"{where}.name: {p}. Fix: change the name or storage_bucket_name_prefix"
                      for p in bucket_name_errors(full))
        if full in seen:
            errors.append(f"{where}.name: {full!r} is defined twice. Fix: give each bucket its own name")
        seen.add(full)
        for flag in ("versioning", "team_prefixes"):
            if flag in bucket and not isinstance(bucket[flag], bool):
                errors.append(f"{where}.{flag}: {bucket[flag]!r} is not a boolean. Fix: true or false")
        rules = bucket.get("lifecycle", [])
        if not isinstance(rules, list):
            errors.append(f"{where}.lifecycle: must be a list of rules")
            rules = []
        ids = [r.get("id") for r in rules if isinstance(r, dict)]
        if len(ids) != len(set(ids)):
            errors.append(f"{where}.lifecycle: rule ids repeat ({ids}). Fix: one id per rule")
        for j, rule in enumerate(rules):
            _check_rule(errors, f"{where}.lifecycle[{j}]", rule)
        tags = bucket.get("tags", {})
        if not isinstance(tags, dict) or not all(_TAG.match(str(k)) and _TAG.match(str(v)) for k, v in tags.items()):
            errors.append(f"{where}.tags: {tags!r}. Fix: a mapping of S3 tags (letters, digits, spaces, + - = . _ : / @)")
    return errors


def bucket_plan(buckets: list, teams: list | None = None, settings: dict | None = None) -> list[dict]:
    """The complete buckets: ``[{name, key, versioning, encryption, lifecycle, tags, prefixes}]``.

    ``settings``: ``name_prefix`` (prepended to every name: S3 names are global),
    ``encryption`` (AES256, aws:kms or none), ``kms_key_id``, ``tags`` (cost tags on every
    bucket). ``prefixes`` are the team model's ``storage.bucket_prefix`` of every team, for
    buckets with ``team_prefixes: true``; ``key`` is the bucket's short name.
    """
    settings = settings or {}
    prefixes = sorted({t["storage"]["bucket_prefix"] for t in normalize_teams(teams)})
    names = bucket_names(buckets, settings.get("name_prefix", ""))
    plan = []
    for bucket in buckets:
        tags = {**(settings.get("tags") or {}), **(bucket.get("tags") or {})}
        plan.append({
            "key": bucket["name"],
            "name": names[bucket["name"]],
            "versioning": bool(bucket.get("versioning", False)),
            "encryption": settings.get("encryption", "AES256"),
            "kms_key_id": settings.get("kms_key_id", ""),
            "lifecycle": [normalize_rule(r) for r in bucket.get("lifecycle") or []],
            "tags": {str(k): str(v) for k, v in sorted(tags.items())},
            "prefixes": prefixes if bucket.get("team_prefixes", False) else [],
        })
    return plan


def bucket_names(buckets: list, name_prefix: str = "") -> dict[str, str]:
    """``{short name: bucket name}`` of the plan, without the team model (``mlops_storage.buckets``)."""
    return {bucket["name"]: f"{name_prefix}{bucket['name']}" for bucket in buckets}


def normalize_rule(rule: dict) -> dict:
    """A lifecycle rule with every field present (0 means: no such action)."""
    return {
        "id": rule["id"],
        "prefix": rule.get("prefix", ""),
        "status": rule.get("status", "Enabled"),
        **{key: int(rule.get(key, 0)) for key in RULE_DAYS},
    }


def lifecycle_configuration(rules: list[dict]) -> dict:
    """The S3 ``LifecycleConfiguration`` of normalized rules (what MinIO imports and S3 returns)."""
    out = []
    for rule in rules:
        item: dict[str, Any] = {"ID": rule["id"], "Filter": {"Prefix": rule["prefix"]}, "Status": rule["status"]}
        if rule["expiration_days"]:
            item["Expiration"] = {"Days": rule["expiration_days"]}
        if rule["noncurrent_version_expiration_days"]:
            item["NoncurrentVersionExpiration"] = {"NoncurrentDays": rule["noncurrent_version_expiration_days"]}
        if rule["abort_incomplete_multipart_upload_days"]:
            item["AbortIncompleteMultipartUpload"] = {
                "DaysAfterInitiation": rule["abort_incomplete_multipart_upload_days"]}
        out.append(item)
    return {"Rules": out}


def lifecycle_tasks(plan: list[dict]) -> list[dict]:
    """One community.aws.s3_lifecycle call per (bucket, rule): ``{bucket, rule}`` rows."""
    return [{"bucket": b["name"], "rule": rule} for b in plan for rule in b["lifecycle"]]


def prefix_objects(plan: list[dict]) -> list[dict]:
    """The marker object of every team prefix (``<prefix>.keep``), so a prefix is visible and verifiable."""
    return [{"bucket": b["name"], "key": f"{p}.keep"} for b in plan for p in b["prefixes"]]


def minio_provision_script(plan: list[dict], alias: str = "platform") -> str:
    """The script of the MinIO bucket-provisioning Job (``mc`` image).

    Reads ``MINIO_ENDPOINT``, ``MINIO_ROOT_USER`` and ``MINIO_ROOT_PASSWORD`` from its
    environment and the lifecycle files from ``$LIFECYCLE_DIR/<bucket>.json``. Every step is
    idempotent: re-running the Job leaves the buckets as they are.
    """
    q = shlex.quote
    lines = [
        "#!/bin/sh",
        "# Rendered by mlops.platform (plugins/module_utils/storage.py); idempotent.",
        "set -eu",
        f'until mc alias set {alias} "$MINIO_ENDPOINT" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null; do',
        "  echo 'waiting for MinIO'; sleep 2",
        "done",
    ]
    for bucket in plan:
        target = q(f"{alias}/{bucket['name']}")
        lines.append(f"mc mb --ignore-existing {target}")
        if bucket["versioning"]:
            lines.append(f"mc version enable {target}")
        lines.append(f"mc anonymous set none {target}")
        if bucket["tags"]:
            tags = "&".join(f"{k}={v}" for k, v in bucket["tags"].items())
            lines.append(f"mc tag set {target} {q(tags)}")
        if bucket["lifecycle"]:
            lines.append(f'mc ilm import {target} < "$LIFECYCLE_DIR"/{q(bucket["name"] + ".json")}')
        for prefix in bucket["prefixes"]:
            lines.append(f"printf '' | mc pipe {q(alias + '/' + bucket['name'] + '/' + prefix + '.keep')}")
    lines.append("echo 'buckets ready'")
    return "\n".join(lines) + "\n"


def plan_digest(*parts: Any) -> str:
    """Short stable digest of the plan, used to name the (immutable) provisioning Job."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:8]


# The minio backend's objects -----------------------------------------------------------------

MINIO_DEFAULTS: dict[str, Any] = {
    "namespace": "minio",
    "name": "minio",
    "image": "quay.io/minio/minio",
    "mc_image": "quay.io/minio/mc",
    "credentials_secret": "minio-credentials",
    "volume_size": "10Gi",
    "storage_class": "",
    "host_path": "",
    "resources": {},
    "job_resources": {},
    "pod_security": "restricted",
    # MINIO_PROMETHEUS_AUTH_TYPE=public: /minio/v2/metrics/cluster without a bearer token, so the
    # monitoring role's ServiceMonitor can scrape it (the Service is in-cluster only).
    "metrics_public": True,
}
_POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
                 "seccompProfile": {"type": "RuntimeDefault"}}
_CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def minio_labels(name: str, component: str | None = None) -> dict[str, str]:
    """The labels of every object of the minio backend (plus the component, when given)."""
    labels = {
        "app.kubernetes.io/managed-by": "mlops.platform",
        "app.kubernetes.io/part-of": "mlops-platform",
        "app.kubernetes.io/name": "minio",
        "app.kubernetes.io/instance": name,
    }
    return {**labels, "app.kubernetes.io/component": component} if component else labels


def _credentials_env(secret: str) -> list[dict]:
    return [{"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
            for key in ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD")]


def minio_objects(plan: list[dict], settings: dict | None = None) -> list[dict]:
    """Namespace, PersistentVolume (with ``host_path``), Service, StatefulSet, ConfigMap and Job of MinIO.

    ``settings`` (defaults in ``MINIO_DEFAULTS``): ``namespace``, ``name``, ``image``,
    ``mc_image``, ``credentials_secret``, ``volume_size``, ``storage_class``, ``host_path``,
    ``resources``, ``job_resources``, ``pod_security``. The Job's pod template is immutable, so
    the Job and its ConfigMap are named after a digest of the script, the lifecycle files and
    the client image: a changed plan makes a new Job, an unchanged one changes nothing. The
    credentials Secret is ``minio_credentials_secret``.
    """
    s = {**MINIO_DEFAULTS, **(settings or {})}
    ns, name = s["namespace"], s["name"]
    selector = {"app.kubernetes.io/name": "minio", "app.kubernetes.io/instance": name}
    server_labels = minio_labels(name, "object-storage")
    job_labels = minio_labels(name, "bucket-provisioning")
    script = minio_provision_script(plan)
    lifecycles = {f"{b['name']}.json": json.dumps(lifecycle_configuration(b["lifecycle"]), sort_keys=True)
                  for b in plan if b["lifecycle"]}
    job_name = f"{name}-buckets-{plan_digest([script, lifecycles, s['mc_image']])}"
    credentials = _credentials_env(s["credentials_secret"])

    claim = claim_spec(s["volume_size"], s["host_path"], s["storage_class"])

    objects: list[dict] = [{
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": {**minio_labels(name), "pod-security.kubernetes.io/enforce": s["pod_security"],
                                            "pod-security.kubernetes.io/enforce-version": "latest"}},
    }]
    if s["host_path"]:
        objects.append(host_path_volume(ns, name, s["volume_size"], s["host_path"], minio_labels(name)))
    objects += [{
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": server_labels},
        "spec": {"selector": selector, "ports": [
            {"name": "api", "port": 9000, "targetPort": "api", "protocol": "TCP"},
            {"name": "console", "port": 9001, "targetPort": "console", "protocol": "TCP"}]},
    }, {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": ns, "labels": server_labels},
        "spec": {
            "serviceName": name,
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": server_labels},
                "spec": {
                    "securityContext": _POD_SECURITY,
                    "containers": [{
                        "name": "minio",
                        "image": s["image"],
                        "args": ["server", "/data", "--address", ":9000", "--console-address", ":9001"],
                        "env": credentials + ([{"name": "MINIO_PROMETHEUS_AUTH_TYPE", "value": "public"}]
                                              if s["metrics_public"] else []),
                        "ports": [{"name": "api", "containerPort": 9000, "protocol": "TCP"},
                                  {"name": "console", "containerPort": 9001, "protocol": "TCP"}],
                        "readinessProbe": {"httpGet": {"path": "/minio/health/ready", "port": "api"}, "periodSeconds": 10},
                        "livenessProbe": {"httpGet": {"path": "/minio/health/live", "port": "api"},
                                          "initialDelaySeconds": 10, "periodSeconds": 20},
                        "resources": s["resources"],
                        "securityContext": _CONTAINER_SECURITY,
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }],
                },
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": minio_labels(name)}, "spec": claim}],
        },
    }, {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": job_name, "namespace": ns, "labels": job_labels},
        "data": {**lifecycles, "provision.sh": script},
    }, {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job_name, "namespace": ns, "labels": job_labels},
        "spec": {
            "backoffLimit": 6,
            "template": {
                "metadata": {"labels": job_labels},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "securityContext": _POD_SECURITY,
                    "containers": [{
                        "name": "mc",
                        "image": s["mc_image"],
                        "command": ["/bin/sh", "/scripts/provision.sh"],
                        "env": [*credentials,
                                {"name": "MINIO_ENDPOINT", "value": f"http://{name}.{ns}.svc.cluster.local:9000"},
                                {"name": "LIFECYCLE_DIR", "value": "/scripts"},
                                {"name": "MC_CONFIG_DIR", "value": "/tmp/.mc"}],
                        "resources": s["job_resources"],
                        "securityContext": _CONTAINER_SECURITY,
                        "volumeMounts": [{"name": "scripts", "mountPath": "/scripts", "readOnly": True},
                                         {"name": "tmp", "mountPath": "/tmp"}],
                    }],
                    "volumes": [{"name": "scripts", "configMap": {"name": job_name}}, {"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }]
    # Separate copies: the bundle and YAML dumps must not see shared (aliased) dicts.
    return json.loads(json.dumps(objects))


def minio_credentials_secret(settings: dict | None, access_key_id: Any, secret_access_key: Any) -> dict:
    """The Secret with MinIO's root user and password (the server's and the Job's environment)."""
    s = {**MINIO_DEFAULTS, **(settings or {})}

    def b64(value: Any) -> str:
        return base64.b64encode(str(value).encode()).decode()

    return {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": s["credentials_secret"], "namespace": s["namespace"], "labels": minio_labels(s["name"])},
        "type": "Opaque",
        "data": {"MINIO_ROOT_USER": b64(access_key_id), "MINIO_ROOT_PASSWORD": b64(secret_access_key)},
    }
