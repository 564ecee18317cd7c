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
