"""The team_isolation role's files agree with the model code and the inventories are valid."""

from __future__ import annotations

import pathlib

import pytest
import yaml
from ansible_collections.mlops.platform.plugins.module_utils import teams as tm

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "team_isolation"


def _yaml(path: pathlib.Path):
    return yaml.safe_load(path.read_text())


def test_prune_kinds_match_the_rendered_kinds():
    kinds = [(k["api_version"], k["kind"]) for k in _yaml(ROLE / "vars" / "main.yml")["__team_isolation_kinds"]]
    assert kinds == list(tm.MANAGED_KINDS)


def test_argument_specs_document_every_default():
    defaults = {k for k in _yaml(ROLE / "defaults" / "main.yml") if not k.startswith("__")}
    options = _yaml(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert defaults == set(options)
    assert all(o.get("description") for o in options.values())


def _role_defaults() -> dict:
    d = _yaml(ROLE / "defaults" / "main.yml")
    return {"quota": d["team_isolation_quota_defaults"], "limit_range": d["team_isolation_limit_range_defaults"],
            "pod_security": d["team_isolation_pod_security_defaults"], "network": d["team_isolation_network_defaults"]}


@pytest.mark.parametrize("env", ["local", "dev", "staging", "prod"])
def test_inventory_teams_are_valid(env):
    teams = _yaml(ROOT / "inventories" / env / "group_vars" / "all" / "teams.yml")["teams"]
    assert tm.validate_teams(teams, _role_defaults()) == []


def test_local_inventory_models_the_seed_namespaces():
    teams = _yaml(ROOT / "inventories" / "local" / "group_vars" / "all" / "teams.yml")["teams"]
    rows = {r["namespace"]: r for r in tm.team_namespaces(teams)}
    assert set(rows) == {"financial-ml", "financial-mlops-pytorch"}
    assert rows["financial-ml"]["serving"] and not rows["financial-ml"]["training"]
    assert rows["financial-mlops-pytorch"]["training"] and not rows["financial-mlops-pytorch"]["serving"]
    for team in tm.normalize_teams(teams):
        assert {"namespace": "seldon-system", "ports": []} in team["network"]["ingress_from"]


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_cloud_inventories_carry_the_seed_002_sizes(env):
    teams = {t["name"]: t for t in _yaml(ROOT / "inventories" / env / "group_vars" / "all" / "teams.yml")["teams"]}
    hard = {name: tm._quota_hard(t["quota"]) for name, t in teams.items()}
    assert hard["ml-team"]["limits.cpu"] == "20" and hard["ml-team"]["limits.memory"] == "64Gi"
    assert hard["ml-team"]["requests.nvidia.com/gpu"] == "4"
    assert hard["data-team"]["limits.cpu"] == "16" and hard["data-team"]["limits.memory"] == "48Gi"
    assert hard["data-team"]["requests.storage"] == "1Ti"
    assert hard["app-team"]["limits.cpu"] == "8" and hard["app-team"]["limits.memory"] == "24Gi"
    assert hard["app-team"]["requests.storage"] == "200Gi"


def _tasks(name: str) -> list[dict]:
    return _yaml(ROLE / "tasks" / name)


def _trusted(value):
    from ansible.template import trust_as_template

    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: _trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_trusted(v) for v in value]
    return value


def _render(expression: str, **overrides):
    """Template an expression over the role's defaults and vars (builtin filters only)."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    variables = {**_trusted(_yaml(ROLE / "defaults" / "main.yml")), **_trusted(_yaml(ROLE / "vars" / "main.yml")), **overrides}
    return Templar(loader=DataLoader(), variables=variables).template(trust_as_template(expression))


def test_converge_is_one_bundle_call_guarded_by_the_checks_then_one_report():
    apply, end, report = _tasks("main.yml")
    # A no-op (the apply ran and changed nothing) ends the role before the report, on the controller.
    assert end["ansible.builtin.meta"] == "end_role"
    assert apply["register"] in end["when"] and "changes" in end["when"]
    bundle = apply["mlops.platform.k8s_bundle"]
    assert bundle["name"] == "team_isolation"
    assert bundle["render_dir"] == "{{ mlops_render_dir | default(omit) }}"
    assert {"kubeconfig", "context", "cluster_exists", "definitions", "prune"} <= set(bundle)
    assert "__team_isolation_prune" in bundle["prune"]
    # Nothing reaches the API server unless every setting and team is valid; the report fails naming them.
    assert apply["when"][0] == "__team_isolation_problems | length == 0"
    assert "__team_isolation_problems" in report["ansible.builtin.assert"]["that"]
    assert apply["register"] in report["when"]
    for name in ("main.yml", "validate.yml"):
        assert "kubernetes.core" not in (ROLE / "tasks" / name).read_text()


def test_prune_candidates_are_this_instance_s_labelled_objects_outside_protected_namespaces():
    prune = _render("{{ __team_isolation_prune }}", team_isolation_instance="it-x",
                    team_isolation_protected_namespaces=["seldon-system", "kube-system"])
    assert prune["label_selector"].split(",", 4) == [
        "app.kubernetes.io/managed-by=mlops.platform", "app.kubernetes.io/component=team-isolation",
        "mlops.platform/instance=it-x", "mlops.platform/team",
        "kubernetes.io/metadata.name notin (default,kube-node-lease,kube-public,kube-system,seldon-system)"]
    # Every kind the role creates, namespaced objects before namespaces.
    kinds = [(k["api_version"], k["kind"]) for k in prune["kinds"]]
    assert sorted(kinds) == sorted(tm.MANAGED_KINDS) and kinds[-1] == ("v1", "Namespace")


def test_verify_reads_back_with_a_check_mode_bundle():
    readback = next(t for t in _tasks("verify.yml") if "mlops.platform.k8s_bundle" in t)
    assert readback["check_mode"] is True and readback["changed_when"] is False
    assert readback["mlops.platform.k8s_bundle"]["name"] == "team_isolation_verify"
    assert "query(" not in (ROLE / "tasks" / "verify.yml").read_text()
