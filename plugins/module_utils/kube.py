# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""A small Kubernetes REST client: kubeconfig, TLS, discovery and server-side apply.

Why not the kubernetes Python client: importing it costs about 0.45 s per module call on the
machines we measured, more than the whole of a no-op apply of a team's objects. This client
speaks the API directly over kept-alive HTTPS connections (one per Client; spawn()
makes another sharing credentials and discovery) and covers the kubeconfig
features the platform's clusters use:

- cluster: ``server``, ``certificate-authority``/``-data``, ``insecure-skip-tls-verify``,
  ``tls-server-name``;
- user: ``client-certificate``/``-data`` with ``client-key``/``-data``, ``token``,
  ``tokenFile``, ``username``/``password`` and ``exec`` credential plugins (``aws eks get-token``);
- in-cluster service account when there is no kubeconfig at all.

``auth-provider`` entries (the deprecated gcp/oidc plugins) are refused with a clear error.
``HTTPS_PROXY``/``NO_PROXY`` are honoured (CONNECT tunnel), as kubectl does.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import http.client
import json
import os
import re
import ssl
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    yaml = None

IN_CLUSTER_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class Failed(Exception):
    """A task failure with extra result keys (shared by the modules and their controller-side actions)."""

    def __init__(self, msg: str, **result):
        super().__init__(msg)
        self.msg = msg
        self.result = result


class KubeError(Exception):
    """A configuration or connection problem, with a message that names the fix."""


class ApiError(KubeError):
    """The API server answered with an error status."""

    def __init__(self, status: int, reason: str, message: str, body: dict | None = None):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body or {}


def _named(entries: list | None, name: str, what: str, source: str) -> dict:
    for entry in entries or []:
        if entry.get("name") == name:
            return entry.get(what) or {}
    raise KubeError(f"kubeconfig {source}: no {what} named {name!r}")


def _load_kubeconfig(path: str) -> dict:
    if yaml is None:
        raise KubeError("reading a kubeconfig needs PyYAML (pip install PyYAML)")
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except OSError as exc:
        raise KubeError(f"cannot read kubeconfig {path}: {exc.strerror}; set kubeconfig to a readable file") from exc
    except yaml.YAMLError as exc:
        raise KubeError(f"kubeconfig {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise KubeError(f"kubeconfig {path} is not a mapping")
    return data


def _merged_kubeconfig(paths: list[str]) -> dict:
    """KUBECONFIG lists merge like kubectl's: the first file that sets a name wins."""
    merged: dict = {"clusters": [], "users": [], "contexts": []}
    seen: dict = {"clusters": set(), "users": set(), "contexts": set()}
    for path in paths:
        data = _load_kubeconfig(path)
        if "current-context" not in merged and data.get("current-context"):
            merged["current-context"] = data["current-context"]
        for key in ("clusters", "users", "contexts"):
            for entry in data.get(key) or []:
                if entry.get("name") not in seen[key]:
                    seen[key].add(entry.get("name"))
                    merged[key].append(entry)
    return merged


@dataclasses.dataclass
class Config:
    """Where the API server is and how to authenticate, resolved from a kubeconfig."""

    server: str
    ca_data: bytes | None = None
    insecure: bool = False
    server_name: str | None = None
    cert_data: bytes | None = None
    key_data: bytes | None = None
    token: str | None = None
    token_file: str | None = None
    basic: tuple[str, str] | None = None
    exec_spec: dict | None = None
    base_dir: str = ""

    def __post_init__(self):
        self.server = self.server.rstrip("/")

    @classmethod
    def load(cls, kubeconfig: str | None = None, context: str | None = None) -> Config:
        if kubeconfig:
            paths = [os.path.expanduser(kubeconfig)]
        elif os.environ.get("KUBECONFIG"):
            paths = [p for p in os.environ["KUBECONFIG"].split(os.pathsep) if p and os.path.exists(p)]
        else:
            default = os.path.expanduser("~/.kube/config")
            paths = [default] if os.path.exists(default) else []
        if not paths:
            if os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists(f"{IN_CLUSTER_DIR}/token"):
                return cls.in_cluster()
            raise KubeError("no kubeconfig found: set kubeconfig (or KUBECONFIG) to the cluster's kubeconfig file")
        data = _merged_kubeconfig(paths)
        source = paths[0]
        name = context or data.get("current-context")
        if not name:
            raise KubeError(f"kubeconfig {source} has no current-context; set context to one of its contexts")
        ctx = _named(data.get("contexts"), name, "context", source)
        cluster = _named(data.get("clusters"), ctx.get("cluster"), "cluster", source)
        user = _named(data.get("users"), ctx.get("user"), "user", source) if ctx.get("user") else {}
        if user.get("auth-provider"):
            raise KubeError(f"kubeconfig {source}: user {ctx.get('user')!r} uses an auth-provider plugin, which is not "
                            "supported; use an exec credential plugin or a token")
        base = os.path.dirname(os.path.abspath(source))
        server = cluster.get("server")
        if not server:
            raise KubeError(f"kubeconfig {source}: cluster {ctx.get('cluster')!r} has no server")
        return cls(
            server=server,
            ca_data=_file_or_data(cluster, "certificate-authority", base),
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
            server_name=cluster.get("tls-server-name"),
            cert_data=_file_or_data(user, "client-certificate", base),
            key_data=_file_or_data(user, "client-key", base),
            token=user.get("token"),
            token_file=user.get("tokenFile"),
            basic=(user["username"], user.get("password", "")) if user.get("username") else None,
            exec_spec=user.get("exec"),
            base_dir=base,
        )

    @classmethod
    def in_cluster(cls) -> Config:
        host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        host = f"[{host}]" if ":" in host else host
        with open(f"{IN_CLUSTER_DIR}/ca.crt", "rb") as handle:
            ca_data = handle.read()
        return cls(server=f"https://{host}:{port}", ca_data=ca_data, token_file=f"{IN_CLUSTER_DIR}/token")

    def bearer_token(self) -> str | None:
        if self.exec_spec:
            return _exec_token(self.exec_spec, self.base_dir)
        if self.token_file:
            with open(self.token_file, encoding="utf-8") as handle:
                return handle.read().strip()
        return self.token


def _file_or_data(section: dict, key: str, base: str) -> bytes | None:
    if section.get(f"{key}-data"):
        return base64.b64decode(section[f"{key}-data"])
    if section.get(key):
        path = os.path.join(base, os.path.expanduser(section[key]))
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise KubeError(f"kubeconfig {key} {path}: {exc.strerror}") from exc
    return None


def _exec_token(spec: dict, base: str) -> str:
    """Run an exec credential plugin (client.authentication.k8s.io) and return its token."""
    command = spec.get("command")
    if not command:
        raise KubeError("kubeconfig exec plugin has no command")
    env = dict(os.environ)
    for item in spec.get("env") or []:
        env[item["name"]] = item["value"]
    info = {"apiVersion": spec.get("apiVersion", "client.authentication.k8s.io/v1beta1"),
            "kind": "ExecCredential", "spec": {"interactive": False}}
    env["KUBERNETES_EXEC_INFO"] = json.dumps(info)
    if "/" in command and not os.path.isabs(command):
        command = os.path.join(base, command)
    try:
        # Also used by the controller-side actions, which have no AnsibleModule.run_command.
        done = subprocess.run([command, *(spec.get("args") or [])], capture_output=True, text=True, env=env,  # pylint: disable=ansible-bad-function
                              timeout=60, check=False)
    except OSError as exc:
        hint = f" ({spec['installHint']})" if spec.get("installHint") else ""
        raise KubeError(f"kubeconfig exec plugin {command}: {exc.strerror}{hint}") from exc
    if done.returncode != 0:
        raise KubeError(f"kubeconfig exec plugin {command} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    try:
        status = json.loads(done.stdout).get("status") or {}
    except ValueError as exc:
        raise KubeError(f"kubeconfig exec plugin {command} did not print an ExecCredential") from exc
    if not status.get("token"):
        raise KubeError(f"kubeconfig exec plugin {command} returned no token (client certificates are not supported)")
    return status["token"]


class _TLSConnection(http.client.HTTPSConnection):
    """HTTPS with the kubeconfig's tls-server-name as the name checked in the certificate.

    ``tls_sessions`` is shared by the connections of one client and its spawn()s: the first
    session the server offers (a TLS 1.3 ticket, which arrives with its first answer) resumes
    the later connections' handshakes, 0.7 ms instead of 2 ms here. The server can refuse a
    resumption, and then the handshake is a full one; the certificates are checked either way.
    """

    def __init__(self, host, port, timeout, context, server_name=None, tls_sessions=None):
        super().__init__(host, port, timeout=timeout, context=context)
        self._tls_context = context
        self._server_name = server_name
        self._tls_sessions = tls_sessions if tls_sessions is not None else {}

    def connect(self):
        http.client.HTTPConnection.connect(self)  # TCP, and the CONNECT tunnel through a proxy
        name = self._server_name or self._tunnel_host or self.host
        self.sock = self._tls_context.wrap_socket(self.sock, server_hostname=name, session=self._tls_sessions.get(name))

    def keep_session(self):
        """After an answer: remember the server's session ticket for the next connections."""
        name = self._server_name or self._tunnel_host or self.host
        if name in self._tls_sessions:
            return
        session = getattr(self.sock, "session", None)
        if session is not None and session.has_ticket:
            self._tls_sessions[name] = session


def split_api_version(api_version: str) -> tuple[str, str]:
    """('apps', 'v1') for 'apps/v1', ('', 'v1') for 'v1'."""
    if "/" in api_version:
        group, version = api_version.split("/", 1)
        return group, version
    return "", api_version


class Client:
    """One kept-alive connection to the API server, with discovery cached per group version (shared by spawn())."""

    def __init__(self, config: Config, timeout: float = 60):
        self.config = config
        url = urllib.parse.urlsplit(config.server)
        self._scheme = url.scheme
        self._host = url.hostname
        self._port = url.port
        self._prefix = url.path.rstrip("/")
        self._timeout = timeout
        self._context = self._ssl_context() if url.scheme == "https" else None
        self._conn: http.client.HTTPConnection | None = None
        self._headers = {"Accept": "application/json", "User-Agent": "mlops.platform"}
        token = config.bearer_token()
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        elif config.basic:
            raw = f"{config.basic[0]}:{config.basic[1]}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        self._discovery: dict[str, dict[str, dict]] = {}
        self._tls_sessions: dict[str, ssl.SSLSession] = {}

    def spawn(self) -> Client:
        """Another client on its own connection, sharing the credentials, TLS context and discovery."""
        other = copy.copy(self)
        other._conn = None
        return other

    def _ssl_context(self) -> ssl.SSLContext:
        config = self.config
        # The system's CA store only when the kubeconfig names no CA: loading it costs 20 ms.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if config.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif config.ca_data:
            context.load_verify_locations(cadata=config.ca_data.decode())
        else:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if config.cert_data and config.key_data:
            # ssl can only load a client certificate from files: write them 0600, load, remove.
            with tempfile.TemporaryDirectory(prefix="mlops-kube-") as directory:
                cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
                for path, data in ((cert, config.cert_data), (key, config.key_data)):
                    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
                        handle.write(data)
                context.load_cert_chain(cert, key)
        return context

    def _proxy(self) -> tuple[str, int] | None:
        """HTTPS_PROXY/HTTP_PROXY (and NO_PROXY), as kubectl honours them."""
        proxies = urllib.request.getproxies_environment()
        url = proxies.get(self._scheme)
        if not url or urllib.request.proxy_bypass_environment(self._host, proxies):
            return None
        parsed = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        return parsed.hostname, parsed.port or 80

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            proxy = self._proxy()
            host, port = proxy or (self._host, self._port)
            if self._scheme == "https":
                self._conn = _TLSConnection(host, port, self._timeout, self._context, self.config.server_name, self._tls_sessions)
                if proxy:
                    self._conn.set_tunnel(self._host, self._port or 443)
            else:
                self._conn = http.client.HTTPConnection(host, port, timeout=self._timeout)
                if proxy:
                    self._conn.set_tunnel(self._host, self._port or 80)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, body=None, query: dict | None = None,
                content_type: str = "application/json") -> dict:
        """Send one request; return the decoded JSON answer or raise ApiError."""
        url = self._prefix + path
        query = {k: v for k, v in (query or {}).items() if v is not None}
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = dict(self._headers)
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, url, body=payload, headers=headers)
                response = conn.getresponse()
                raw = response.read()
                if isinstance(conn, _TLSConnection):
                    conn.keep_session()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                # A kept-alive connection the server closed: reconnect once.
                self.close()
                if attempt == 2:
                    raise KubeError(f"cannot reach the Kubernetes API server at {self.config.server}: the connection was lost "
                                    f"twice ({method} {path}): {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise KubeError(f"cannot reach the Kubernetes API server at {self.config.server}: {exc}") from exc
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {"message": raw[:300].decode(errors="replace"), "text": raw[:8192].decode(errors="replace")}
        if response.status >= 400:
            message = data.get("message") if isinstance(data, dict) else None
            if response.status >= 500 and path != "/readyz":
                # The server answered but could not do the work (etcd down: 504 after 60 s).
                message = (f"the Kubernetes API server at {self.config.server} failed ({method} {path}): "
                           f"{message or 'no message'}; {self._unready()}")
            raise ApiError(response.status, response.reason, message or f"{method} {path}", data if isinstance(data, dict) else None)
        return data

    def _unready(self) -> str:
        """After a 5xx: what the server's own readiness check says is failing (etcd, most often)."""
        try:
            self.request("GET", "/readyz", query={"verbose": "true"})
        except ApiError as exc:
            failing = [line[3:].strip() for line in str(exc.body.get("text", "")).splitlines() if line.startswith("[-]")]
            if failing:
                return f"its readiness check fails: {', '.join(failing)}"
        except KubeError:
            pass
        return "is its storage (etcd) up?"

    # Discovery --------------------------------------------------------------------------

    def resources(self, api_version: str, refresh: bool = False) -> dict[str, dict]:
        """{kind: {'name': plural, 'namespaced': bool, 'verbs': [...]}} of one group version."""
        if refresh or api_version not in self._discovery:
            path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            try:
                listing = self.request("GET", path)
            except ApiError as exc:
                if exc.status != 404:
                    raise
                listing = {}
            self._discovery[api_version] = {
                r["kind"]: r for r in listing.get("resources") or [] if "/" not in r["name"]
            }
        return self._discovery[api_version]

    def resource(self, api_version: str, kind: str, refresh: bool = False) -> dict | None:
        return self.resources(api_version, refresh).get(kind)

    def path(self, api_version: str, kind: str, name: str | None = None, namespace: str | None = None) -> str:
        info = self.resource(api_version, kind)
        if info is None:
            raise KubeError(f"the API server does not serve kind {kind} in {api_version}")
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if info["namespaced"] and namespace:
            base += f"/namespaces/{urllib.parse.quote(namespace)}"
        base += f"/{info['name']}"
        return f"{base}/{urllib.parse.quote(name)}" if name else base

    # Verbs ------------------------------------------------------------------------------

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        try:
            return self.request("GET", self.path(api_version, kind, name, namespace))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None) -> list[dict]:
        data = self.request("GET", self.path(api_version, kind, namespace=namespace), query={"labelSelector": label_selector})
        items = data.get("items") or []
        for item in items:  # list items carry neither apiVersion nor kind
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def apply(self, obj: dict, field_manager: str, force: bool = True, dry_run: bool = False) -> dict:
        meta = obj["metadata"]
        return self.request(
            "PATCH", self.path(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace")), body=obj,
            query={"fieldManager": field_manager, "force": "true" if force else None, "dryRun": "All" if dry_run else None},
            content_type="application/apply-patch+yaml",
        )

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None, dry_run: bool = False,
               propagation: str = "Background") -> bool:
        """Delete one object; False when it was already gone."""
        try:
            # The API server reads DeleteOptions from the body when there is one, ignoring the query.
            options = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
            if dry_run:
                options["dryRun"] = ["All"]
            self.request("DELETE", self.path(api_version, kind, name, namespace), body=options)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def version(self) -> dict:
        return self.request("GET", "/version")


API_INFO_SPEC = {
    "kubeconfig": {"type": "path"},
    "context": {"type": "str"},
    "wait_timeout": {"type": "int", "default": 0},
    "required": {"type": "bool", "default": True},
    "version_min": {"type": "str"},
    "version_max": {"type": "str"},
}


def parse_minor(version: str) -> tuple[int, int] | None:
    """(major, minor) of 'v1.33.13', 'v1.30.2-eks-1', '1.33' or '1.33+'; None when it is none of those."""
    match = re.match(r"v?(\d+)\.(\d+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def _minor(version: str, what: str) -> tuple[int, int]:
    parsed = parse_minor(version)
    if parsed is None:
        raise Failed(f"{what}: cannot read a Kubernetes version (major.minor) from {version!r}")
    return parsed


def _check_version(params: dict, host: str, version: dict) -> None:
    """Fail when the server's version is outside [version_min, version_max] (major.minor, inclusive)."""
    low, high = params.get("version_min"), params.get("version_max")
    if not low and not high:
        return
    bounds = (_minor(low, "version_min") if low else (0, 0), _minor(high, "version_max") if high else (9999, 0))
    git_version = version.get("gitVersion") or f"{version.get('major')}.{version.get('minor')}"
    if not bounds[0] <= _minor(git_version, f"the version of the API server at {host}") <= bounds[1]:
        raise Failed(f"the API server at {host} runs Kubernetes {git_version}, outside the supported "
                     f"range {low or 'any'}-{high or 'any'}: use a cluster in that range, or widen the range "
                     "(cluster_version_min/cluster_version_max of the cluster role) if you accept the risk",
                     host=host, version=version)


def api_info(params: dict, check_mode: bool = False, diff: bool = False) -> dict:
    """The k8s_api_info task: read /version, retrying every second up to wait_timeout."""
    for option in ("version_min", "version_max"):
        if params.get(option):
            _minor(params[option], option)
    deadline = time.monotonic() + params["wait_timeout"]
    host, error = None, ""
    while True:
        try:
            config = Config.load(params["kubeconfig"], params["context"])
            host = config.server
            client = Client(config, timeout=10)
            try:
                version = client.version()
            finally:
                client.close()
            _check_version(params, host, version)
            return {"changed": False, "available": True, "host": host, "version": version}
        except KubeError as exc:
            error = str(exc)
        if time.monotonic() >= deadline:
            break
        time.sleep(1)
    if params["required"]:
        raise Failed(f"the API server does not answer after {params['wait_timeout']} s: {error}", host=host)
    return {"changed": False, "available": False, "host": host, "error": error}


def exit_module(module, entry) -> None:
    """Run a task entry point (params, check_mode, diff) -> result in an AnsibleModule and exit."""
    try:
        result = entry(module.params, module.check_mode, module._diff)
    except Failed as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    module.exit_json(**result)
