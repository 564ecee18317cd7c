# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""seldon_runtime in the controller's task worker with a local connection (see plugin_utils/on_controller.py).

The variable ``mlops_render_only`` (the gitops render pass) sets ``render_only`` when the task does not.
"""

from __future__ import annotations

from ansible_collections.mlops.platform.plugins.module_utils.seldon_task import ARGUMENT_SPEC, VALIDATOR_KWARGS, run_runtimes
from ansible_collections.mlops.platform.plugins.plugin_utils.on_controller import ControllerAction, honour_render_only


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC
    VALIDATOR_KWARGS = VALIDATOR_KWARGS
    entry = staticmethod(run_runtimes)

    def run(self, tmp=None, task_vars=None):
        honour_render_only(self._task, task_vars, self._templar)
        return super().run(tmp, task_vars)
