# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Run a module's logic inside the controller's task worker when the connection is local.

A module call costs about 0.4 s here before it does anything: a new Python process, the
AnsiballZ payload, ``ansible.module_utils.basic``. The collection's Kubernetes modules only
talk HTTP to the API server, and the platform's playbooks run them on ``localhost`` with the
local connection, where the module process would run on this very machine anyway. For that
case the action runs the same code (the module's ``module_utils`` entry point, the same
argument spec, the same check and diff handling) in the task worker, which costs about as
much as a ``set_fact``. With any other connection the module is executed on the target as usual.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import ClassVar

from ansible import constants as C
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.mlops.platform.plugins.module_utils.kube import Failed
from ansible_collections.mlops.platform.plugins.module_utils.plain_data import plain

LOCAL = ("local", "ansible.builtin.local")

# The controller imports this module when its strategy first resolves one of the collection's
# actions, before it forks the next task worker. ansible-core's collection loader compiles a
# collection's Python from source in every process that imports it (it keeps no bytecode), and
# the task workers are forked from the controller: the module_utils behind the collection's
# filters (teams.py alone is 10 ms) would be compiled again in every task that uses a filter.
# Imported here, once, every later worker inherits them compiled (plugins/filter/*.py still
# import them lazily, for a controller that never resolves one of these actions).
for _name in ("teams", "storage", "mlflow", "k8s_results", "quantity"):
    importlib.import_module(f"ansible_collections.mlops.platform.plugins.module_utils.{_name}")


def honour_render_only(task, task_vars: dict | None, templar) -> None:
    """The gitops render pass (variable ``mlops_render_only``) sets the task's ``render_only`` when the task
    does not: every role's apply task renders without a change to the role (k8s_bundle, seldon_runtime)."""
    if "render_only" in task.args or not task_vars or "mlops_render_only" not in task_vars:
        return
    if templar.template(task_vars["mlops_render_only"]) in (True, "true", "True", "yes", 1):
        task.args = {**task.args, "render_only": True}


class ControllerAction(ActionBase):
    """Subclasses set ``ARGUMENT_SPEC``, ``VALIDATOR_KWARGS`` and ``entry(params, check_mode, diff)``."""

    TRANSFERS_FILES = False
    _requires_connection = False
    ARGUMENT_SPEC: ClassVar[dict] = {}
    VALIDATOR_KWARGS: ClassVar[dict] = {}
    entry: Callable[[dict, bool, bool], dict]

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if self._connection.transport not in LOCAL and getattr(self._connection, "_load_name", "") not in LOCAL:
            result.update(self._execute_module(module_args=self._task.args, task_vars=task_vars))
            return self._name_the_role(result)
        # Plain dicts, lists and strs: the templar's lazy and tagged values cost a re-template per
        # read and cannot be written by yaml.safe_dump.
        validated = ArgumentSpecValidator(self.ARGUMENT_SPEC, **self.VALIDATOR_KWARGS).validate(plain(self._task.args))
        if validated.error_messages:
            return {**result, "failed": True, "msg": "; ".join(validated.error_messages)}
        try:
            result.update(type(self).entry(validated.validated_parameters, bool(self._play_context.check_mode),
                                           bool(self._play_context.diff)))
        except Failed as exc:
            result.update(exc.result, failed=True, msg=exc.msg)
        # As a module's result (ansible-core 2.21): the arguments only with inject_invocation.
        if not C.config.get_config_value("INJECT_INVOCATION", variables=task_vars or {}):
            result.pop("invocation", None)
        result.setdefault("changed", False)
        return self._name_the_role(result)

    def _name_the_role(self, result: dict) -> dict:
        """A failure in a role starts with the role's name: in a converge of eight roles the
        message alone says whose apply failed (the roles' reports show it as it is)."""
        role = getattr(self._task, "_role", None)
        if result.get("failed") and role is not None and isinstance(result.get("msg"), str):
            name = role.get_name(include_role_fqcn=False)
            if not result["msg"].startswith(f"{name}: "):
                result["msg"] = f"{name}: {result['msg']}"
        return result
