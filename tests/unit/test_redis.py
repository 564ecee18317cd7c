"""The redis role's plan and checks (module_utils/redis.py) and secrets_redis (module_utils/secrets.py), on plain values.

The objects are applied to a real API server and the rendered redis.conf runs in a real redis-server in
tests/integration/test_redis_role.py.
"""

from __future__ import annotations

import base64
import pathlib

import yaml
from ansible_collections.mlops.platform.plugins.action.validate_roles import role_spec, spec_errors
from ansible_collections.mlops.platform.plugins.module_utils import redis
from ansible_collections.mlops.platform.plugins.module_utils.secrets import (
    redis_errors,
    secrets_missing,
    secrets_objects,
    secrets_specs,
    variable_errors,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
SETTINGS = {"platform_secret_name": "ml-platform", "registry_secret_name": "ghcr"}
SECRETS_REDIS = {"enabled": True, "name": "redis-auth", "namespace": "redis", "team_secret_name": "redis",
                 "password": "Sup3r-Secret+Token/42=", "host": "redis.redis.svc.cluster.local", "port": 6379, "tls": False}


def inventory(env: str) -> dict:
    out: dict = {}
    for path in sorted((ROOT / "inventories" / env / "group_vars" / "all").glob("*.yml")):
        out.update(yaml.safe_load(path.read_text()))
    return out


def by_kind(objects: list[dict]) -> dict:
    return {o["kind"]: o for o in objects}


def test_objects_of_the_internal_redis_hold_no_password_and_read_it_from_the_secret():
    objects = redis.redis_objects(redis.role_settings({"redis_namespace": "cache", "redis_host_path": "/var/lib/x"}))
    assert [o["kind"] for o in objects] == ["Namespace", "ConfigMap", "Service", "PersistentVolume", "StatefulSet"]
    kinds = by_kind(objects)
    assert kinds["Namespace"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    conf = kinds["ConfigMap"]["data"]["redis.conf"]
    assert "requirepass" not in conf.replace("writes requirepass", "")
    assert "maxmemory 192mb\n" in conf and "appendonly yes\n" in conf
    pod = kinds["StatefulSet"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "redis-auth", "key": "password"}
    assert container["command"][:2] == ["sh", "-c"] and "--include" in container["command"][2]
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    # The claim binds the node directory's volume (no provisioner on the offline cluster).
    claim = kinds["StatefulSet"]["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["storageClassName"] == kinds["PersistentVolume"]["spec"]["storageClassName"]
    assert kinds["PersistentVolume"]["spec"]["claimRef"] == {"namespace": "cache", "name": "data-redis-0"}
    # Everything the role prunes carries the prune selector's labels.
    for obj in objects[1:]:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "mlops.platform"
        if obj["kind"] != "PersistentVolume":
            assert labels["app.kubernetes.io/component"] == "cache" and labels["app.kubernetes.io/name"] == "redis"


def test_a_changed_redis_conf_restarts_redis_and_an_unchanged_one_does_not():
    def checksum(values: dict) -> str:
        sts = by_kind(redis.redis_objects(redis.role_settings(values)))["StatefulSet"]
        return sts["spec"]["template"]["metadata"]["annotations"]["mlops.platform/config-checksum"]

    assert checksum({}) == checksum({})
    assert checksum({}) != checksum({"redis_maxmemory_policy": "allkeys-lfu"})
    no_disk = redis.redis_conf(redis.role_settings({"redis_persistence": False, "redis_config": {"notify-keyspace-events": "Ex"}}))
    assert 'appendonly no\n' in no_disk and 'save ""\n' in no_disk and no_disk.endswith("notify-keyspace-events Ex\n")


def test_published_fact_says_where_redis_is_and_never_the_password():
    internal = redis.published(redis.role_settings({}))
    assert internal == {"enabled": True, "mode": "internal", "host": "redis.redis.svc.cluster.local", "port": 6379,
                        "tls": False, "url": "redis://redis.redis.svc.cluster.local:6379",
                        "password_secret": {"namespace": "redis", "name": "redis-auth", "key": "password"},
                        "team_secret": "redis"}
    external = redis.published(redis.role_settings({"redis_mode": "external", "redis_external": {"host": "m.example.internal"}}))
    assert (external["url"], external["tls"], external["password_secret"]) == ("rediss://m.example.internal:6379", True, {})
    assert redis.published(redis.role_settings({"redis_mode": "none"}))["enabled"] is False


def test_settings_checks_name_the_variable_and_the_fix():
    assert redis.variable_errors({}) == []
    errors = redis.variable_errors({
        "redis_namespace": "kube-system", "redis_maxmemory": "lots", "redis_config": {"requirepass": "x", "Bad Key": 1},
        "redis_resources": {"requests": {"cpu": "2", "memory": "256Mi"}, "limits": {"cpu": "1"}},
    })
    assert any(e.startswith("redis_namespace: 'kube-system' is a Kubernetes system namespace") for e in errors)
    assert "redis_maxmemory: 'lots' is not a Redis memory size. Fix: e.g. 192mb, 1gb" in errors
    assert any(e.startswith("redis_config.requirepass: is set by the role") for e in errors)
    assert any(e.startswith("redis_config.Bad Key: is not a redis.conf directive name") for e in errors)
    assert any(e.startswith("redis_resources.limits.memory: not set") for e in errors)
    # maxmemory must leave room below the container's memory limit (or the kernel kills Redis).
    tight = redis.variable_errors({"redis_maxmemory": "250mb"})
    assert len(tight) == 1 and tight[0].startswith("redis_maxmemory: 250mb leaves too little of the memory limit 256Mi")
    assert redis.variable_errors({"redis_maxmemory": "200mb"}) == []  # 209715200 <= 0.8 * 256Mi
    assert redis.variable_errors({"redis_mode": "external"}) == [
        "redis_external.host: empty with redis_mode external. Fix: the ElastiCache primary endpoint (a vault or inventory value)"]
    assert redis.variable_errors({"redis_mode": "external", "redis_external": {"host": "bad host!", "port": 70000}}) == [
        "redis_external.host: 'bad host!' is not a host name", "redis_external.port: 70000 is not a TCP port"]
    # A port that is no number is named, not a crash (also where secrets_redis is compared).
    assert redis.variable_errors({"redis_port": "six"}) == ["redis_port: six is not a TCP port"]
    assert redis.variable_errors({"redis_mode": "external", "redis_external": {"host": "m.internal", "port": "x"}},
                                 {"secrets_redis": {"enabled": True, "host": "m.internal", "port": "y"}}) == [
        "redis_external.port: 'x' is not a TCP port"]


def test_secrets_redis_must_match_where_the_role_runs_redis():
    assert redis.variable_errors({}, {"secrets_redis": SECRETS_REDIS}) == []
    moved = redis.variable_errors({"redis_namespace": "cache"}, {"secrets_redis": SECRETS_REDIS})
    assert moved == [
        "secrets_redis: puts the password Secret at redis/redis-auth, Redis reads cache/redis-auth. Fix: the same namespace and name",
        "secrets_redis: points the teams at redis.redis.svc.cluster.local:6379, Redis is at "
        "redis.cache.svc.cluster.local:6379. Fix: set secrets_redis.host and port to it"]
    assert redis.variable_errors({"redis_namespace": "cache"}, {"secrets_redis": {**SECRETS_REDIS, "enabled": False}}) == []


def test_secrets_role_places_the_server_secret_and_the_team_client_secret():
    rows = [{"team": "a", "namespace": "team-a", "training": False, "secrets": ["ml-platform", "redis"]},
            {"team": "b", "namespace": "team-b", "training": False, "secrets": []}]
    s3 = {"access_key_id": "k", "secret_access_key": "s", "region": "r", "endpoint_url": "http://e"}
    specs = secrets_specs(rows, {**SETTINGS, "s3": s3, "redis": SECRETS_REDIS})
    assert [(s["namespace"], s["secret"]["name"]) for s in specs] == [
        ("team-a", "redis"), ("team-a", "ml-platform"), ("redis", "redis-auth")]
    assert secrets_missing(specs) == []
    objects = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in secrets_objects(specs)}
    server = objects[("redis", "redis-auth")]
    assert base64.b64decode(server["data"]["password"]).decode() == SECRETS_REDIS["password"]
    client = {k: base64.b64decode(v).decode() for k, v in objects[("team-a", "redis")]["data"].items()}
    assert client == {"REDIS_HOST": "redis.redis.svc.cluster.local", "REDIS_PORT": "6379",
                      "REDIS_PASSWORD": SECRETS_REDIS["password"], "REDIS_TLS": "false",
                      "REDIS_URL": "redis://:Sup3r-Secret%2BToken%2F42%3D@redis.redis.svc.cluster.local:6379/0"}
    assert objects[("team-a", "redis")]["metadata"]["labels"]["mlops.platform/team"] == "a"
    # External Redis: no server Secret, the teams' says rediss.
    cloud = secrets_specs(rows, {**SETTINGS, "s3": s3, "redis": {**SECRETS_REDIS, "namespace": "", "tls": True}})
    assert [(s["namespace"], s["secret"]["name"]) for s in cloud] == [("team-a", "redis"), ("team-a", "ml-platform")]
    assert cloud[0]["secret"]["data"]["REDIS_URL"].startswith("rediss://")
    empty = secrets_specs(rows[:1], {**SETTINGS, "s3": s3, "redis": {**SECRETS_REDIS, "password": ""}})
    assert "secrets_redis.password (for redis/redis-auth)" in secrets_missing(empty)


def test_a_weak_or_unquotable_redis_password_is_refused_by_name_never_by_value():
    assert redis_errors("direct", SECRETS_REDIS) == []
    assert redis_errors("external", {**SECRETS_REDIS, "password": ""}) == []
    for weak in ("foobared", "short-one", "Password"):
        errors = redis_errors("direct", {**SECRETS_REDIS, "password": weak})
        assert errors and errors[0].startswith("secrets_redis.password must have 16+ characters")
        assert weak not in " ".join(errors)
    spaced = redis_errors("direct", {**SECRETS_REDIS, "password": 'a long "quoted" password'})
    assert spaced == ["secrets_redis.password holds whitespace, a quote or a backslash, which redis.conf's requirepass "
                      "line cannot carry unquoted. Fix: letters, digits and other punctuation only"]
    values = {"secrets_mode": "direct", "secrets_teams": [], "secrets_redis": {**SECRETS_REDIS, "password": "foobared"}}
    assert [e[:40] for e in variable_errors(values)] == ["secrets_redis.password must have 16+ cha"]


def test_every_inventory_passes_the_redis_checks_and_specs():
    spec = role_spec("redis")
    for env in ("local", "dev", "staging", "prod"):
        values = inventory(env)
        mine = {k: v for k, v in values.items() if k.startswith("redis_")}
        if env != "local":
            # What the vault holds; the placeholder is the default.
            mine["redis_external"] = {**mine["redis_external"], "host": "master.mlops.placeholder.cache.amazonaws.com"}
        assert spec_errors("redis", spec, mine, {"secrets_redis": None}) == [], env
    local = inventory("local")
    assert local["redis_mode"] == "internal" and local["secrets_redis"]["enabled"] is True
    assert redis.variable_errors({k: v for k, v in local.items() if k.startswith("redis_")}, local) == []
    assert redis_errors("direct", local["secrets_redis"]) == []
    assert all(inventory(env)["redis_mode"] == "external" for env in ("dev", "staging", "prod"))
