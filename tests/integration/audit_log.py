"""Reading the offline cluster's API-server audit log (offline-cluster.sh with MLOPS_AUDIT_LOG).

One JSON event per line (level Metadata: user, user agent, verb, request URI). ``AuditLog.mark()``
remembers where the log ends; ``writes_since(mark)`` returns the write requests after it that the
control plane did not make itself.
"""

from __future__ import annotations

import json
import pathlib
import time

WRITE_VERBS = frozenset(("create", "update", "patch", "delete", "deletecollection"))
# The control plane's own requests. Its users where they are its own, and its user agents, since
# kwokctl's binary runtime gives every component (and the kubeconfig) the same user, kwok-admin.
CONTROL_PLANE_USERS = ("system:apiserver", "system:kube-controller-manager", "system:kube-scheduler")
CONTROL_PLANE_USER_PREFIXES = ("system:node:", "system:serviceaccount:kube-system:")
CONTROL_PLANE_AGENTS = ("kube-apiserver/", "kube-controller-manager/", "kube-scheduler/", "kwok-controller/")


def is_control_plane(event: dict) -> bool:
    user = (event.get("user") or {}).get("username", "")
    agent = event.get("userAgent", "")
    return (user in CONTROL_PLANE_USERS or user.startswith(CONTROL_PLANE_USER_PREFIXES)
            or agent.startswith(CONTROL_PLANE_AGENTS))


class AuditLog:
    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def mark(self) -> int:
        return self.path.stat().st_size

    def events_since(self, mark: int) -> list[dict]:
        with self.path.open("rb") as handle:
            handle.seek(mark)
            data = handle.read()
        # A line still being written has no newline yet: it belongs to the next read.
        return [json.loads(line) for line in data.split(b"\n")[:-1] if line.strip()]

    def writes_since(self, mark: int, settle: float = 1.0) -> list[str]:
        """``verb uri (user, agent)`` of every write after ``mark`` not made by the control plane.

        ``settle``: the log is written as requests finish; a short wait lets the last ones land.
        """
        time.sleep(settle)
        return [f"{e['verb']} {e.get('requestURI', '')} ({e['user'].get('username', '')}, {e.get('userAgent', '')})"
                for e in self.events_since(mark) if e.get("verb") in WRITE_VERBS and not is_control_plane(e)]
