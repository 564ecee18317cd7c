"""The redis role and secrets_redis against the offline cluster's API server, then a real redis-server.

Converge: the role applies Redis in its own namespace (no pods run on the offline cluster's simulated
nodes), the secrets role places the password Secret there and the client Secret in a team namespace; read
back from the API server; a second converge changes nothing; check mode reports a changed redis.conf
without writing it; a renamed instance's objects are pruned. Then the real-system proof: Debian's
redis-server runs the start script and the redis.conf read back from the cluster (only port, bind address
and directories point at a temporary directory) with the password read back from the Secret the secrets
role wrote; over RESP (a raw socket, no client library) AUTH with it works and a missing or wrong password
is refused. Nothing is mocked.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time

import pytest
import yaml
from ansible_run import recap, run_playbook, run_role
from kubernetes import client
from kubernetes.client.rest import ApiException
from servers import free_port

pytestmark = pytest.mark.cluster

NS, TEAM_NS = "it-redis", "it-redis-team"
PASSWORD = "it-Redis+pass/word=0123456789"
SECRETS_REDIS = {"enabled": True, "name": "redis-auth", "namespace": NS, "team_secret_name": "redis", "password": PASSWORD,
                 "host": f"redis.{NS}.svc.cluster.local", "port": 6379, "tls": False}


@pytest.fixture(scope="module")
def namespaces(api_client):
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=TEAM_NS)))
    yield
    for name in (NS, TEAM_NS):
        try:
            core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def redis_vars(kubeconfig: str, **extra) -> dict:
    return {"redis_kubeconfig": kubeconfig, "redis_namespace": NS, "secrets_redis": SECRETS_REDIS, **extra}


def secrets_vars(kubeconfig: str) -> dict:
    return {"secrets_kubeconfig": kubeconfig, "secrets_mode": "direct",
            "secrets_teams": [{"name": TEAM_NS, "secrets": ["redis"]}]}


def converge(tmp_path, variables: dict):
    """The redis role, then the secrets role, in one play: site.yml's order (the namespace before its Secret)."""
    vars_file = tmp_path / "converge-vars.json"
    vars_file.write_text(json.dumps(variables))
    vars_file.chmod(0o600)
    playbook = tmp_path / "converge.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  roles:\n"
                        "    - role: mlops.platform.redis\n    - role: mlops.platform.secrets\n")
    return run_playbook(playbook, "-i", "localhost,", "-c", "local",
                        "-e", "ansible_python_interpreter={{ ansible_playbook_python }}", "-e", f"@{vars_file}")


def _decoded(secret) -> dict:
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


class Resp:
    """Just enough RESP2 to send commands and read one reply each."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.file = self.sock.makefile("rb")

    def __call__(self, *args: str):
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))
        return self._reply()

    def _reply(self):
        line = self.file.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:].decode()
        if kind == b"+":
            return rest
        if kind == b"-":
            return Exception(rest)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            return None if rest == "-1" else self.file.read(int(rest) + 2)[:-2].decode()
        if kind == b"*":
            return [self._reply() for _item in range(int(rest))]
        raise AssertionError(f"not RESP: {line!r}")

    def close(self):
        self.file.close()
        self.sock.close()


def test_redis_converges_with_its_password_from_the_secrets_role_and_a_real_server_enforces_it(
        kubeconfig, api_client, namespaces, tmp_path):
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    render = tmp_path / "render"
    variables = {**redis_vars(kubeconfig), **secrets_vars(kubeconfig)}
    first = converge(tmp_path, {**variables, "mlops_render_dir": str(render)})
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert recap(first.stdout)["changed"] == 2
    # Redis came first (it creates the namespace), so its Secret was not there yet.
    assert f"Redis waits for the Secret {NS}/redis-auth" in first.stdout

    # Read back: the objects as rendered, the password in none of them.
    sts = apps.read_namespaced_stateful_set("redis", NS)
    container = sts.spec.template.spec.containers[0]
    assert container.resources.limits == {"cpu": "500m", "memory": "256Mi"}
    assert [e.value_from.secret_key_ref.name for e in container.env if e.name == "REDIS_PASSWORD"] == ["redis-auth"]
    conf = core.read_namespaced_config_map("redis-config", NS).data["redis.conf"]
    rendered = [o for f in sorted(render.glob("*-redis.yaml")) for o in yaml.safe_load_all(f.read_text())]
    assert conf == next(o for o in rendered if o["kind"] == "ConfigMap")["data"]["redis.conf"]
    assert core.read_namespaced_service("redis", NS).spec.ports[0].port == 6379
    assert core.read_namespace(NS).metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert PASSWORD not in first.stdout + first.stderr
    assert all(PASSWORD not in f.read_text() for f in render.glob("*-redis.yaml"))

    # The secrets role placed the server's Secret and the team's client Secret.
    password = _decoded(core.read_namespaced_secret("redis-auth", NS))["password"]
    team = _decoded(core.read_namespaced_secret("redis", TEAM_NS))
    assert team["REDIS_HOST"] == f"redis.{NS}.svc.cluster.local" and team["REDIS_PASSWORD"] == password

    second = converge(tmp_path, variables)
    assert recap(second.stdout)["changed"] == 0, second.stdout[-3000:]
    assert "waits for the Secret" not in second.stdout

    check = run_role("mlops.platform.redis", tmp_path, redis_vars(kubeconfig, redis_maxmemory="128mb"), "--check")
    assert recap(check.stdout)["changed"] == 1, check.stdout[-3000:]
    assert "updated ConfigMap" in check.stdout and "updated StatefulSet" in check.stdout
    assert core.read_namespaced_config_map("redis-config", NS).data["redis.conf"] == conf

    # Real redis-server: the start script and redis.conf read back from the cluster, the password from the Secret.
    script = container.command[2]
    assert container.command[:2] == ["sh", "-c"] and "requirepass" not in conf.replace("writes requirepass", "")
    (tmp_path / "redis.conf").write_text(conf)
    env = {**os.environ, "REDIS_PASSWORD": password, "REDIS_CONF": str(tmp_path / "redis.conf"),
           "REDIS_RUN_DIR": str(tmp_path), "REDIS_DATA_DIR": str(tmp_path)}
    port = free_port()
    server = subprocess.Popen(["sh", "-c", script, "redis-server", "--port", str(port), "--bind", "127.0.0.1"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert server.poll() is None, server.stdout.read().decode()[-2000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not listen"
                time.sleep(0.1)
        assert oct((tmp_path / "auth.conf").stat().st_mode & 0o777) == "0o600"
        anonymous = Resp(port)
        assert str(anonymous("SET", "k", "v")).startswith("NOAUTH")
        assert str(anonymous("AUTH", "not-the-password")).startswith("WRONGPASS")
        assert str(anonymous("GET", "k")).startswith("NOAUTH")
        anonymous.close()
        authed = Resp(port)
        assert authed("AUTH", password) == "OK"
        assert authed("SET", "mlops:redis", "works") == "OK"
        assert authed("GET", "mlops:redis") == "works"
        assert authed("CONFIG", "GET", "maxmemory") == ["maxmemory", str(192 * 1024 * 1024)]
        assert authed("CONFIG", "GET", "maxmemory-policy") == ["maxmemory-policy", "allkeys-lru"]
        authed.close()
        # The team's client Secret carries the same working password.
        team_client = Resp(port)
        assert team_client("AUTH", team["REDIS_PASSWORD"]) == "OK"
        team_client.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    # Without a password the start script refuses to start Redis at all.
    refused = subprocess.run(["sh", "-c", script, "redis-server", "--port", str(free_port())],
                             env={**env, "REDIS_PASSWORD": ""}, capture_output=True, text=True, timeout=10, check=False)
    assert refused.returncode != 0 and "refusing to start without a password" in refused.stderr

    # A renamed instance: the old StatefulSet, Service and ConfigMap are pruned (the teams are pointed at it).
    moved = {**SECRETS_REDIS, "host": f"cache.{NS}.svc.cluster.local"}
    renamed = run_role("mlops.platform.redis", tmp_path, redis_vars(kubeconfig, redis_name="cache", secrets_redis=moved))
    assert recap(renamed.stdout)["changed"] == 1, renamed.stdout[-3000:]
    assert [s.metadata.name for s in apps.list_namespaced_stateful_set(NS).items] == ["cache"]
    assert sorted(c.metadata.name for c in core.list_namespaced_config_map(NS).items if c.metadata.name != "kube-root-ca.crt") == [
        "cache-config"]


def test_external_redis_deploys_nothing(kubeconfig, api_client, tmp_path):
    ns = "it-redis-external"
    done = run_role("mlops.platform.redis", tmp_path, {
        "redis_kubeconfig": kubeconfig, "redis_namespace": ns, "redis_mode": "external",
        "redis_external": {"host": "master.it.cache.example.internal", "port": 6380, "tls": True}})
    assert done.returncode == 0, done.stdout[-3000:]
    assert recap(done.stdout)["changed"] == 0
    with pytest.raises(ApiException) as absent:
        client.CoreV1Api(api_client).read_namespace(ns)
    assert absent.value.status == 404


def test_redis_server_binary_is_there():
    assert shutil.which("redis-server"), "scripts/setup.sh installs Debian's redis-server"
