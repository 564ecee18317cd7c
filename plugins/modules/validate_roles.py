#!/usr/bin/python
# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: validate_roles
short_description: Check the variables of several of the collection's roles against their argument specs, in one task
version_added: 0.2.0
description:
  - For every role in O(roles), reads its C(meta/argument_specs.yml) (entry point C(main)), takes
    the role's options from the play's variables, templates them and checks them with the same
    validator as the C(validate_argument_spec) task ansible-core puts at the start of a role.
  - All roles are checked before the task fails, so every wrong variable of every role is named
    at once; an option that cannot be templated (an undefined vault variable it refers to) is
    named with its role as well. Values of C(no_log) options are masked in the messages.
  - Then, for the roles whose spec passed, the checks a spec cannot express, with every other
    role's values at hand - the team model (names, namespaces, quantities, CIDRs, unknown keys,
    duplicates, admin or edit shared between teams, a team namespace that is a platform one), the
    Seldon runtimes of every serving namespace against the quota and LimitRange its team gets,
    empty secret values in direct mode (named, never shown), namespaces and sizes of the other
    roles. Their messages name the variable, the field and the fix.
  - C(playbooks/site.yml) runs it first and imports the roles with C(rolespec_validate=false), so
    a wrong type for the last role stops the play before the first role changes anything, for
    the price of one task instead of one per role. A role used alone still validates itself.
  - Runs on the controller (an action plugin); the role files are read there.
author:
  - mlops.platform maintainers (@mlops-platform)
options:
  roles:
    description:
      - Roles of this collection, by short name (C(cluster)) or fully qualified (C(mlops.platform.cluster)).
    type: list
    elements: str
    required: true
attributes:
  check_mode:
    support: full
    description: Only reads.
  diff_mode:
    support: none
    description: Nothing changes.
"""

EXAMPLES = r"""
- name: Check the variables of every role against its argument spec
  mlops.platform.validate_roles:
    roles: [cluster, team_isolation, storage, mlflow, secrets, seldon]
  tags: [always]

- name: Then the roles, without their own (identical) validation task
  ansible.builtin.import_role:
    name: mlops.platform.cluster
    rolespec_validate: false
"""

RETURN = r"""
argument_errors:
  description: One line per problem, each starting with the role's name.
  returned: failure
  type: list
  elements: str
  sample: ["seldon: argument 'seldon_wait' is of type str and we were unable to convert to bool: ..."]
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={"roles": {"type": "list", "elements": "str", "required": True}}, supports_check_mode=True)
    module.fail_json(msg="validate_roles runs on the controller as an action plugin, where the role files are")


if __name__ == "__main__":
    main()
