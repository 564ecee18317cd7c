#!/usr/bin/python
# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_api_info
short_description: Whether the Kubernetes API server answers, where it is and which version it runs
version_added: 0.2.0
description:
  - Reads C(/version) from the API server of a kubeconfig context, retrying every second up to
    O(wait_timeout) seconds. One request when the server answers; no discovery.
  - With O(required=false) an unreachable server is reported as C(available=false) instead of a failure,
    so a role can decide whether to create the cluster.
author:
  - mlops.platform maintainers (@mlops-platform)
options:
  wait_timeout:
    description: Seconds to keep retrying; C(0) tries once.
    type: int
    default: 0
  required:
    description: Fail when the server does not answer in time.
    type: bool
    default: true
  version_min:
    description:
      - Lowest supported Kubernetes version, C(major.minor). A server that answers with an older
        version fails the task, also when O(required=false).
    type: str
  version_max:
    description: Highest supported Kubernetes version, C(major.minor), inclusive; as O(version_min).
    type: str
extends_documentation_fragment:
  - mlops.platform.kube
attributes:
  check_mode:
    support: full
    description: Only reads.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
"""

EXAMPLES = r"""
- name: Is the cluster there?
  mlops.platform.k8s_api_info:
    kubeconfig: ~/.cache/mlops-platform/kubeconfig
    required: false
  register: api

- name: Wait up to two minutes for it
  mlops.platform.k8s_api_info:
    kubeconfig: ~/.cache/mlops-platform/kubeconfig
    wait_timeout: 120
"""

RETURN = r"""
available:
  description: Whether the API server answered.
  returned: always
  type: bool
host:
  description: The server URL of the context.
  returned: when the kubeconfig could be read
  type: str
  sample: https://127.0.0.1:32765
version:
  description: The server's C(/version) answer.
  returned: when available
  type: dict
  sample: {"gitVersion": "v1.33.13", "major": "1", "minor": "33"}
error:
  description: Why the server is not available.
  returned: when not available
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mlops.platform.plugins.module_utils.kube import API_INFO_SPEC, api_info, exit_module


def main() -> None:
    module = AnsibleModule(argument_spec=API_INFO_SPEC, supports_check_mode=True)
    exit_module(module, api_info)


if __name__ == "__main__":
    main()
