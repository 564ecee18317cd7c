"""The seldon role's data: its lists agree with module_utils, its argument spec with its defaults, and every
inventory's runtime passes the quota preflight against the quota and LimitRange its teams get."""

from __future__ import annotations

import pathlib

import pytest
import yaml
from ansible_collections.mlops.platform.plugins.module_utils import seldon as sd
from ansible_collections.mlops.platform.plugins.module_utils import teams as tm

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "seldon"
INVENTORIES = sorted(p.name for p in (ROOT / "inventories").iterdir() if (p / "group_vars" / "all").is_dir())


def load(path: pathlib.Path):
    return yaml.safe_load(path.read_text())


def test_component_lists_match_module_utils():
    role_vars = load(ROLE / "vars" / "main.yml")
    assert role_vars["__seldon_components"] == list(sd.COMPONENTS)
    assert role_vars["__seldon_kafka_components"] == list(sd.KAFKA_COMPONENTS)


def test_argument_spec_documents_every_default():
    defaults = load(ROLE / "defaults" / "main.yml")
    options = load(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(options) == set(defaults)
    for name, spec in options.items():
        if "default" in spec:
            assert spec["default"] == defaults[name], name


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_inventory_has_the_same_seldon_keys(inventory):
    local = load(ROOT / "inventories" / "local" / "group_vars" / "all" / "seldon.yml")
    other = load(ROOT / "inventories" / inventory / "group_vars" / "all" / "seldon.yml")
    assert set(other) == set(local)
    assert not (other["seldon_install_controller"] and other["seldon_offline_crds"])


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_every_serving_team_of_every_inventory_passes_the_preflight(inventory):
    """What the role would send for each serving namespace, checked against the objects team_isolation renders."""
    group_vars = ROOT / "inventories" / inventory / "group_vars" / "all"
    seldon = load(group_vars / "seldon.yml")
    teams = load(group_vars / "teams.yml")["teams"]
    ti_defaults = load(ROOT / "roles" / "team_isolation" / "defaults" / "main.yml")
    defaults = {"quota": ti_defaults["team_isolation_quota_defaults"],
                "limit_range": ti_defaults["team_isolation_limit_range_defaults"]}
    settings = {"instance": "mlops-platform", "environment": inventory,
                "access_rules": ti_defaults["team_isolation_access_rules"], "dns": ti_defaults["team_isolation_dns"]}
    objects = tm.render_teams(teams, settings, defaults)
    serving = [row for row in tm.team_namespaces(teams, defaults) if row["serving"]]
    assert serving, f"{inventory} has no serving team"
    # Kafka from the kafka role (kafka.yml) or the override: then the pipeline components run too.
    kafka = seldon["seldon_kafka_bootstrap"] or load(group_vars / "kafka.yml")["kafka_mode"] != "none"
    kafka_off = [] if kafka else [{"name": c, "disable": True} for c in sd.KAFKA_COMPONENTS]
    for row in serving:
        ns = row["namespace"]
        params = {"name": seldon["seldon_runtime_name"], "namespace": ns, "seldon_config": "default",
                  "overrides": seldon["seldon_runtime_overrides"] + kafka_off, "servers": seldon["seldon_servers"]}
        assert sd.validate_params(params) == []
        in_ns = [o for o in objects if o["metadata"].get("namespace") == ns]
        quotas = [o for o in in_ns if o["kind"] == "ResourceQuota"]
        limit_ranges = [o for o in in_ns if o["kind"] == "LimitRange"]
        result = sd.preflight(params, quotas, limit_ranges)
        assert result["errors"] == [], f"{inventory}/{ns}: {result['errors']}"


def test_the_readme_seed_001_example_passes_the_preflight_of_the_local_team():
    readme = (ROLE / "README.md").read_text()
    example = yaml.safe_load(readme.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert [o["name"] for o in example["seldon_runtime_overrides"]] == list(sd.COMPONENTS)
    teams = load(ROOT / "inventories" / "local" / "group_vars" / "all" / "teams.yml")["teams"]
    team = tm.normalize_team(next(t for t in teams if t["serving"]))
    quota = {"metadata": {"name": "q"}, "spec": {"hard": tm._quota_hard(team["quota"])}}
    lr = team["limit_range"]
    limit_range = {"metadata": {"name": "lr"}, "spec": {"limits": [{
        "type": "Container", "default": lr["default"], "defaultRequest": lr["default_request"], "max": lr["max"]}]}}
    params = {"name": "seldon", "namespace": team["name"], "seldon_config": "default",
              "overrides": example["seldon_runtime_overrides"],
              "servers": example["seldon_servers"]}
    assert sd.validate_params(params) == []
    assert sd.preflight(params, [quota], [limit_range])["errors"] == []
    # Without the LimitRange the explicit limits alone are not enough: the other components have no CPU limit.
    errors = sd.preflight(params, [quota], [])["errors"]
    assert errors and not any(e.startswith(("seldon-scheduler ", "seldon-dataflow-engine ")) for e in errors)
