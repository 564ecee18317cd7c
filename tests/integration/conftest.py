"""Fixtures for tests against real servers started by the project's own scripts."""

from __future__ import annotations

import os
import pathlib
import subprocess

import pytest

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
