# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The data volume of a one-replica StatefulSet (MinIO, PostgreSQL), shared by the role builders.

On clusters without a provisioner (the offline cluster) the claim of replica 0 binds a
PersistentVolume on a node directory (``host_path``); elsewhere it uses ``storage_class`` or
the cluster's default class.
"""

from __future__ import annotations

from typing import Any

HOST_PATH_CLASS = "mlops-host-path"


def claim_spec(size: str, host_path: str = "", storage_class: str = "") -> dict[str, Any]:
    """``spec`` of the StatefulSet's ``data`` volume claim template."""
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"]}
    if host_path:
        spec["storageClassName"] = HOST_PATH_CLASS
    elif storage_class:
        spec["storageClassName"] = storage_class
    spec["resources"] = {"requests": {"storage": size}}
    return spec


def host_path_volume(namespace: str, owner: str, size: str, host_path: str, labels: dict) -> dict:
    """A node directory pre-bound to the claim ``data-<owner>-0`` of StatefulSet ``owner``."""
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"{namespace}-{owner}-data", "labels": labels},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": HOST_PATH_CLASS,
            "claimRef": {"namespace": namespace, "name": f"data-{owner}-0"},
            "hostPath": {"path": f"{host_path}/{namespace}-{owner}", "type": "DirectoryOrCreate"},
        },
    }
