"""Shared by the tests that run real controllers as processes against an offline cluster of their own
(test_secret_controllers.py, test_gitops_argocd.py): kubectl of the cluster binaries, a service account
token, a process started as if in a pod (unshare -m), and the Sealed Secrets controller with its certificate.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import urllib.request

import yaml
from servers import free_port, wait_http

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "roles" / "cluster" / "files" / "offline-cluster.sh"
CONTROLLERS = ROOT / "roles" / "secrets" / "files" / "controllers.sh"
KEY_NAMESPACE = "kube-system"

# The Sealed Secrets controller's ClusterRole, as its chart (helm/sealed-secrets/templates/cluster-role.yaml
# of the same module) grants it: the controller runs with these rights only.
SEALED_SECRETS_RULES = [
    {"apiGroups": ["bitnami.com"], "resources": ["sealedsecrets"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["bitnami.com"], "resources": ["sealedsecrets/status"], "verbs": ["update"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "create", "update", "delete", "watch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
]


def kubectl_path() -> str:
    settings = dict(line.split("=", 1) for line in subprocess.run(
        [str(CLUSTER), "env"], capture_output=True, text=True, check=True).stdout.split())
    return f"{settings['MLOPS_CACHE_DIR']}/bin/kubernetes-{settings['K8S_VERSION']}/kubectl"


def controllers(*args: str) -> str:
    result = subprocess.run([str(CONTROLLERS), *args], capture_output=True, text=True, check=False, timeout=3600)
    assert result.returncode == 0, f"controllers.sh {' '.join(args)}:\n{result.stderr[-3000:]}"
    return result.stdout.strip()


def service_account_token(kubectl, namespace: str, name: str, rules: list[dict]) -> str:
    """A ServiceAccount bound to a ClusterRole of `rules`, and a token for it (TokenRequest).

    kubectl(*args, stdin=None) runs kubectl against the cluster and fails on an error."""
    objects = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]},
    ]
    kubectl("apply", "--server-side", "--field-manager=mlops.platform-tests", "-f", "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    return kubectl("create", "token", name, "-n", namespace, "--duration=2h").stdout.strip()


def in_cluster_process(kubeconfig: str, workdir: pathlib.Path, token: str, namespace: str, argv: list[str],
                       log: pathlib.Path) -> subprocess.Popen:
    """Start `argv` as if in a pod: the Sealed Secrets controller only knows rest.InClusterConfig().

    The process gets the API server's address in KUBERNETES_SERVICE_HOST/PORT and, in a private
    mount namespace (unshare -m; nothing changes for the rest of the machine), a tmpfs on /run
    holding the service account files /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}.
    """
    config = yaml.safe_load(pathlib.Path(kubeconfig).read_text())
    cluster = config["clusters"][0]["cluster"]
    host_port = cluster["server"].removeprefix("https://")
    host, port = host_port.rsplit(":", 1)
    account = workdir / "serviceaccount"
    account.mkdir(mode=0o700)
    for name, text in (("token", token), ("namespace", namespace),
                       ("ca.crt", pathlib.Path(cluster["certificate-authority"]).read_text())):
        (account / name).write_text(text)
        (account / name).chmod(0o600)
    script = ('mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -p /run/secrets/kubernetes.io && '
              'cp -r "$0" /run/secrets/kubernetes.io/serviceaccount && exec "$@"')
    env = {**os.environ, "KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port, "POD_NAMESPACE": namespace}
    with log.open("wb") as handle:
        return subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(account), *argv],
                                env=env, stdout=handle, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def start_sealed_secrets(kubeconfig: str, kubectl, workdir: pathlib.Path) -> tuple[subprocess.Popen, str, pathlib.Path]:
    """The real Sealed Secrets controller (controllers.sh build; its CRDs must be applied) as a process with its
    upstream RBAC; returns (process, its certificate as /v1/cert.pem serves it, its log). The caller stops it."""
    binary = pathlib.Path(controllers("path", "sealed-secrets"))
    controllers("build", "sealed-secrets")
    token = service_account_token(kubectl, KEY_NAMESPACE, "sealed-secrets-controller", SEALED_SECRETS_RULES)
    port, metrics = free_port(), free_port()
    log = workdir / "sealed-secrets-controller.log"
    proc = in_cluster_process(kubeconfig, workdir, token, KEY_NAMESPACE, [
        str(binary), f"--listen-addr=127.0.0.1:{port}", f"--listen-metrics-addr=127.0.0.1:{metrics}",
        "--key-renew-period=0"], log)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=120, proc=proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/cert.pem", timeout=10) as response:
            cert = response.read().decode()
    except (RuntimeError, OSError) as exc:
        stop(proc)
        raise AssertionError(f"{exc}\n{log.read_text()[-3000:]}") from None
    assert cert.startswith("-----BEGIN CERTIFICATE-----"), cert[:200]
    return proc, cert, log
