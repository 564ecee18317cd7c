"""Waiting for the API server in tests: a namespace's deletion (kwok clusters finalize namespaces in seconds)."""

from __future__ import annotations

import contextlib
import time

from kubernetes import client
from kubernetes.client.rest import ApiException


def namespace_gone(api_client, name: str, timeout: float = 90) -> bool:
    """True once the namespace ``name`` no longer exists (a re-run then starts clean); False after ``timeout`` s."""
    core = client.CoreV1Api(api_client)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            core.read_namespace(name)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        time.sleep(1)
    return False


@contextlib.contextmanager
def fresh_namespace(api_client, name: str):
    """A namespace that a test's run creates (helm does): absent before, deleted and waited for after."""
    assert namespace_gone(api_client, name), f"{name} is still terminating from an earlier run"
    yield
    try:
        client.CoreV1Api(api_client).delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise
    assert namespace_gone(api_client, name), f"{name} was not deleted"
