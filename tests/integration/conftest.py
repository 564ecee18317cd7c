"""Fixtures for tests against real servers started by the project's own scripts."""

from __future__ import annotations

import os
import pathlib
import secrets
import subprocess

import pytest
from ansible_run import run_playbook
from servers import MotoServer, PostgresServer

ROOT = pathlib.Path(__file__).resolve().parents[2]
OFFLINE_CLUSTER = ROOT / "roles" / "cluster" / "files" / "offline-cluster.sh"


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    """Path of the offline cluster's kubeconfig; fails (never skips) when the API does not answer."""
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(OFFLINE_CLUSTER), *args], capture_output=True, text=True, check=False)

    path = run("kubeconfig").stdout.strip()
    status = run("status")
    if status.returncode != 0 or not os.path.exists(path):
        pytest.fail(f"the offline cluster is not up ({OFFLINE_CLUSTER} status): run `make cluster-up` first")
    return path


@pytest.fixture(scope="session")
def api_client(kubeconfig: str):
    from kubernetes import config

    return config.new_client_from_config(config_file=kubeconfig)


@pytest.fixture()
def namespace(api_client, request):
    """A throw-away namespace, deleted after the test."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    name = "it-" + request.node.name.lower().replace("_", "-")[:50].strip("-")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="session")
def ansible_playbook():
    """A function that runs ansible-playbook from the checkout and returns the completed process."""
    return run_playbook


@pytest.fixture(scope="session")
def moto_endpoint():
    """A moto server (real AWS APIs over HTTP) on loopback, for the whole session."""
    with MotoServer() as moto:
        yield moto.url


@pytest.fixture()
def aws_env(monkeypatch) -> dict:
    """Fake credentials for moto; never real ones."""
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    return env


# The real MLflow of test_mlflow_real.py and test_monitoring_real.py, and its servers.
@pytest.fixture(scope="module")
def mlflow_bin() -> pathlib.Path:
    """.venv-mlflow/bin, installed by the project's script; fails (never skips) when it cannot be."""
    proc = subprocess.run([str(ROOT / "scripts" / "mlflow-env.sh")], capture_output=True, text=True, check=False,
                          timeout=1200)
    if proc.returncode != 0:
        pytest.fail(f"scripts/mlflow-env.sh failed: {proc.stderr[-3000:]}")
    return pathlib.Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def postgres():
    with PostgresServer("mlflow", secrets.token_urlsafe(18)) as server:
        server.create_database("mlflow")
        yield server


@pytest.fixture(scope="module")
def helm() -> str:
    """The pinned helm that scripts/helm.sh builds from the Go module proxy; fails (never skips) without it."""
    proc = subprocess.run([str(ROOT / "scripts" / "helm.sh")], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"scripts/helm.sh could not provide helm: {proc.stderr[-2000:]}")
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def strimzi_crds_file() -> str:
    """The Strimzi CRDs of io.strimzi:api (roles/kafka/files/broker.sh crds, cached); fails (never skips) without them."""
    done = subprocess.run([str(ROOT / "roles" / "kafka" / "files" / "broker.sh"), "crds"], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        pytest.fail(f"broker.sh crds failed: {done.stderr[-2000:]}")
    return done.stdout.strip()
