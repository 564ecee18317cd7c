"""team_isolation against the offline cluster: everything is read back from the real API server.

The role runs through ansible-playbook (JSON callback) with its own instance label, so these
tests never touch the teams of the local platform (instance mlops-platform).
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import subprocess
import sys
import time

import pytest
from ansible_collections.mlops.platform.plugins.module_utils import teams as tm
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster

ROOT = pathlib.Path(__file__).resolve().parents[2]
INSTANCE = "it-teams"
ALPHA, BETA, GAMMA = "it-alpha", "it-beta", "it-gamma"
PROTECTED = "it-protected"

TEAMS = [
    {
        "name": ALPHA,
        "serving": True,
        "access": {"admin": {"groups": [f"{ALPHA}-admins"]}, "edit": {"groups": [f"{ALPHA}-eng"]},
                   "view": {"groups": [f"{ALPHA}-viewers"]}},
        "service_accounts": [{"name": "deployer", "access": "edit"}],
        "quota": {"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "2Gi"},
                  "count": {"pods": 10}},
        "limit_range": {"default": {"cpu": "500m", "memory": "256Mi"},
                        "default_request": {"cpu": "100m", "memory": "64Mi"}},
        "network": {"ingress_from": ["seldon-system"],
                    "egress_to": ["seldon-system", {"namespace": BETA, "ports": [8080]}]},
        "cost": {"cost_center": "alpha"},
    },
    {
        "name": BETA,
        "training": True,
        "access": {"admin": {"groups": [f"{BETA}-admins"]}, "edit": {"groups": [f"{BETA}-eng"]},
                   "view": {"groups": [f"{BETA}-viewers"]}},
        "service_accounts": [{"name": "runner", "access": "edit"}],
        "network": {"ingress_from": [{"namespace": ALPHA, "ports": [8080]}]},
        "pod_security": {"enforce": "restricted"},
    },
]


def run_role(kubeconfig: str, teams: list, tmp_path: pathlib.Path, *, check: bool = False, prune: bool = False,
             expect_failure: bool = False, tasks: list | None = None, extra_vars: pathlib.Path | None = None) -> dict:
    """Run the role once (or ``tasks`` instead); return the JSON callback's output."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    playbook = tmp_path / "team_isolation.yml"
    play = {"hosts": "localhost", "gather_facts": False}
    play.update({"tasks": tasks} if tasks else {"roles": [{"role": "mlops.platform.team_isolation"}]})
    playbook.write_text(json.dumps([play]))
    variables = tmp_path / "vars.json"
    variables.write_text(json.dumps({
        "teams": teams, "team_isolation_instance": INSTANCE, "team_isolation_prune": prune,
        "team_isolation_kubeconfig": kubeconfig, "mlops_environment": "it",
        "ansible_python_interpreter": sys.executable,
    }))
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
           "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"), "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    argv = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "-e", f"@{variables}", str(playbook)] + (["--check"] if check else [])
    if extra_vars:
        argv += ["-e", f"@{extra_vars}"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert proc.stdout.startswith("{"), f"rc={proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    out = json.loads(proc.stdout)
    failed = out["stats"]["localhost"]["failures"] > 0
    assert failed == expect_failure, f"rc={proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    return out


def task_results(out: dict, name: str) -> list[dict]:
    # The JSON callback names role tasks "<role> : <task>".
    return [t["hosts"]["localhost"] for play in out["plays"] for t in play["tasks"]
            if t["task"]["name"].split(" : ")[-1] == name]


APPLY = "Apply all team objects in one server-side apply call"
# Fails naming every problem when the apply was skipped for one; otherwise names what changed.
REPORT = ("Check the role settings and every team (names, quantities, limits against requests and quota, unknown keys), "
          "show what changed")


def changes(out: dict) -> dict[str, str]:
    """{Kind/namespace/name: action} of what the role changed (or, in check mode, would change, create or delete)."""
    found: dict[str, str] = {}
    for result in task_results(out, REPORT):
        if not result.get("skipped"):
            found.update({line.split(" ", 1)[1]: line.split(" ", 1)[0] for line in result["msg"]})
    return found


def changed_keys(out: dict) -> set[str]:
    return set(changes(out))


def settings() -> dict:
    import yaml

    defaults = yaml.safe_load((ROOT / "roles" / "team_isolation" / "defaults" / "main.yml").read_text())
    return {"instance": INSTANCE, "environment": "it", "access_rules": defaults["team_isolation_access_rules"],
            "dns": defaults["team_isolation_dns"]}


@pytest.fixture(scope="module")
def platform(kubeconfig, api_client, tmp_path_factory):
    """Converge the two test teams; prune them all (and delete their namespaces) afterwards."""
    tmp = tmp_path_factory.mktemp("team_isolation")
    core = client.CoreV1Api(api_client)
    first = run_role(kubeconfig, TEAMS, tmp)
    yield {"first": first, "tmp": tmp}
    run_role(kubeconfig, [], tmp, prune=True)
    for ns in (ALPHA, BETA, GAMMA, "it-unlabelled", PROTECTED):
        try:
            core.delete_namespace(ns)
        except ApiException as exc:
            if exc.status != 404:
                raise


def test_first_converge_changes_and_second_changes_nothing(platform, kubeconfig):
    assert platform["first"]["stats"]["localhost"]["changed"] > 0
    second = run_role(kubeconfig, TEAMS, platform["tmp"])
    assert second["stats"]["localhost"]["changed"] == 0, changed_keys(second)


def test_objects_read_back_as_rendered(platform, api_client):
    core = client.CoreV1Api(api_client)
    net = client.NetworkingV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    rendered = tm.render_teams(TEAMS, settings())
    to_dict = api_client.sanitize_for_serialization
    for obj in rendered:
        kind, meta = obj["kind"], obj["metadata"]
        if kind == "Namespace":
            live = to_dict(core.read_namespace(meta["name"]))
        elif kind == "ResourceQuota":
            live = to_dict(core.read_namespaced_resource_quota(meta["name"], meta["namespace"]))
        elif kind == "LimitRange":
            live = to_dict(core.read_namespaced_limit_range(meta["name"], meta["namespace"]))
        elif kind == "ServiceAccount":
            live = to_dict(core.read_namespaced_service_account(meta["name"], meta["namespace"]))
        elif kind == "NetworkPolicy":
            live = to_dict(net.read_namespaced_network_policy(meta["name"], meta["namespace"]))
        elif kind == "Role":
            live = to_dict(rbac.read_namespaced_role(meta["name"], meta["namespace"]))
        else:
            live = to_dict(rbac.read_namespaced_role_binding(meta["name"], meta["namespace"]))
        key = tm.object_key(obj)
        assert meta["labels"].items() <= live["metadata"]["labels"].items(), key
        for field in ("spec", "rules", "subjects", "roleRef"):
            if field in obj and kind != "LimitRange":
                assert live[field] == obj[field], f"{key} {field}: live {live[field]} != rendered {obj[field]}"
        if kind == "LimitRange":
            # The API server fills in nothing here because default and defaultRequest are both given.
            assert live["spec"] == obj["spec"], key
    ns = core.read_namespace(BETA).metadata.labels
    assert ns["name"] == BETA
    assert ns["pod-security.kubernetes.io/enforce"] == "restricted"
    assert ns["mlops.platform/environment"] == "it"


ACTIONS = [
    ("get", "", "pods"), ("create", "", "pods"), ("get", "", "secrets"), ("create", "apps", "deployments"),
    ("get", "mlops.seldon.io", "seldonruntimes"), ("create", "mlops.seldon.io", "seldonruntimes"),
    ("update", "", "resourcequotas"), ("create", "rbac.authorization.k8s.io", "rolebindings"),
]
EXPECTED_OWN = {
    "view": {("get", "", "pods"), ("get", "mlops.seldon.io", "seldonruntimes")},
    "edit": {("get", "", "pods"), ("create", "", "pods"), ("get", "", "secrets"), ("create", "apps", "deployments"),
             ("get", "mlops.seldon.io", "seldonruntimes")},
}
EXPECTED_OWN["admin"] = EXPECTED_OWN["edit"] | {("create", "mlops.seldon.io", "seldonruntimes")}


def _subjects():
    for team in TEAMS:
        for level in ("admin", "edit", "view"):
            for group in team["access"][level]["groups"]:
                who = {"user": "it-user", "groups": [group, "system:authenticated"]}
                yield team["name"], level, f"group:{group}", who
        for sa in team["service_accounts"]:
            ns = team["name"]
            yield ns, sa["access"], f"sa:{ns}/{sa['name']}", {
                "user": f"system:serviceaccount:{ns}:{sa['name']}",
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"]}


def test_rbac_matrix_from_subject_access_reviews(platform, api_client):
    authz = client.AuthorizationV1Api(api_client)
    namespaces = [t["name"] for t in TEAMS]
    header = ["subject"] + [f"{ns}:{verb} {res}" for ns in namespaces for verb, _group, res in ACTIONS]
    rows, wrong, cross = [], [], 0
    for team, level, label, who in _subjects():
        row = [label]
        for ns in namespaces:
            for verb, group, resource in ACTIONS:
                review = authz.create_subject_access_review(client.V1SubjectAccessReview(
                    spec=client.V1SubjectAccessReviewSpec(
                        resource_attributes=client.V1ResourceAttributes(namespace=ns, verb=verb, group=group,
                                                                        resource=resource),
                        **who)))
                allowed = review.status.allowed
                expected = ns == team and (verb, group, resource) in EXPECTED_OWN[level]
                cross += allowed and ns != team
                if allowed != expected:
                    wrong.append(f"{label} {verb} {group}/{resource} in {ns}: allowed={allowed}, expected={expected}")
                row.append("Y" if allowed else ".")
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print("\nRBAC matrix (SubjectAccessReview; Y = allowed)")
    for i, col in enumerate(header[1:], start=1):
        print(f"  c{i:<2} = {col}")
    print(" | ".join(["subject".ljust(widths[0])] + [f"c{i}".ljust(3) for i in range(1, len(header))]))
    for row in rows:
        print(" | ".join([row[0].ljust(widths[0])] + [c.ljust(3) for c in row[1:]]))
    print(f"cross-team grants: {cross}")
    assert cross == 0
    assert not wrong, "\n".join(wrong)


def _pod(name: str, resources: client.V1ResourceRequirements | None = None, privileged: bool = False):
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(containers=[client.V1Container(
            name="app", image="registry.invalid/app:1", resources=resources,
            security_context=client.V1SecurityContext(privileged=True) if privileged else None)]))


def test_pod_without_limits_is_admitted_with_the_limit_range_defaults(platform, api_client):
    core = client.CoreV1Api(api_client)
    pod = core.create_namespaced_pod(ALPHA, _pod("no-limits"))
    try:
        resources = pod.spec.containers[0].resources
        assert resources.limits == {"cpu": "500m", "memory": "256Mi"}
        assert resources.requests == {"cpu": "100m", "memory": "64Mi"}
    finally:
        core.delete_namespaced_pod("no-limits", ALPHA, grace_period_seconds=0)


def test_pod_over_the_quota_is_rejected(platform, api_client):
    core = client.CoreV1Api(api_client)
    big = client.V1ResourceRequirements(requests={"cpu": "3", "memory": "1Gi"}, limits={"cpu": "3", "memory": "1Gi"})
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(ALPHA, _pod("too-big", big))
    assert err.value.status == 403
    assert "exceeded quota: mlops-team-quota" in err.value.body, err.value.body


def test_privileged_pod_is_rejected_by_pod_security(platform, api_client):
    core = client.CoreV1Api(api_client)
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(ALPHA, _pod("privileged", privileged=True))
    assert err.value.status == 403
    assert 'violates PodSecurity "baseline:latest"' in json.loads(err.value.body)["message"], err.value.body


def test_edited_quota_is_put_back_and_check_mode_predicts_it(platform, kubeconfig, api_client):
    core = client.CoreV1Api(api_client)
    core.patch_namespaced_resource_quota(tm.QUOTA_NAME, ALPHA, {"spec": {"hard": {"limits.cpu": "100"}}})
    check = run_role(kubeconfig, TEAMS, platform["tmp"], check=True)
    assert changes(check) == {f"ResourceQuota/{ALPHA}/{tm.QUOTA_NAME}": "updated"}
    assert core.read_namespaced_resource_quota(tm.QUOTA_NAME, ALPHA).spec.hard["limits.cpu"] == "100"
    real = run_role(kubeconfig, TEAMS, platform["tmp"])
    assert changes(real) == {f"ResourceQuota/{ALPHA}/{tm.QUOTA_NAME}": "updated"}
    assert core.read_namespaced_resource_quota(tm.QUOTA_NAME, ALPHA).spec.hard["limits.cpu"] == "2"


def test_adding_a_team_check_mode_predicts_the_real_run_and_prune_removes_it(platform, kubeconfig, api_client):
    core = client.CoreV1Api(api_client)
    gamma = {"name": GAMMA, "service_accounts": [{"name": "bot", "access": "view"}]}
    teams = [*copy.deepcopy(TEAMS), gamma]
    check = run_role(kubeconfig, teams, platform["tmp"], check=True)
    with pytest.raises(ApiException):
        core.read_namespace(GAMMA)
    real = run_role(kubeconfig, teams, platform["tmp"])
    expected = {tm.object_key(o) for o in tm.render_teams([gamma], settings())}
    assert changes(check) == changes(real) == dict.fromkeys(expected, "created")

    # Things pruning must leave alone: an unlabelled namespace, an unlabelled object in a team
    # namespace, and the objects of another platform instance.
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="it-unlabelled")))
    core.create_namespaced_config_map(GAMMA, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="user-data")))
    others = core.list_namespace(label_selector="app.kubernetes.io/managed-by=mlops.platform,"
                                                "mlops.platform/instance!=" + INSTANCE).items

    # A protected namespace that carries this instance's labels (a team that used it was removed):
    # the namespace stays, the role's objects in it go.
    ours = {tm.LABEL_MANAGED_BY: tm.MANAGED_BY, tm.LABEL_COMPONENT: tm.COMPONENT, tm.LABEL_INSTANCE: INSTANCE,
            tm.LABEL_TEAM: "it-removed"}
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=PROTECTED, labels=ours)))
    core.create_namespaced_service_account(PROTECTED, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="leftover", labels=ours)))
    protect = platform["tmp"] / "protect.json"
    protect.write_text(json.dumps({"team_isolation_protected_namespaces": ["seldon-system", PROTECTED]}))

    pruned_sa = copy.deepcopy(TEAMS)
    pruned_sa[1]["service_accounts"] = []
    # Check mode predicts the deletions (server-side dry runs) and deletes nothing.
    check_prune = run_role(kubeconfig, pruned_sa, platform["tmp"], prune=True, check=True, extra_vars=protect)
    core.read_namespace(GAMMA)
    core.read_namespaced_service_account("runner", BETA)
    pruned = run_role(kubeconfig, pruned_sa, platform["tmp"], prune=True, extra_vars=protect)
    assert changes(check_prune) == changes(pruned)
    deleted = {k for k, action in changes(pruned).items() if action == "deleted"}
    # The removed team (its namespace; the objects in it go first), the removed account and the
    # leftover in the protected namespace, nothing else.
    assert deleted == expected | {f"ServiceAccount/{BETA}/runner", f"ServiceAccount/{PROTECTED}/leftover"}, deleted
    assert core.read_namespace(PROTECTED).status.phase == "Active"
    assert changes(pruned)[f"RoleBinding/{BETA}/mlops-team-edit"] == "updated"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            core.read_namespace(GAMMA)
        except ApiException as exc:
            assert exc.status == 404
            break
        time.sleep(1)
    else:
        pytest.fail(f"namespace {GAMMA} of the removed team still exists after 60 s")
    with pytest.raises(ApiException):
        core.read_namespaced_service_account("runner", BETA)
    core.read_namespace("it-unlabelled")
    core.read_namespace(ALPHA)
    core.read_namespaced_service_account("deployer", ALPHA)
    for ns in others:
        assert core.read_namespace(ns.metadata.name).status.phase == "Active"
    after = run_role(kubeconfig, TEAMS, platform["tmp"])
    assert changed_keys(after) == {f"ServiceAccount/{BETA}/runner", f"RoleBinding/{BETA}/mlops-team-edit"}


BAD_TEAMS = {
    "bad name": {"name": "It_Bad"},
    "bad quantity": {"name": "it-bad", "quota": {"requests": {"cpu": "lots"}}},
    "limit below request": {"name": "it-bad", "quota": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}},
    "default above quota": {"name": "it-bad", "quota": {"limits": {"cpu": "1"}},
                            "limit_range": {"default": {"cpu": "2"}}},
    "unknown key": {"name": "it-bad", "quotas": {}},
    "duplicate namespace": {"name": "it-bad", "namespaces": [ALPHA]},
    "limits without default limit": {"name": "it-bad", "quota": {"limits": {"memory": "1Gi"}},
                                     "limit_range": {"default_request": {"memory": "1Mi"}}},
    "bad pod security": {"name": "it-bad", "pod_security": {"enforce": "strict"}},
    "bad peer": {"name": "it-bad", "network": {"egress_to": ["Not A Namespace"]}},
    "system namespace": {"name": "it-bad", "namespaces": ["kube-system"]},
}


def test_bad_definitions_fail_before_any_api_write(platform, kubeconfig, api_client, tmp_path):
    """All ten cases in one ansible-playbook run: each includes the role in a block and records its failure."""
    core = client.CoreV1Api(api_client)
    mine = f"{tm.LABEL_INSTANCE}={INSTANCE}"
    before = {n.metadata.name: n.metadata.resource_version for n in core.list_namespace(label_selector=mine).items}
    cases = {case: [*copy.deepcopy(TEAMS), bad] for case, bad in BAD_TEAMS.items()}
    (tmp_path / "cases.json").write_text(json.dumps({"bad_cases": cases}))
    tasks = [{
        "name": f"Case {case}",
        "block": [{"name": f"Run the role on case {case}",
                   "ansible.builtin.include_role": {"name": "mlops.platform.team_isolation"},
                   # extra vars (teams) outrank include vars: set the role variable itself.
                   "vars": {"team_isolation_teams": f"{{{{ bad_cases[{case!r}] }}}}"}}],
        "rescue": [{"name": f"Record case {case}", "ansible.builtin.set_fact": {
            "failures": f"{{{{ failures | default({{}}) | combine({{{case!r}: {{'task': ansible_failed_task.name, "
                        "'msg': ansible_failed_result.msg}}) }}"}}],
    } for case in cases]
    tasks.append({"name": "Report the failures", "ansible.builtin.debug": {"var": "failures"}})
    out = run_role(kubeconfig, [], tmp_path, tasks=tasks, extra_vars=tmp_path / "cases.json")
    failures = task_results(out, "Report the failures")[0]["failures"]
    assert set(failures) == set(BAD_TEAMS), failures
    for case, failure in failures.items():
        assert failure["task"].endswith(REPORT), (case, failure)
        message = " ".join(failure["msg"])
        assert "team '" in message and "Fix:" in message, f"{case}: {message}"
        print(f"{case}: {failure['msg'][1]}")
    applies = task_results(out, APPLY)
    assert len(applies) == len(BAD_TEAMS) and all(r.get("skipped") for r in applies), applies
    after = {n.metadata.name: n.metadata.resource_version for n in core.list_namespace(label_selector=mine).items}
    assert after == before
    with pytest.raises(ApiException):
        core.read_namespace("it-bad")
