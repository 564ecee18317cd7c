"""Hostile inventories (hostile_inventories.yml) against an offline cluster with an audit log.

Every case fails in the first task of playbooks/site.yml (mlops.platform.validate_roles) with a
message naming the key, and the API server's audit log shows no write request made during the
case by anyone but the control plane. The cases run on the empty cluster first; then a good run
of the local inventory must write, which shows the counter counts (and the cluster is the one
the playbook talks to).
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import subprocess

import pytest
import yaml
from ansible_run import recap
from audit_log import AuditLog

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "roles" / "cluster" / "files" / "offline-cluster.sh"
NAME = "mlops-it-hostile"
CORPUS_FILE = yaml.safe_load((pathlib.Path(__file__).parent / "hostile_inventories.yml").read_text())
CORPUS = CORPUS_FILE["cases"]
VALIDATION_FAILED = "Validation of the role arguments failed, nothing was changed"


def merged(base: dict, changes: dict) -> dict:
    """``changes`` over a copy of ``base``: mappings key by key, anything else replaced."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def case_vars(case: dict) -> dict:
    """The extra vars of a case, its `vars_base` and `base` teams expanded (see hostile_inventories.yml)."""
    extra = {**CORPUS_FILE["vars_base"].get(case.get("vars_base"), {}), **case["vars"]}
    if isinstance(extra.get("teams"), list):
        extra["teams"] = [merged(CORPUS_FILE["teams_base"][team["base"]], {k: v for k, v in team.items() if k != "base"})
                          if isinstance(team, dict) and "base" in team else team for team in extra["teams"]]
    return extra


@pytest.fixture(scope="module")
def audited_cluster(tmp_path_factory):
    """An offline cluster of its own whose API server writes an audit log; deleted afterwards."""
    tmp = tmp_path_factory.mktemp("hostile")
    kubeconfig, audit = tmp / "kubeconfig", tmp / "audit.log"
    env = {**os.environ, "MLOPS_CLUSTER_NAME": NAME, "MLOPS_KUBECONFIG": str(kubeconfig), "MLOPS_CLUSTER_NODES": "1",
           "MLOPS_AUDIT_LOG": str(audit)}
    # A cluster of this name left behind by an interrupted run has no audit log here: start afresh.
    subprocess.run([str(CLUSTER), "down"], env=env, capture_output=True, check=False)
    up = subprocess.run([str(CLUSTER), "up"], env=env, capture_output=True, text=True, check=False)
    assert up.returncode == 0, up.stderr[-3000:]
    assert audit.is_file(), f"the API server wrote no audit log at {audit}"
    args = ("-e", f"cluster_provider=kwok cluster_name={NAME} cluster_kubeconfig={kubeconfig}")
    yield tmp, args, AuditLog(audit)
    subprocess.run([str(CLUSTER), "down"], env=env, capture_output=True, check=False)


def test_the_corpus_is_large_and_its_ids_unique_and_its_bases_apply():
    ids = [case["id"] for case in CORPUS]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)
    pods = case_vars({"vars": {"teams": [{"base": "serving", "quota": {"count": {"pods": 2}}}]}})["teams"][0]["quota"]
    assert pods == {**CORPUS_FILE["teams_base"]["serving"]["quota"], "count": {"pods": 2, "persistentvolumeclaims": 10}}
    dev = case_vars({"vars_base": "dev_vault", "vars": {"vault_registry_password": ""}})
    assert dev["vault_registry_password"] == "" and dev["vault_s3_access_key_id"]


@pytest.mark.cluster
@pytest.mark.parametrize("case", CORPUS, ids=[case["id"] for case in CORPUS])
def test_a_hostile_inventory_fails_in_validation_and_writes_nothing(ansible_playbook, audited_cluster, case):
    tmp, cluster_args, audit = audited_cluster
    extra = tmp / f"{case['id']}.json"
    extra.write_text(json.dumps(case_vars(case)))
    extra.chmod(0o600)
    mark = audit.mark()
    run = ansible_playbook("playbooks/site.yml", "-i", case.get("inventory", "inventories/local"), *cluster_args,
                           "-e", f"@{extra}")
    said = run.stdout + run.stderr
    writes = audit.writes_since(mark)
    assert run.returncode != 0, said[-3000:]
    assert VALIDATION_FAILED in said, said[-3000:]
    # The first task failed and no other ran.
    assert recap(run.stdout) == {"ok": 0, "changed": 0, "unreachable": 0, "failed": 1}
    for expected in case["expect"]:
        assert expected in said, f"{expected!r} not in the output:\n{said[-3000:]}"
    for secret in case.get("absent", []):
        assert secret not in said, f"a secret value is in the output ({case['id']})"
    assert writes == [], writes


@pytest.mark.cluster
def test_a_good_inventory_writes_and_the_counter_sees_it(ansible_playbook, audited_cluster):
    _tmp, cluster_args, audit = audited_cluster
    mark = audit.mark()
    run = ansible_playbook("playbooks/site.yml", "-i", "inventories/local", *cluster_args)
    assert run.returncode == 0, run.stdout[-4000:]
    writes = audit.writes_since(mark)
    print(f"the good run made {len(writes)} write requests")  # the README's figure (pytest -rP)
    # The team's objects among them: the counter sees the collection's writes to this cluster.
    assert any("/namespaces/financial-ml/" in w or w.startswith("patch /api/v1/namespaces/financial-ml?") for w in writes), writes
