"""Inject a real fault when the play reaches a role (tests only).

With MLOPS_FAULT_ROLE=<role name, e.g. storage> and MLOPS_FAULT_PID_FILE=<a pid file of the
offline cluster's components>, the first task of that role does not start before the process
named by the pid file has been sent SIGKILL and is gone. Decided in the controller when the task
starts, so the fault falls exactly between two roles, with no timing guesswork. With
MLOPS_FAULT_AFTER_ROLE=<role>, only a task of MLOPS_FAULT_ROLE that starts after a task of that role
counts: site.yml runs the mlflow role's read-only preflight right after the cluster role, and
MLOPS_FAULT_AFTER_ROLE=storage aims at its apply instead.

MLOPS_FAULT_PORTS (comma-separated) are the ports the killed process listened on: the moment it is
gone a small holder process (its pid in MLOPS_FAULT_HOLDER) takes them and resets every connection
at once, as near to a dead process as a held port gets, until the test has stopped the cluster and
kills the holder. Without it, on a machine where other offline clusters are created, kwokctl
(which hands out the highest free ports) can give a dead etcd's port to a new cluster's etcd,
and the surviving API server would carry on against that other cluster's data.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: fault_at_role
type: aggregate
short_description: kills a cluster component when the play reaches a role (tests only)
description: Used by tests/integration/test_faults.py to kill the API server or etcd between two roles.
author: mlops.platform maintainers
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "fault_at_role"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._role = os.environ.get("MLOPS_FAULT_ROLE", "")
        self._after = os.environ.get("MLOPS_FAULT_AFTER_ROLE", "")
        self._done = not self._role

    def v2_playbook_on_task_start(self, task, is_conditional):
        role = getattr(task, "_role", None)
        name = role.get_name(include_role_fqcn=False) if role is not None else None
        if self._after and name == self._after:
            self._after = ""
            return
        if self._done or self._after or name != self._role:
            return
        self._done = True
        pid_file = os.environ["MLOPS_FAULT_PID_FILE"]
        with open(pid_file, encoding="utf-8") as handle:
            pid = int(handle.read().strip())
        # Only a process of this cluster: its binaries are under the directory of the pid files.
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            if not cmdline.read().startswith(os.path.dirname(os.path.dirname(pid_file)).encode()):
                raise RuntimeError(f"pid {pid} of {pid_file} is not a process of this cluster")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            # A killed child of another process stays a zombie until reaped: gone all the same.
            try:
                with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
                    if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                        break
            except OSError:
                break
            time.sleep(0.05)
        self._hold([int(p) for p in os.environ.get("MLOPS_FAULT_PORTS", "").split(",") if p])

    @staticmethod
    def _hold(ports: list[int]) -> None:
        held = []
        deadline = time.monotonic() + 10
        for port in ports:
            while True:
                sock = socket.socket()
                # SO_REUSEADDR: the dead process's connections leave the port in TIME_WAIT.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("0.0.0.0", port))
                    sock.listen(64)
                    held.append(sock)
                    break
                except OSError:
                    sock.close()
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
        if held:
            holder = subprocess.Popen([sys.executable, "-c", HOLDER, *(str(s.fileno()) for s in held)],
                                      pass_fds=[s.fileno() for s in held], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            with open(os.environ["MLOPS_FAULT_HOLDER"], "w", encoding="utf-8") as handle:
                handle.write(str(holder.pid))
            for sock in held:
                sock.close()


# Accept and reset (SO_LINGER 0) every connection: the client fails at once instead of waiting.
HOLDER = """
import select, socket, struct, sys
held = [socket.socket(fileno=int(fd)) for fd in sys.argv[1:]]
while True:
    for sock in select.select(held, [], [])[0]:
        conn, _ = sock.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
"""
