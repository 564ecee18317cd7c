# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""k8s_bundle in the controller's task worker with a local connection (see plugin_utils/on_controller.py).

``src`` is read here, on the controller, whatever the connection: a relative path is looked up
like ``copy``'s (the role's ``files/`` first), and its objects join ``definitions``. The variable
``mlops_render_only`` (set by the gitops role's render pass) sets ``render_only`` when the task does not.
"""

from __future__ import annotations

from ansible.errors import AnsibleError
from ansible_collections.mlops.platform.plugins.module_utils.bundle import ARGUMENT_SPEC, apply_bundle, load_definitions
from ansible_collections.mlops.platform.plugins.module_utils.kube import KubeError
from ansible_collections.mlops.platform.plugins.plugin_utils.on_controller import ControllerAction, honour_render_only


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC
    entry = staticmethod(apply_bundle)

    def run(self, tmp=None, task_vars=None):
        honour_render_only(self._task, task_vars, self._templar)
        src = self._task.args.get("src")
        if src:
            try:
                objects = load_definitions(self._find_needle("files", src))
            except AnsibleError as exc:
                return {"failed": True, "changed": False, "msg": f"src: {src} is not a file on the controller: {exc}"}
            except KubeError as exc:
                return {"failed": True, "changed": False, "msg": str(exc)}
            args = dict(self._task.args)
            args.pop("src")
            args["definitions"] = list(args.get("definitions") or []) + objects
            self._task.args = args
        return super().run(tmp, task_vars)
