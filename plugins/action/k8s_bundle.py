# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""k8s_bundle in the controller's task worker with a local connection (see plugin_utils/on_controller.py)."""

from __future__ import annotations

from ansible_collections.mlops.platform.plugins.module_utils.bundle import ARGUMENT_SPEC, apply_bundle
from ansible_collections.mlops.platform.plugins.plugin_utils.on_controller import ControllerAction


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC
    entry = staticmethod(apply_bundle)
