"""The offline cluster is real Kubernetes: nodes Ready, controllers and scheduler working."""

from __future__ import annotations

import time

from kubernetes import client


def test_at_least_one_node_is_ready(api_client):
    nodes = client.CoreV1Api(api_client).list_node().items
    ready = [
        n.metadata.name for n in nodes if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
    ]
    assert ready, f"no Ready node among {[n.metadata.name for n in nodes]}"


def test_server_version_is_the_pinned_release(api_client):
    info = client.VersionApi(api_client).get_code()
    assert (info.major, info.minor) == ("1", "33"), info.git_version
    assert info.git_version.startswith("v1.33."), info.git_version


def test_deployment_reaches_ready_replicas(api_client, namespace):
    apps = client.AppsV1Api(api_client)
    labels = {"app": "smoke"}
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="smoke"),
            spec=client.V1DeploymentSpec(
                replicas=2,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        containers=[client.V1Container(name="app", image="registry.invalid/smoke:1")]
                    ),
                ),
            ),
        ),
    )
    deadline = time.monotonic() + 90
    ready = 0
    while time.monotonic() < deadline:
        ready = apps.read_namespaced_deployment_status("smoke", namespace).status.ready_replicas or 0
        if ready == 2:
            break
        time.sleep(1)
    assert ready == 2, f"deployment smoke has {ready}/2 ready replicas after 90 s"
    pods = client.CoreV1Api(api_client).list_namespaced_pod(namespace, label_selector="app=smoke").items
    assert all(p.spec.node_name for p in pods), "pods were not scheduled onto simulated nodes"
