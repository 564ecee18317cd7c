"""Inject a real fault when the play reaches a role (tests only).

With MLOPS_FAULT_ROLE=<role name, e.g. storage> and MLOPS_FAULT_PID_FILE=<a pid file of the
offline cluster's components>, the first task of that role does not start before the process
named by the pid file has been sent MLOPS_FAULT_SIGNAL (default SIGKILL) and is gone. Decided
in the controller when the task starts, so the fault falls exactly between two roles, with no
timing guesswork. MLOPS_FAULT_MARK, when set, is a file that receives the time of the fault.
"""

from __future__ import annotations

import os
import signal
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: fault_at_role
type: aggregate
short_description: kills a cluster component when the play reaches a role (tests only)
description: Used by tests/integration/test_faults.py to stop the API server or etcd between two roles.
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
        self._done = not self._role

    def v2_playbook_on_task_start(self, task, is_conditional):
        role = getattr(task, "_role", None)
        if self._done or role is None or role.get_name(include_role_fqcn=False) != self._role:
            return
        self._done = True
        with open(os.environ["MLOPS_FAULT_PID_FILE"], encoding="utf-8") as handle:
            pid = int(handle.read().strip())
        os.kill(pid, getattr(signal, os.environ.get("MLOPS_FAULT_SIGNAL", "SIGKILL")))
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
        if os.environ.get("MLOPS_FAULT_MARK"):
            with open(os.environ["MLOPS_FAULT_MARK"], "w", encoding="utf-8") as mark:
                mark.write(f"{time.time()} {pid} {task.get_name()}\n")
