# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""validate_roles: the argument specs of several of the collection's roles, checked in one task.

ansible-core inserts one validation task at the start of every role that has an argument spec.
A playbook that imports the roles with ``rolespec_validate: false`` runs this action first
instead: it checks the same specs (``meta/argument_specs.yml``, entry point ``main``) against
the same variables with the same validator, for every role at once, so a wrong type in the last
role fails the play before the first role changes anything, and the play pays for one task
instead of one per role.

Where a role's variables need checks its spec cannot express (ranges, durations, the team model,
the Seldon runtimes against the teams' quotas, empty secret values), the role's module_utils provides
them (SEMANTIC_CHECKS); they run here too, on the values the spec accepted, with every other role's
accepted values as context (a team namespace must not be MLflow's; the runtimes need the team quotas).
"""

from __future__ import annotations

import importlib
import os

import yaml
from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase
from ansible_collections.mlops.platform.plugins.module_utils.plain_data import PACKAGE, plain

PREFIX = "mlops.platform."
ROLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "roles")
ARGUMENT_SPEC = {"roles": {"type": "list", "elements": "str", "required": True}}
# Checks beyond the spec: role -> (module_utils module, function(role's validated values, context)),
# the context being the validated values of every role of the task whose spec passed.
SEMANTIC_CHECKS = {
    "team_isolation": ("teams", "variable_errors"),
    "storage": ("storage", "variable_errors"),
    "mlflow": ("mlflow", "variable_errors"),
    "monitoring": ("monitoring", "variable_errors"),
    "secrets": ("secrets", "variable_errors"),
    "seldon": ("seldon_task", "variable_errors"),
    "kafka": ("kafka", "variable_errors"),
    "redis": ("redis", "variable_errors"),
    "processing": ("processing", "variable_errors"),
    "gitops": ("gitops", "variable_errors"),
}
# What the validator reads of an option; the rest (description, ...) is documentation.
VALIDATION_KEYS = frozenset(("type", "elements", "required", "choices", "default", "options", "aliases", "no_log",
                             "mutually_exclusive", "required_together", "required_one_of", "required_if",
                             "required_by", "apply_defaults", "removed_in_version", "removed_at_date",
                             "removed_from_collection", "deprecated_aliases", "fallback"))


def _validation_spec(options: dict) -> dict:
    out = {}
    for name, option in (options or {}).items():
        kept = {k: v for k, v in option.items() if k in VALIDATION_KEYS}
        if "options" in kept:
            kept["options"] = _validation_spec(kept["options"])
        out[name] = kept
    return out


def role_spec(role: str) -> dict:
    """The options of the role's entry point ``main``, without their documentation."""
    name = role[len(PREFIX):] if role.startswith(PREFIX) else role
    path = os.path.join(ROLES_DIR, name, "meta", "argument_specs.yml")
    if "." in name or "/" in name or not os.path.isfile(path):
        raise AnsibleActionFail(f"roles: {role} is not a role of mlops.platform with an argument spec ({path}). "
                                "Fix: list this collection's roles, e.g. mlops.platform.cluster")
    with open(path, encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return _validation_spec(((data or {}).get("argument_specs") or {}).get("main", {}).get("options"))


def _no_log_strings(spec: dict, values) -> set[str]:
    """The values of no_log options, as text: a wrong type is reported with its value.

    ansible-core's equivalent (parameters._list_no_log_values) is private, hence this walk.
    """
    found: set[str] = set()

    def leaves(value):
        if isinstance(value, dict):
            for item in value.values():
                leaves(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                leaves(item)
        if str(value):
            found.add(str(value))

    if isinstance(values, dict):
        for name, option in spec.items():
            if name in values and option.get("no_log"):
                leaves(values[name])
            elif name in values and option.get("options"):
                for item in values[name] if isinstance(values[name], list) else [values[name]]:
                    found |= _no_log_strings(option["options"], item)
    return found


def _short(role: str) -> str:
    return role[len(PREFIX):] if role.startswith(PREFIX) else role


def validated(spec: dict, values: dict) -> tuple[list[str], dict]:
    """The validator's messages for the values and the values it accepted (only those given)."""
    found = ArgumentSpecValidator(spec).validate(values)
    return list(found.error_messages), {k: v for k, v in found.validated_parameters.items() if k in values}


def semantic_errors(role: str, values: dict, context: dict | None = None) -> list[str]:
    """The role's checks beyond its spec (SEMANTIC_CHECKS) on its accepted values; [] for a role without."""
    if _short(role) not in SEMANTIC_CHECKS:
        return []
    module, function = SEMANTIC_CHECKS[_short(role)]
    return getattr(importlib.import_module(PACKAGE + module), function)(values, {**(context or {}), **values})


def spec_errors(role: str, spec: dict, values: dict, context: dict | None = None) -> list[str]:
    """The validator's messages for the role's values, then its semantic checks' (when the spec passed),
    each prefixed with the role, no_log values masked."""
    messages, accepted = validated(spec, values)
    if not messages:
        messages = semantic_errors(role, accepted, context)
    return [f"{role}: {remove_values(message, _no_log_strings(spec, values))}" for message in messages]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = ArgumentSpecValidator(ARGUMENT_SPEC).validate(dict(self._task.args))
        if args.error_messages:
            raise AnsibleActionFail("; ".join(args.error_messages))
        errors = []
        checked = []  # (role, accepted values) of the roles whose spec passed; context: all their values
        context: dict = {}
        secrets: set[str] = set()
        for role in args.validated_parameters["roles"]:
            spec = role_spec(role)
            # As validate_argument_spec: the role's options found among the variables, templated;
            # one that cannot be templated (an undefined vault variable) is named with its role.
            values = {}
            for name in spec:
                if name in task_vars:
                    try:
                        # Plain data: the validator deep-copies its input, slow for tagged values.
                        values[name] = plain(self._templar.template(task_vars[name]))
                    except AnsibleError as exc:
                        errors.append(f"{role}: {name}: {exc.message}. Fix: define what it refers to")
            messages, accepted = validated(spec, values)
            secrets |= _no_log_strings(spec, values)
            errors.extend(f"{role}: {message}" for message in messages)
            if not messages:
                context.update(accepted)
                checked.append((role, accepted))
        # Semantic checks read other roles' values (any role's secrets may reach a message: all are masked).
        for role, accepted in checked:
            errors.extend(f"{role}: {message}" for message in semantic_errors(role, accepted, context))
        errors = [remove_values(message, secrets) for message in errors]
        if errors:
            return {**result, "failed": True, "argument_errors": errors,
                    "msg": "Validation of the role arguments failed, nothing was changed:\n" + "\n".join(errors)}
        return {**result, "changed": False, "msg": f"The argument specs of {len(args.validated_parameters['roles'])} roles passed"}
