"""validate_roles (plugins/action/validate_roles.py): the roles' specs, read the way the action reads them."""

from __future__ import annotations

import pathlib

import pytest
import yaml
from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.mlops.platform.plugins.action.validate_roles import role_spec, spec_errors

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLES = ("cluster", "team_isolation", "storage", "mlflow", "secrets", "seldon", "gitops")


def documented_options(role: str) -> dict:
    data = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return data["argument_specs"]["main"]["options"]


@pytest.mark.parametrize("role", ROLES)
def test_the_spec_is_the_documented_one_without_its_documentation(role):
    documented = documented_options(role)
    spec = role_spec(f"mlops.platform.{role}")
    assert spec == role_spec(role)
    assert sorted(spec) == sorted(documented)
    for name, option in spec.items():
        assert "description" not in option
        assert option.get("type") == documented[name].get("type"), name
        assert option.get("elements") == documented[name].get("elements"), name
        assert option.get("choices") == documented[name].get("choices"), name


# Wrong values for options of several types; the messages must be those of the validator that
# ansible-core's own role validation runs on the documented spec.
WRONG = {
    "cluster": {"cluster_kwok_nodes": "two", "cluster_create": "perhaps", "cluster_provider": "minikube"},
    "team_isolation": {"team_isolation_teams": "financial-ml", "team_isolation_prune": "maybe"},
    "storage": {"storage_backend": "gcs", "storage_buckets": 3},
    "mlflow": {"mlflow_replicas": "many", "mlflow_auth_enabled": "sometimes"},
    "secrets": {"secrets_mode": "osmosis"},
    "seldon": {"seldon_wait": "notabool", "seldon_servers": "mlserver"},
    "gitops": {"gitops_engine": "jenkins", "gitops_wait_timeout": "long"},
}


@pytest.mark.parametrize("role", ROLES)
def test_errors_are_those_of_the_role_validation_prefixed_with_the_role(role):
    values = {name: value for name, value in WRONG[role].items() if name in documented_options(role)}
    assert values, f"WRONG[{role}] names no option of the role"
    expected = ArgumentSpecValidator(documented_options(role)).validate(values).error_messages
    assert expected
    assert spec_errors(role, role_spec(role), values) == [f"{role}: {message}" for message in expected]


def test_valid_values_give_no_error():
    assert spec_errors("seldon", role_spec("seldon"), {"seldon_wait": "yes", "seldon_namespace": "seldon-system"}) == []


def test_no_log_values_are_masked_in_the_messages():
    spec = {"token": {"type": "int", "no_log": True}, "db": {"type": "dict", "options": {"port": {"type": "int", "no_log": True}}}}
    errors = spec_errors("demo", spec, {"token": "s3cr3t-token-value", "db": {"port": "hunter2-port"}})
    assert len(errors) == 2 and all(e.startswith("demo: ") for e in errors)
    joined = "\n".join(errors)
    assert "token" in joined and "port" in joined
    assert "s3cr3t-token-value" not in joined and "hunter2-port" not in joined


@pytest.mark.parametrize("role", ["nope", "mlops.platform.nope", "../cluster", "community.general.cluster"])
def test_an_unknown_role_is_refused_with_the_fix(role):
    with pytest.raises(AnsibleActionFail, match=r"is not a role of mlops\.platform"):
        role_spec(role)
