# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The team model: one definition per team (inventory ``teams:``), read by every role.

``validate_teams`` checks a list of team definitions and returns every problem as a
sentence that names the team, the field and the fix. ``normalize_teams`` fills in the
defaults so other roles (Seldon runtimes, secrets, bucket prefixes) read one complete shape.
``render_team_objects`` turns validated teams into the Kubernetes objects of the
team_isolation role. Everything here is plain Python, unit-tested without a cluster.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from typing import Any

from ansible_collections.mlops.platform.plugins.module_utils.k8s_results import object_key
from ansible_collections.mlops.platform.plugins.module_utils.quantity import (
    QuantityError,
    canonical_quantity,
    parse_quantity,
)

MANAGED_BY = "mlops.platform"
PART_OF = "mlops-platform"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_TEAM = "mlops.platform/team"
LABEL_INSTANCE = "mlops.platform/instance"
# Other roles label their objects in team namespaces too; this label keeps pruning to ours.
LABEL_COMPONENT = "app.kubernetes.io/component"
COMPONENT = "team-isolation"
LABEL_COST_CENTER = "mlops.platform/cost-center"
LABEL_ENVIRONMENT = "mlops.platform/environment"
LABEL_NAMESPACE_NAME = "kubernetes.io/metadata.name"
PSA_PREFIX = "pod-security.kubernetes.io/"
PLATFORM_LABELS = (LABEL_MANAGED_BY, LABEL_PART_OF, LABEL_TEAM, LABEL_INSTANCE, LABEL_COMPONENT, "name")

ACCESS_LEVELS = ("admin", "edit", "view")
PSA_LEVELS = ("privileged", "baseline", "restricted")
PSA_MODES = ("enforce", "audit", "warn")
PROTOCOLS = ("TCP", "UDP", "SCTP")
RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

# Object names the role owns inside every team namespace.
QUOTA_NAME = "mlops-team-quota"
LIMIT_RANGE_NAME = "mlops-team-limits"
ROLE_PREFIX = "mlops-team-"
NETPOL_DEFAULT_DENY = "mlops-default-deny"
NETPOL_DNS = "mlops-allow-dns"
NETPOL_TEAM = "mlops-allow-team"
NETPOL_PEERS = "mlops-allow-peers"
NETPOL_CIDRS = "mlops-allow-egress-cidrs"

# Kinds the role creates, in apply order (namespaces first); pruning lists these.
MANAGED_KINDS = (
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    ("v1", "ResourceQuota"),
    ("v1", "LimitRange"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
)

TEAM_KEYS = {
    "name", "description", "namespaces", "serving", "training", "secrets", "storage", "access",
    "service_accounts", "quota", "limit_range", "pod_security", "network", "cost", "labels", "kafka",
    "processing",
}
ACCESS_KEYS = {"groups", "users"}
SA_KEYS = {"name", "access"}
QUOTA_KEYS = {"requests", "limits", "count"}
LIMIT_RANGE_KEYS = {"default", "default_request", "max", "min"}
POD_SECURITY_KEYS = {"enforce", "audit", "warn", "version"}
NETWORK_KEYS = {"ingress_from", "egress_to", "egress_cidrs", "allow_dns", "allow_team"}
PEER_KEYS = {"namespace", "ports"}
PORT_KEYS = {"port", "protocol"}
COST_KEYS = {"cost_center", "environment"}
STORAGE_KEYS = {"bucket_prefix"}

# Object counts the API server knows by their short quota name; anything else is count/<name>.
STANDARD_COUNTS = {
    "pods", "services", "secrets", "configmaps", "persistentvolumeclaims", "replicationcontrollers",
    "resourcequotas", "services.loadbalancers", "services.nodeports",
}
# Resources that a ResourceQuota accepts only as requests.<name> (no limits.<name>).
REQUESTS_ONLY = {"storage"}

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_RESOURCE_NAME = re.compile(r"^(cpu|memory|ephemeral-storage|storage|hugepages-[0-9]+[KMGT]i|"
                            r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_COUNT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_PSA_VERSION = re.compile(r"^(latest|v1\.[0-9]+)$")

# The defaults a team inherits; the role passes its own (team_isolation_*_defaults) over these.
BUILTIN_DEFAULTS: dict[str, Any] = {
    "quota": {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"cpu": "4", "memory": "8Gi"},
              "count": {"pods": 50}},
    "limit_range": {"default": {"cpu": "500m", "memory": "512Mi"},
                    "default_request": {"cpu": "100m", "memory": "128Mi"}},
    "pod_security": {"enforce": "baseline", "audit": "restricted", "warn": "restricted", "version": "latest"},
    "network": {"ingress_from": [], "egress_to": [], "egress_cidrs": [], "allow_dns": True, "allow_team": True},
    "cost": {"cost_center": "", "environment": ""},
    "secrets": [],
}


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
class _Errors:
    """Collects messages of the form ``team 'x': field: problem. fix``."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, team: str, field: str, problem: str, fix: str) -> None:
        self.messages.append(f"team '{team}': {field}: {problem}. Fix: {fix}.")


def _is_dns_label(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 63 and bool(_DNS1123_LABEL.match(value))


def namespace_errors(setting: str, value: Any) -> list[str]:
    """``[message]`` when the setting ``setting`` is not a namespace name a platform role may install into."""
    if not _is_dns_label(value):
        return [f"{setting}: {value!r} is not a DNS-1123 label. Fix: use at most 63 lower-case letters, digits "
                "and '-', starting and ending with a letter or digit"]
    if value in RESERVED_NAMESPACES or value.startswith("kube-"):
        return [f"{setting}: {value!r} is a Kubernetes system namespace. Fix: give the component its own namespace"]
    return []


def _is_dns_subdomain(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 253 and bool(_DNS1123_SUBDOMAIN.match(value))


def _is_label_value(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 63 and bool(_LABEL_VALUE.match(value))


def _is_label_key(key: Any) -> bool:
    if not isinstance(key, str) or not key:
        return False
    prefix, _sep, name = key.rpartition("/")
    if prefix and not _is_dns_subdomain(prefix):
        return False
    return len(name) <= 63 and bool(_LABEL_NAME.match(name))


def _unknown(errors: _Errors, team: str, field: str, value: dict, allowed: set[str]) -> None:
    extra = sorted(str(k) for k in value if k not in allowed)
    if extra:
        errors.add(team, field, f"unknown key(s) {', '.join(extra)}",
                   f"remove them or use one of: {', '.join(sorted(allowed))}")


def _dict_field(errors: _Errors, team: str, field: str, value: Any, allowed: set[str] | None = None) -> dict:
    """Return ``value`` when it is a mapping (reporting unknown keys), else report and return {}."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.add(team, field, f"must be a mapping, got {type(value).__name__} {value!r}",
                   "write it as key: value pairs")
        return {}
    if allowed is not None:
        _unknown(errors, team, field, value, allowed)
    return value


def _list_field(errors: _Errors, team: str, field: str, value: Any) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        errors.add(team, field, f"must be a list, got {type(value).__name__} {value!r}", "write it as a YAML list")
        return []
    return value


def _quantities(errors: _Errors, team: str, field: str, value: Any) -> dict:
    """Validate a {resource: quantity} mapping; return the parseable entries as Fractions."""
    parsed = {}
    for resource, quantity in _dict_field(errors, team, field, value).items():
        if not isinstance(resource, str) or not _RESOURCE_NAME.match(resource):
            errors.add(team, f"{field}.{resource}", "is not a resource name",
                       "use cpu, memory, ephemeral-storage, storage, hugepages-<size> or a vendor/resource "
                       "name such as nvidia.com/gpu")
            continue
        try:
            amount = parse_quantity(quantity)
        except QuantityError as exc:
            errors.add(team, f"{field}.{resource}", str(exc), "write a quantity such as 500m, 2, 512Mi or 64Gi")
            continue
        if amount < 0:
            errors.add(team, f"{field}.{resource}", f"{quantity!r} is negative", "use a quantity of 0 or more")
            continue
        parsed[resource] = amount
    return parsed


def _validate_access(errors: _Errors, name: str, team: dict) -> None:
    access = _dict_field(errors, name, "access", team.get("access"), set(ACCESS_LEVELS))
    for level in ACCESS_LEVELS:
        subjects = _dict_field(errors, name, f"access.{level}", access.get(level), ACCESS_KEYS)
        for kind in sorted(ACCESS_KEYS):
            for i, subject in enumerate(_list_field(errors, name, f"access.{level}.{kind}", subjects.get(kind))):
                if not isinstance(subject, str) or not subject.strip() or subject.startswith("system:"):
                    errors.add(name, f"access.{level}.{kind}[{i}]", f"{subject!r} is not a usable subject name",
                               "give a non-empty group or user name that does not start with 'system:'")
    seen: set[str] = set()
    for i, account in enumerate(_list_field(errors, name, "service_accounts", team.get("service_accounts"))):
        field = f"service_accounts[{i}]"
        account = _dict_field(errors, name, field, account, SA_KEYS)
        sa_name = account.get("name")
        if not _is_dns_subdomain(sa_name):
            errors.add(name, f"{field}.name", f"{sa_name!r} is not a DNS-1123 subdomain",
                       "use lower-case letters, digits, '-' and '.', e.g. model-deployer")
        elif sa_name in seen:
            errors.add(name, f"{field}.name", f"service account {sa_name!r} is listed twice", "list it once")
        seen.add(sa_name)
        if account.get("access", "edit") not in ACCESS_LEVELS:
            errors.add(name, f"{field}.access", f"{account.get('access')!r} is not an access level",
                       f"use one of {', '.join(ACCESS_LEVELS)}")


def _validate_quota_and_limits(errors: _Errors, name: str, team: dict, defaults: dict) -> None:
    quota = _dict_field(errors, name, "quota", team.get("quota", defaults["quota"]), QUOTA_KEYS)
    requests = _quantities(errors, name, "quota.requests", quota.get("requests"))
    limits = _quantities(errors, name, "quota.limits", quota.get("limits"))
    for resource in sorted(limits):
        if resource in REQUESTS_ONLY or "/" in resource:
            errors.add(name, f"quota.limits.{resource}", "a ResourceQuota limits this resource through requests only",
                       f"move it to quota.requests.{resource}")
        elif resource in requests and requests[resource] > limits[resource]:
            errors.add(name, f"quota.limits.{resource}",
                       f"{quota['limits'][resource]} is below quota.requests.{resource} "
                       f"({quota['requests'][resource]})",
                       f"raise quota.limits.{resource} or lower quota.requests.{resource}")
    for obj, count in _dict_field(errors, name, "quota.count", quota.get("count")).items():
        if not isinstance(obj, str) or not _COUNT_NAME.match(obj):
            errors.add(name, f"quota.count.{obj}", "is not an object count name",
                       "use pods, services, secrets, configmaps, persistentvolumeclaims or <resource>.<group>")
        elif isinstance(count, bool) or not isinstance(count, int) or count < 0:
            errors.add(name, f"quota.count.{obj}", f"{count!r} is not a whole number of objects", "use 0 or more")

    limit_range = team.get("limit_range", defaults["limit_range"])
    limit_range = _dict_field(errors, name, "limit_range", limit_range, LIMIT_RANGE_KEYS)
    lr = {key: _quantities(errors, name, f"limit_range.{key}", limit_range.get(key))
          for key in sorted(LIMIT_RANGE_KEYS)}
    raw = {key: limit_range.get(key) or {} for key in LIMIT_RANGE_KEYS}

    def check_le(small_key: str, large_key: str, resource: str) -> None:
        small, large = lr[small_key].get(resource), lr[large_key].get(resource)
        if small is not None and large is not None and small > large:
            errors.add(name, f"limit_range.{small_key}.{resource}",
                       f"{raw[small_key][resource]} is above limit_range.{large_key}.{resource} "
                       f"({raw[large_key][resource]})",
                       f"lower limit_range.{small_key}.{resource} or raise limit_range.{large_key}.{resource}")

    for resource in sorted(set().union(*lr.values())):
        check_le("default_request", "default", resource)
        check_le("min", "default_request", resource)
        check_le("default", "max", resource)
        check_le("min", "max", resource)
    # A container default must fit in the whole quota, or no defaulted pod is ever admitted.
    for key, hard, source in (("default", limits, "limits"), ("default_request", requests, "requests")):
        for resource, amount in sorted(lr[key].items()):
            if resource in hard and amount > hard[resource]:
                errors.add(name, f"limit_range.{key}.{resource}",
                           f"{raw[key][resource]} does not fit in quota.{source}.{resource} "
                           f"({quota[source][resource]})",
                           f"lower limit_range.{key}.{resource} or raise quota.{source}.{resource}")
    # Seed 001: a quota on limits.cpu rejects every pod that omits limits.cpu (Seldon's
    # components do) unless a LimitRange supplies the default.
    for resource in ("cpu", "memory", "ephemeral-storage"):
        if resource in limits and resource not in lr["default"]:
            errors.add(name, f"limit_range.default.{resource}",
                       f"quota.limits.{resource} is set but no default limit is, so pods that omit "
                       f"limits.{resource} (such as Seldon's components) would be rejected",
                       f"set limit_range.default.{resource}, e.g. 500m for cpu or 512Mi for memory")
        if resource in requests and resource not in lr["default_request"] and resource not in lr["default"]:
            errors.add(name, f"limit_range.default_request.{resource}",
                       f"quota.requests.{resource} is set but no default request is, so pods that omit "
                       f"requests.{resource} would be rejected",
                       f"set limit_range.default_request.{resource}")


def _validate_peer(errors: _Errors, name: str, field: str, peer: Any) -> None:
    if isinstance(peer, str):
        peer = {"namespace": peer}
    peer = _dict_field(errors, name, field, peer, PEER_KEYS)
    if not _is_dns_label(peer.get("namespace")):
        errors.add(name, f"{field}.namespace", f"{peer.get('namespace')!r} is not a namespace name",
                   "give a DNS-1123 label such as seldon-system")
    for j, port in enumerate(_list_field(errors, name, f"{field}.ports", peer.get("ports"))):
        if isinstance(port, int) and not isinstance(port, bool):
            port = {"port": port}
        port = _dict_field(errors, name, f"{field}.ports[{j}]", port, PORT_KEYS)
        number = port.get("port")
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
            errors.add(name, f"{field}.ports[{j}].port", f"{number!r} is not a port number", "use 1-65535")
        if port.get("protocol", "TCP") not in PROTOCOLS:
            errors.add(name, f"{field}.ports[{j}].protocol", f"{port.get('protocol')!r} is not a protocol",
                       f"use one of {', '.join(PROTOCOLS)}")


def _validate_network(errors: _Errors, name: str, team: dict) -> None:
    network = _dict_field(errors, name, "network", team.get("network"), NETWORK_KEYS)
    for direction in ("ingress_from", "egress_to"):
        for i, peer in enumerate(_list_field(errors, name, f"network.{direction}", network.get(direction))):
            _validate_peer(errors, name, f"network.{direction}[{i}]", peer)
    for i, cidr in enumerate(_list_field(errors, name, "network.egress_cidrs", network.get("egress_cidrs"))):
        try:
            ipaddress.ip_network(str(cidr), strict=True)
        except ValueError:
            errors.add(name, f"network.egress_cidrs[{i}]", f"{cidr!r} is not a network in CIDR notation",
                       "write e.g. 10.0.0.0/8 (host bits zero)")
    for flag in ("allow_dns", "allow_team"):
        if flag in network and not isinstance(network[flag], bool):
            errors.add(name, f"network.{flag}", f"{network[flag]!r} is not a boolean", "use true or false")


def _validate_team(errors: _Errors, index: int, team: Any, defaults: dict) -> str | None:
    if not isinstance(team, dict):
        errors.add(f"#{index}", "teams", f"entry {index} must be a mapping, got {type(team).__name__}",
                   "give each team as a mapping with at least 'name'")
        return None
    name = team.get("name")
    label = name if isinstance(name, str) and name else f"#{index}"
    if not _is_dns_label(name):
        errors.add(label, "name", f"{name!r} is not a DNS-1123 label (lower-case letters, digits and '-', "
                   "starting and ending with a letter or digit, at most 63 characters)",
                   "rename the team, e.g. financial-ml")
    _unknown(errors, label, "team", team, TEAM_KEYS)
    for flag in ("serving", "training"):
        if flag in team and not isinstance(team[flag], bool):
            errors.add(label, flag, f"{team[flag]!r} is not a boolean", "use true or false")
    if "description" in team and not isinstance(team["description"], str):
        errors.add(label, "description", "must be a string", "quote it")
    for i, secret in enumerate(_list_field(errors, label, "secrets", team.get("secrets"))):
        if not _is_dns_subdomain(secret):
            errors.add(label, f"secrets[{i}]", f"{secret!r} is not a Secret name", "use a DNS-1123 subdomain")
    storage = _dict_field(errors, label, "storage", team.get("storage"), STORAGE_KEYS)
    prefix = storage.get("bucket_prefix")
    if prefix is not None and (not isinstance(prefix, str) or prefix.startswith("/") or " " in prefix):
        errors.add(label, "storage.bucket_prefix", f"{prefix!r} is not an object key prefix",
                   "use a relative prefix such as financial-ml/")

    namespaces = team.get("namespaces", [name] if isinstance(name, str) else [])
    namespaces = _list_field(errors, label, "namespaces", namespaces)
    if isinstance(team.get("namespaces"), list) and not namespaces:
        errors.add(label, "namespaces", "is empty", "list at least one namespace or leave the key out")
    for i, ns in enumerate(namespaces):
        if not _is_dns_label(ns):
            errors.add(label, f"namespaces[{i}]", f"{ns!r} is not a DNS-1123 label", "use a valid namespace name")
        elif ns in RESERVED_NAMESPACES or ns.startswith("kube-"):
            errors.add(label, f"namespaces[{i}]", f"{ns!r} is a Kubernetes system namespace",
                       "give the team its own namespace")

    _validate_access(errors, label, team)
    _validate_quota_and_limits(errors, label, team, defaults)

    pod_security = _dict_field(errors, label, "pod_security", team.get("pod_security"), POD_SECURITY_KEYS)
    for mode in PSA_MODES:
        if mode in pod_security and pod_security[mode] not in PSA_LEVELS:
            errors.add(label, f"pod_security.{mode}", f"{pod_security[mode]!r} is not a Pod Security level",
                       f"use one of {', '.join(PSA_LEVELS)}")
    version = pod_security.get("version")
    if version is not None and not (isinstance(version, str) and _PSA_VERSION.match(version)):
        errors.add(label, "pod_security.version", f"{version!r} is not a Pod Security version",
                   "use latest or v1.<minor>, e.g. v1.33")

    _validate_network(errors, label, team)

    cost = _dict_field(errors, label, "cost", team.get("cost"), COST_KEYS)
    for key, value in cost.items():
        if key in COST_KEYS and not _is_label_value(value):
            errors.add(label, f"cost.{key}", f"{value!r} is not a valid label value",
                       "use at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric")
    for key, value in _dict_field(errors, label, "labels", team.get("labels")).items():
        if not _is_label_key(key):
            errors.add(label, f"labels.{key}", "is not a valid label key", "use [prefix/]name, e.g. example.com/owner")
        elif key in PLATFORM_LABELS or key.startswith((PSA_PREFIX, "kubernetes.io/", "mlops.platform/")):
            errors.add(label, f"labels.{key}", "is set by the platform", "remove it; use the matching team field")
        elif not _is_label_value(value if isinstance(value, str) else None):
            errors.add(label, f"labels.{key}", f"{value!r} is not a valid label value",
                       "quote it and use at most 63 letters, digits, '-', '_' or '.'")
    return name if isinstance(name, str) else None


def validate_teams(teams: Any, defaults: dict | None = None) -> list[str]:
    """Every problem in ``teams``, as messages naming the team, the field and the fix."""
    defaults = merge_defaults(defaults)
    errors = _Errors()
    if teams is None:
        return []
    if not isinstance(teams, list):
        return [f"teams: must be a list of team mappings, got {type(teams).__name__}. Fix: write teams as a YAML list."]
    owners: dict[str, str] = {}
    names: set[str] = set()
    for index, team in enumerate(teams):
        name = _validate_team(errors, index, team, defaults)
        if name is None:
            continue
        if name in names:
            errors.add(name, "name", "the team is defined twice", "merge the two definitions")
        names.add(name)
        namespaces = team.get("namespaces", [name])
        for ns in namespaces if isinstance(namespaces, list) else []:
            if not isinstance(ns, str):
                continue
            if ns in owners and owners[ns] != name:
                errors.add(name, "namespaces", f"namespace {ns!r} already belongs to team '{owners[ns]}'",
                           "give each namespace to one team only")
            elif ns in owners:
                errors.add(name, "namespaces", f"namespace {ns!r} is listed twice", "list it once")
            owners[ns] = name
    if not errors.messages:
        _validate_peer_reciprocity(errors, teams, owners, defaults)
        _validate_cross_team_grants(errors, teams)
    return errors.messages


# Namespaces the platform's roles install into (MinIO's with the minio backend only); no team may own one.
PLATFORM_NAMESPACE_SETTINGS = ("mlflow_namespace", "monitoring_namespace", "seldon_namespace", "storage_minio_namespace")


def role_defaults(variables: dict) -> dict:
    """The team defaults of the team_isolation role (team_isolation_*_defaults) found in ``variables``."""
    return {key: variables.get(f"team_isolation_{key}_defaults") for key in ("quota", "limit_range", "pod_security", "network")}


# Levels that let a subject change a namespace; sharing these between teams breaks the isolation.
WRITE_LEVELS = ("admin", "edit")


def _validate_cross_team_grants(errors: _Errors, teams: list) -> None:
    """A group or user with admin or edit in two teams lets each team change the other's namespaces.

    Sharing view (read-only) access is allowed: the dev inventory lets ml-team's viewers read data-team.
    """
    holders: dict[tuple[str, str], str] = {}
    for team in teams:
        access = team.get("access") or {}
        for level in WRITE_LEVELS:
            for kind in sorted(ACCESS_KEYS):
                for i, subject in enumerate((access.get(level) or {}).get(kind) or []):
                    other = holders.setdefault((kind, subject), team["name"])
                    if other != team["name"]:
                        errors.add(team["name"], f"access.{level}.{kind}[{i}]",
                                   f"{subject!r} also has admin or edit access to team '{other}', so the two teams "
                                   "can change each other's namespaces",
                                   "give each team its own admin and edit groups and users (sharing view is allowed)")


def variable_errors(values: dict, context: dict | None = None) -> list[str]:
    """The team_isolation role's checks beyond its argument spec, run by mlops.platform.validate_roles.

    ``values``: the role's validated variables; ``context``: every validated variable of the roles
    checked in the same task. Besides the team model: a team namespace must not be one the platform's
    other roles install into (``mlflow_namespace``, ...) nor a protected one.
    """
    context = {**(context or {}), **values}
    if "team_isolation_teams" not in values:
        return []
    teams = values["team_isolation_teams"]
    errors = validate_teams(teams, role_defaults(context))
    if errors:
        return errors
    taken = {ns: "team_isolation_protected_namespaces" for ns in context.get("team_isolation_protected_namespaces") or []}
    for setting in PLATFORM_NAMESPACE_SETTINGS:
        if context.get(setting) and (setting != "storage_minio_namespace" or context.get("storage_backend") == "minio"):
            taken[context[setting]] = setting
    found = _Errors()
    for team in normalize_teams(teams, role_defaults(context)):
        for i, namespace in enumerate(team["namespaces"]):
            if namespace in taken:
                found.add(team["name"], f"namespaces[{i}]",
                          f"{namespace!r} is a platform namespace ({taken[namespace]}), which the team would share "
                          "with the platform's components", "give the team its own namespace")
    return found.messages


def _validate_peer_reciprocity(errors: _Errors, teams: list, owners: dict[str, str], defaults: dict) -> None:
    """A path between two team namespaces needs both ends: egress at one, ingress at the other."""
    normalized = {t["name"]: normalize_team(t, defaults) for t in teams}
    allowed = {(d, t["name"], p["namespace"]) for t in normalized.values()
               for d in ("ingress_from", "egress_to") for p in t["network"][d]}
    opposite = {"egress_to": "ingress_from", "ingress_from": "egress_to"}
    for team in normalized.values():
        for direction in ("egress_to", "ingress_from"):
            for i, peer in enumerate(team["network"][direction]):
                other = owners.get(peer["namespace"])
                if other is None or other == team["name"]:
                    continue
                if not any((opposite[direction], other, ns) in allowed for ns in team["namespaces"]):
                    errors.add(team["name"], f"network.{direction}[{i}]",
                               f"namespace {peer['namespace']!r} of team '{other}' has no matching "
                               f"network.{opposite[direction]} entry for this team, so the traffic stays blocked",
                               f"add one of {team['namespaces']} to team '{other}' network.{opposite[direction]}, "
                               "or remove this peer")


# --------------------------------------------------------------------------------------------
# Normalisation: the complete shape other roles read
# --------------------------------------------------------------------------------------------
def merge_defaults(defaults: dict | None) -> dict:
    merged = copy.deepcopy(BUILTIN_DEFAULTS)
    for key, value in (defaults or {}).items():
        if value is not None:
            merged[key] = copy.deepcopy(value)
    return merged


def _peer(peer: Any) -> dict:
    peer = {"namespace": peer} if isinstance(peer, str) else dict(peer)
    ports = [{"port": p} if isinstance(p, int) else dict(p) for p in peer.get("ports") or []]
    for port in ports:
        port.setdefault("protocol", "TCP")
    return {"namespace": peer["namespace"], "ports": ports}


def normalize_team(team: dict, defaults: dict | None = None) -> dict:
    """A validated team with every field present (defaults applied, peers expanded)."""
    defaults = merge_defaults(defaults)
    name = team["name"]
    network = {**defaults["network"], **(team.get("network") or {})}
    access = team.get("access") or {}
    cost = {**defaults["cost"], **(team.get("cost") or {})}
    return {
        "name": name,
        "description": team.get("description", ""),
        "namespaces": list(team.get("namespaces") or [name]),
        "serving": bool(team.get("serving", False)),
        "training": bool(team.get("training", False)),
        "secrets": list(team.get("secrets", defaults["secrets"]) or []),
        "storage": {"bucket_prefix": (team.get("storage") or {}).get("bucket_prefix", f"{name}/")},
        "access": {level: {"groups": list((access.get(level) or {}).get("groups") or []),
                           "users": list((access.get(level) or {}).get("users") or [])}
                   for level in ACCESS_LEVELS},
        "service_accounts": [{"name": sa["name"], "access": sa.get("access", "edit")}
                             for sa in team.get("service_accounts") or []],
        "quota": copy.deepcopy(team.get("quota", defaults["quota"])) or {},
        "limit_range": copy.deepcopy(team.get("limit_range", defaults["limit_range"])) or {},
        "pod_security": {**defaults["pod_security"], **(team.get("pod_security") or {})},
        "network": {
            "ingress_from": [_peer(p) for p in network.get("ingress_from") or []],
            "egress_to": [_peer(p) for p in network.get("egress_to") or []],
            "egress_cidrs": [str(c) for c in network.get("egress_cidrs") or []],
            "allow_dns": network.get("allow_dns", True),
            "allow_team": network.get("allow_team", True),
        },
        "cost": cost,
        "labels": dict(team.get("labels") or {}),
    }


def normalize_teams(teams: list | None, defaults: dict | None = None) -> list[dict]:
    return [normalize_team(t, defaults) for t in teams or []]


def team_namespaces(teams: list | None, defaults: dict | None = None) -> list[dict]:
    """One row per team namespace: what the Seldon, secrets and storage roles iterate over."""
    rows = []
    for team in normalize_teams(teams, defaults):
        for namespace in team["namespaces"]:
            rows.append({
                "team": team["name"],
                "namespace": namespace,
                "serving": team["serving"],
                "training": team["training"],
                "secrets": team["secrets"],
                "bucket_prefix": team["storage"]["bucket_prefix"],
                "service_accounts": [sa["name"] for sa in team["service_accounts"]],
            })
    return rows


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------
def _quantity_map(values: dict | None) -> dict:
    # Rendered as the API server stores them, so what verify reads back compares equal.
    return {res: canonical_quantity(q) for res, q in sorted((values or {}).items())}


def _quota_hard(quota: dict) -> dict:
    hard = {}
    for resource, amount in (quota.get("requests") or {}).items():
        hard[f"requests.{resource}"] = canonical_quantity(amount)
    for resource, amount in (quota.get("limits") or {}).items():
        hard[f"limits.{resource}"] = canonical_quantity(amount)
    for obj, count in (quota.get("count") or {}).items():
        hard[obj if obj in STANDARD_COUNTS else f"count/{obj}"] = str(count)
    return dict(sorted(hard.items()))


def _peer_rule(peer: dict, direction: str) -> dict:
    selector = {"namespaceSelector": {"matchLabels": {LABEL_NAMESPACE_NAME: peer["namespace"]}}}
    rule: dict[str, Any] = {direction: [selector]}
    if peer["ports"]:
        rule["ports"] = [{"port": p["port"], "protocol": p["protocol"]} for p in peer["ports"]]
    return rule


def team_labels(team: dict, settings: dict) -> dict:
    labels = {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_PART_OF: PART_OF,
        LABEL_INSTANCE: settings["instance"],
        LABEL_COMPONENT: COMPONENT,
        LABEL_TEAM: team["name"],
    }
    if team["cost"].get("cost_center"):
        labels[LABEL_COST_CENTER] = team["cost"]["cost_center"]
    environment = team["cost"].get("environment") or settings.get("environment") or ""
    if environment:
        labels[LABEL_ENVIRONMENT] = environment
    return labels


def admission_specs(team: dict) -> tuple[dict | None, dict | None]:
    """The specs of a normalised team's ResourceQuota and LimitRange (None when it has none).

    The objects every namespace of the team gets, and what the Seldon check weighs a runtime against.
    """
    quota_hard = _quota_hard(team["quota"])
    limit: dict[str, Any] = {"type": "Container"}
    for key, field in (("default", "default"), ("default_request", "defaultRequest"), ("max", "max"), ("min", "min")):
        if team["limit_range"].get(key):
            limit[field] = _quantity_map(team["limit_range"][key])
    return ({"hard": quota_hard} if quota_hard else None), ({"limits": [limit]} if len(limit) > 1 else None)


def render_team_objects(team: dict, settings: dict) -> list[dict]:
    """All objects of one normalised team, namespaces first.

    ``settings``: ``instance`` (label value that scopes pruning), ``environment``,
    ``access_rules`` ({admin|edit|view: [PolicyRule]}), ``dns`` ({namespace, pod_labels, port}).
    """
    labels = team_labels(team, settings)
    objects: list[dict] = []
    namespaced: list[dict] = []

    def meta(name: str, namespace: str | None = None, extra: dict | None = None) -> dict:
        m: dict[str, Any] = {"name": name, "labels": {**labels, **(extra or {})}}
        if namespace:
            m["namespace"] = namespace
        return m

    psa = team["pod_security"]
    quota_spec, limit_range_spec = admission_specs(team)
    rules = settings["access_rules"]
    dns = settings["dns"]
    team_selector = {"namespaceSelector": {"matchLabels": {LABEL_TEAM: team["name"],
                                                           LABEL_INSTANCE: settings["instance"]}}}
    for namespace in team["namespaces"]:
        ns_labels = {**team["labels"], "name": namespace}
        for mode in PSA_MODES:
            ns_labels[f"{PSA_PREFIX}{mode}"] = psa[mode]
            ns_labels[f"{PSA_PREFIX}{mode}-version"] = psa["version"]
        ns_meta = meta(namespace, extra=ns_labels)
        if team["description"]:
            ns_meta["annotations"] = {"mlops.platform/description": team["description"]}
        objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": ns_meta})

        for sa in team["service_accounts"]:
            namespaced.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(sa["name"], namespace)})
        if quota_spec:
            namespaced.append({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta(QUOTA_NAME, namespace),
                               "spec": copy.deepcopy(quota_spec)})
        if limit_range_spec:
            namespaced.append({"apiVersion": "v1", "kind": "LimitRange", "metadata": meta(LIMIT_RANGE_NAME, namespace),
                               "spec": copy.deepcopy(limit_range_spec)})
        for level in ACCESS_LEVELS:
            role_name = f"{ROLE_PREFIX}{level}"
            namespaced.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                               "metadata": meta(role_name, namespace), "rules": copy.deepcopy(rules[level])})
            subjects = [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": g}
                        for g in team["access"][level]["groups"]]
            subjects += [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": u}
                         for u in team["access"][level]["users"]]
            subjects += [{"kind": "ServiceAccount", "name": sa["name"], "namespace": namespace}
                         for sa in team["service_accounts"] if sa["access"] == level]
            if subjects:
                namespaced.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                                   "metadata": meta(role_name, namespace),
                                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                               "name": role_name},
                                   "subjects": subjects})
        namespaced.extend(_network_policies(team, namespace, meta, team_selector, dns))
    return objects + namespaced


def _network_policies(team: dict, namespace: str, meta, team_selector: dict, dns: dict) -> list[dict]:
    net = team["network"]

    def policy(name: str, types: list[str], ingress=None, egress=None) -> dict:
        spec: dict[str, Any] = {"podSelector": {}, "policyTypes": types}
        if ingress is not None:
            spec["ingress"] = ingress
        if egress is not None:
            spec["egress"] = egress
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": meta(name, namespace), "spec": spec}

    policies = [policy(NETPOL_DEFAULT_DENY, ["Ingress", "Egress"])]
    if net["allow_dns"]:
        policies.append(policy(NETPOL_DNS, ["Egress"], egress=[{
            "to": [{"namespaceSelector": {"matchLabels": {LABEL_NAMESPACE_NAME: dns["namespace"]}},
                    "podSelector": {"matchLabels": dict(dns["pod_labels"])}}],
            "ports": [{"port": dns["port"], "protocol": "UDP"}, {"port": dns["port"], "protocol": "TCP"}],
        }]))
    # Same namespace always; the team's other namespaces too when allow_team.
    same = [{"podSelector": {}}] + ([team_selector] if net["allow_team"] else [])
    policies.append(policy(NETPOL_TEAM, ["Ingress", "Egress"], ingress=[{"from": same}], egress=[{"to": same}]))
    if net["ingress_from"] or net["egress_to"]:
        types = (["Ingress"] if net["ingress_from"] else []) + (["Egress"] if net["egress_to"] else [])
        policies.append(policy(
            NETPOL_PEERS, types,
            ingress=[_peer_rule(p, "from") for p in net["ingress_from"]] or None,
            egress=[_peer_rule(p, "to") for p in net["egress_to"]] or None,
        ))
    if net["egress_cidrs"]:
        policies.append(policy(NETPOL_CIDRS, ["Egress"],
                               egress=[{"to": [{"ipBlock": {"cidr": c}} for c in net["egress_cidrs"]]}]))
    return policies


def render_teams(teams: list | None, settings: dict, defaults: dict | None = None) -> list[dict]:
    """Objects of all teams: every Namespace first, then the namespaced objects."""
    rendered = [render_team_objects(t, settings) for t in normalize_teams(teams, defaults)]
    namespaces = [o for objs in rendered for o in objs if o["kind"] == "Namespace"]
    others = [o for objs in rendered for o in objs if o["kind"] != "Namespace"]
    return namespaces + others


def stale_objects(found: list[dict], desired: list[dict], protected_namespaces: list[str] | None = None) -> list[dict]:
    """Objects in ``found`` (listed by our labels) that ``desired`` no longer has.

    Only objects carrying our managed-by and component labels qualify; protected namespaces are never
    returned. Objects inside a namespace that is itself stale are left to the namespace's
    deletion. Namespaced objects come before namespaces.
    """
    protected = set(protected_namespaces or ()) | set(RESERVED_NAMESPACES)
    keep = {object_key(o) for o in desired}
    stale = []
    for obj in found:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        if labels.get(LABEL_MANAGED_BY) != MANAGED_BY or labels.get(LABEL_COMPONENT) != COMPONENT:
            continue
        if object_key(obj) in keep:
            continue
        if obj.get("kind") == "Namespace" and meta.get("name") in protected:
            continue
        stale.append({"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                      "metadata": {k: v for k, v in (("name", meta.get("name")), ("namespace", meta.get("namespace")))
                                   if v}})
    doomed = {o["metadata"]["name"] for o in stale if o["kind"] == "Namespace"}
    stale = [o for o in stale if o["kind"] == "Namespace" or o["metadata"].get("namespace") not in doomed]
    return sorted(stale, key=lambda o: (o["kind"] == "Namespace", object_key(o)))


# --------------------------------------------------------------------------------------------
# Verification: the RBAC matrix
# --------------------------------------------------------------------------------------------
def _rule_allows(rules: list[dict], verb: str, group: str, resource: str) -> bool:
    def has(values, value):
        return "*" in (values or []) or value in (values or [])

    return any(has(r.get("verbs"), verb) and has(r.get("apiGroups"), group) and has(r.get("resources"), resource)
               for r in rules)


def access_reviews(teams: list | None, access_rules: dict, actions: list[dict], defaults: dict | None = None) -> list[dict]:
    """One SubjectAccessReview per (team subject, team namespace, action), with its expected answer.

    Subjects are each team's groups and service accounts (users are checked like groups).
    Expected: allowed in the subject's own namespaces exactly when its level's rules allow the
    action; never in another team's namespace.
    """
    normalized = normalize_teams(teams, defaults)
    namespaces = [(t["name"], ns) for t in normalized for ns in t["namespaces"]]
    reviews = []
    for team in normalized:
        subjects = [(f"group:{g}", level, {"user": "mlops-verify", "groups": [g, "system:authenticated"]})
                    for level in ACCESS_LEVELS for g in team["access"][level]["groups"]]
        for sa in team["service_accounts"]:
            for ns in team["namespaces"]:
                subjects.append((f"sa:{ns}/{sa['name']}", sa["access"], {
                    "user": f"system:serviceaccount:{ns}:{sa['name']}",
                    "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"]}))
        for label, level, who in subjects:
            for owner, ns in namespaces:
                for action in actions:
                    group = action.get("group", "")
                    reviews.append({
                        "subject": label, "team": team["name"], "namespace": ns, "owner": owner,
                        "action": f"{action['verb']} {action['resource']}",
                        "expected": owner == team["name"] and _rule_allows(
                            access_rules[level], action["verb"], group, action["resource"]),
                        "definition": {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                                       "spec": {**who, "resourceAttributes": {
                                           "namespace": ns, "verb": action["verb"], "group": group,
                                           "resource": action["resource"]}}},
                    })
    return reviews


def access_matrix(reviews: list[dict], answers: list[bool]) -> dict:
    """Table lines (subjects x namespace:action, Y/.), cross-team grants and unexpected answers."""
    columns: list[str] = []
    rows: dict[str, dict[str, str]] = {}
    cross, wrong = [], []
    for review, allowed in zip(reviews, answers, strict=True):
        column = f"{review['namespace']}:{review['action']}"
        if column not in columns:
            columns.append(column)
        rows.setdefault(review["subject"], {})[column] = "Y" if allowed else "."
        if allowed and review["owner"] != review["team"]:
            cross.append(f"{review['subject']} may {review['action']} in {review['namespace']}")
        if bool(allowed) != review["expected"]:
            wrong.append(f"{review['subject']} {review['action']} in {review['namespace']}: allowed={bool(allowed)},"
                         f" expected={review['expected']}")
    width = max([len("subject"), *map(len, rows)])
    lines = [f"c{i + 1} = {c}" for i, c in enumerate(columns)]
    lines.append(" | ".join(["subject".ljust(width)] + [f"c{i + 1}".ljust(3) for i in range(len(columns))]))
    lines += [" | ".join([s.ljust(width)] + [cells.get(c, "-").ljust(3) for c in columns]) for s, cells in rows.items()]
    return {"table": lines, "cross_team_grants": cross, "unexpected": wrong}
