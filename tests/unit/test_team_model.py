"""The team model: validation, normalisation, rendering and pruning (plugins/module_utils/teams.py)."""

from __future__ import annotations

import copy

import pytest
from ansible_collections.mlops.platform.plugins.module_utils import teams as tm
from ansible_collections.mlops.platform.plugins.module_utils.k8s_results import changed_objects, object_key

SETTINGS = {
    "instance": "unit",
    "environment": "local",
    "access_rules": {
        "admin": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}],
        "edit": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}],
        "view": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    },
    "dns": {"namespace": "kube-system", "pod_labels": {"k8s-app": "kube-dns"}, "port": 53},
}


def serving_team(**changes):
    team = {
        "name": "financial-ml",
        "serving": True,
        "secrets": ["ml-platform"],
        "access": {"admin": {"groups": ["fml-admins"]}, "edit": {"groups": ["fml-eng"], "users": ["ada"]}},
        "service_accounts": [{"name": "model-deployer", "access": "edit"}],
        "quota": {
            "requests": {"cpu": "8", "memory": "16Gi", "storage": "50Gi", "nvidia.com/gpu": 1},
            "limits": {"cpu": "8", "memory": "16Gi"},
            "count": {"pods": 50, "services.loadbalancers": 0, "deployments.apps": 20},
        },
        "limit_range": {"default": {"cpu": "500m", "memory": "512Mi"},
                        "default_request": {"cpu": "0.1", "memory": "128Mi"}},
        "network": {"ingress_from": ["seldon-system"], "egress_to": [{"namespace": "minio", "ports": [9000]}]},
        "cost": {"cost_center": "fin-ml"},
    }
    team.update(changes)
    return team


def training_team(**changes):
    team = {"name": "financial-mlops-pytorch", "training": True, "service_accounts": [{"name": "pipeline-runner"}]}
    team.update(changes)
    return team


def test_valid_teams_have_no_errors():
    assert tm.validate_teams([serving_team(), training_team()]) == []
    assert tm.validate_teams([]) == []
    assert tm.validate_teams(None) == []


def _with(path: str, value):
    team = serving_team()
    *parents, leaf = path.split(".")
    node = team
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return team


# The ten bad definitions of the issue (and a few more): each names the team, the field, the fix.
BAD = [
    ("bad name", [serving_team(name="Financial_ML")], "team 'Financial_ML': name: 'Financial_ML' is not a DNS-1123"),
    ("bad quantity", [_with("quota.requests.memory", "16GB")], "team 'financial-ml': quota.requests.memory: '16GB'"),
    ("limit below request", [_with("quota.limits.cpu", "4")],
     "team 'financial-ml': quota.limits.cpu: 4 is below quota.requests.cpu (8)"),
    ("default above quota", [_with("limit_range.default.cpu", "10")],
     "team 'financial-ml': limit_range.default.cpu: 10 does not fit in quota.limits.cpu (8)"),
    ("unknown key", [serving_team(quotas={})], "team 'financial-ml': team: unknown key(s) quotas"),
    ("duplicate namespace", [serving_team(), training_team(namespaces=["financial-ml"])],
     "team 'financial-mlops-pytorch': namespaces: namespace 'financial-ml' already belongs to team 'financial-ml'"),
    ("default request above default limit", [_with("limit_range.default_request.memory", "1Gi")],
     "team 'financial-ml': limit_range.default_request.memory: 1Gi is above limit_range.default.memory (512Mi)"),
    ("quota on limits.cpu without a default limit (seed 001)",
     [_with("limit_range", {"default_request": {"cpu": "1"}})],
     "team 'financial-ml': limit_range.default.cpu: quota.limits.cpu is set but no default limit is"),
    ("limits on an extended resource", [_with("quota.limits", {"cpu": "8", "memory": "16Gi", "nvidia.com/gpu": 1})],
     "team 'financial-ml': quota.limits.nvidia.com/gpu: a ResourceQuota limits this resource through requests only"),
    ("bad pod security level", [_with("pod_security", {"enforce": "strict"})],
     "team 'financial-ml': pod_security.enforce: 'strict' is not a Pod Security level"),
    ("bad peer namespace", [_with("network.ingress_from", ["Seldon System"])],
     "team 'financial-ml': network.ingress_from[0].namespace: 'Seldon System' is not a namespace name"),
    ("system namespace", [serving_team(namespaces=["kube-system"])],
     "team 'financial-ml': namespaces[0]: 'kube-system' is a Kubernetes system namespace"),
    ("duplicate team", [serving_team(), serving_team(namespaces=["other"])],
     "team 'financial-ml': name: the team is defined twice"),
    ("unknown access level", [_with("access.owner", {"groups": ["x"]})],
     "team 'financial-ml': access: unknown key(s) owner"),
    ("bad service account access", [serving_team(service_accounts=[{"name": "sa", "access": "root"}])],
     "team 'financial-ml': service_accounts[0].access: 'root' is not an access level"),
    ("bad cidr", [_with("network.egress_cidrs", ["10.0.0.1/8"])],
     "team 'financial-ml': network.egress_cidrs[0]: '10.0.0.1/8' is not a network"),
    ("bad count", [_with("quota.count.pods", -1)], "team 'financial-ml': quota.count.pods: -1 is not a whole number"),
    ("reserved label", [serving_team(labels={"mlops.platform/team": "x"})],
     "team 'financial-ml': labels.mlops.platform/team: is set by the platform"),
    ("bad cost label", [_with("cost.cost_center", "finance ml")],
     "team 'financial-ml': cost.cost_center: 'finance ml' is not a valid label value"),
    ("one-way peer between teams", [serving_team(network={"egress_to": ["financial-mlops-pytorch"]}), training_team()],
     "team 'financial-ml': network.egress_to[0]: namespace 'financial-mlops-pytorch' of team 'financial-mlops-pytorch'"
     " has no matching network.ingress_from entry"),
    ("not a list", {"name": "x"}, "teams: must be a list"),
]


@pytest.mark.parametrize(("case", "teams", "expected"), BAD, ids=[c[0] for c in BAD])
def test_bad_definitions_fail_with_a_message_naming_team_field_and_fix(case, teams, expected):
    errors = tm.validate_teams(teams)
    assert errors, f"{case}: no error reported"
    assert any(expected in e for e in errors), f"{case}: {errors}"
    assert all("Fix:" in e for e in errors), errors


def test_every_problem_is_reported_at_once():
    team = serving_team(name="Bad Name", quotas={})
    team["quota"]["requests"]["cpu"] = "lots"
    errors = tm.validate_teams([team])
    assert len(errors) >= 3, errors


def test_role_defaults_are_checked_for_teams_that_inherit_them():
    defaults = {"limit_range": {"default": {"cpu": "16"}, "default_request": {"cpu": "1", "memory": "1Gi"}}}
    team = training_team()
    errors = tm.validate_teams([team], defaults={**defaults, "quota": {"limits": {"cpu": "8"}}})
    assert any("limit_range.default.cpu: 16 does not fit in quota.limits.cpu (8)" in e for e in errors), errors


def test_normalized_team_has_every_field_for_other_roles():
    team = tm.normalize_team(training_team())
    assert team["namespaces"] == ["financial-mlops-pytorch"]
    assert team["serving"] is False and team["training"] is True
    assert team["storage"]["bucket_prefix"] == "financial-mlops-pytorch/"
    assert team["service_accounts"] == [{"name": "pipeline-runner", "access": "edit"}]
    assert team["pod_security"]["enforce"] == "baseline"
    assert team["network"]["allow_dns"] is True
    assert team["quota"] == tm.BUILTIN_DEFAULTS["quota"]


def test_team_namespaces_rows():
    rows = tm.team_namespaces([serving_team(namespaces=["fml-a", "fml-b"]), training_team()])
    assert [(r["team"], r["namespace"], r["serving"]) for r in rows] == [
        ("financial-ml", "fml-a", True),
        ("financial-ml", "fml-b", True),
        ("financial-mlops-pytorch", "financial-mlops-pytorch", False),
    ]
    assert rows[0]["secrets"] == ["ml-platform"]
    assert rows[0]["bucket_prefix"] == "financial-ml/"


def _objects(*teams):
    return tm.render_teams(list(teams), SETTINGS)


def _get(objects, kind, name, namespace="financial-ml"):
    for obj in objects:
        meta = obj["metadata"]
        if obj["kind"] == kind and meta["name"] == name and meta.get("namespace", namespace) == namespace:
            return obj
    raise AssertionError(f"{kind} {namespace}/{name} not rendered: {[object_key(o) for o in objects]}")


def test_every_object_carries_the_platform_labels():
    objects = _objects(serving_team(), training_team())
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "mlops.platform", object_key(obj)
        assert labels["app.kubernetes.io/part-of"] == "mlops-platform"
        assert labels["mlops.platform/team"] in ("financial-ml", "financial-mlops-pytorch")
        assert labels["mlops.platform/instance"] == "unit"
        assert labels["mlops.platform/environment"] == "local"


def test_namespaces_come_first_with_name_and_pod_security_labels():
    objects = _objects(serving_team(), training_team())
    kinds = [o["kind"] for o in objects]
    assert kinds[:2] == ["Namespace", "Namespace"] and "Namespace" not in kinds[2:]
    labels = objects[0]["metadata"]["labels"]
    assert labels["name"] == "financial-ml"
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert labels["mlops.platform/cost-center"] == "fin-ml"


def test_quota_and_limit_range():
    objects = _objects(serving_team())
    hard = _get(objects, "ResourceQuota", tm.QUOTA_NAME)["spec"]["hard"]
    assert hard == {
        "count/deployments.apps": "20", "limits.cpu": "8", "limits.memory": "16Gi", "pods": "50",
        "requests.cpu": "8", "requests.memory": "16Gi", "requests.nvidia.com/gpu": "1", "requests.storage": "50Gi",
        "services.loadbalancers": "0",
    }
    limits = _get(objects, "LimitRange", tm.LIMIT_RANGE_NAME)["spec"]["limits"]
    assert limits == [{"type": "Container", "default": {"cpu": "500m", "memory": "512Mi"},
                       "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}]


def test_no_quota_when_the_team_sets_an_empty_one():
    objects = _objects(serving_team(quota={}))
    assert not [o for o in objects if o["kind"] == "ResourceQuota"]


def test_rbac_binds_groups_users_and_service_accounts_by_level():
    objects = _objects(serving_team())
    edit = _get(objects, "RoleBinding", "mlops-team-edit")
    assert edit["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "mlops-team-edit"}
    assert edit["subjects"] == [
        {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "fml-eng"},
        {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "ada"},
        {"kind": "ServiceAccount", "name": "model-deployer", "namespace": "financial-ml"},
    ]
    assert _get(objects, "Role", "mlops-team-admin")["rules"] == SETTINGS["access_rules"]["admin"]
    # No subject at the view level: the Role exists, no binding.
    _get(objects, "Role", "mlops-team-view")
    assert not [o for o in objects if o["kind"] == "RoleBinding" and o["metadata"]["name"] == "mlops-team-view"]
    _get(objects, "ServiceAccount", "model-deployer")


def test_network_policies():
    objects = _objects(serving_team())
    deny = _get(objects, "NetworkPolicy", tm.NETPOL_DEFAULT_DENY)["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    dns = _get(objects, "NetworkPolicy", tm.NETPOL_DNS)["spec"]["egress"][0]
    assert {p["protocol"] for p in dns["ports"]} == {"UDP", "TCP"}
    team = _get(objects, "NetworkPolicy", tm.NETPOL_TEAM)["spec"]
    assert team["ingress"][0]["from"][0] == {"podSelector": {}}
    assert team["ingress"][0]["from"][1]["namespaceSelector"]["matchLabels"]["mlops.platform/team"] == "financial-ml"
    peers = _get(objects, "NetworkPolicy", tm.NETPOL_PEERS)["spec"]
    assert peers["ingress"] == [{"from": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "seldon-system"}}}]}]
    minio = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "minio"}}}
    assert peers["egress"] == [{"to": [minio], "ports": [{"port": 9000, "protocol": "TCP"}]}]
    no_peers = _objects(training_team())
    assert not [o for o in no_peers if o["metadata"]["name"] == tm.NETPOL_PEERS]


def test_dns_and_team_policies_can_be_turned_off():
    objects = _objects(serving_team(network={"allow_dns": False, "allow_team": False}))
    assert not [o for o in objects if o["metadata"]["name"] == tm.NETPOL_DNS]
    assert _get(objects, "NetworkPolicy", tm.NETPOL_TEAM)["spec"]["ingress"] == [{"from": [{"podSelector": {}}]}]


def test_rendering_is_deterministic():
    assert _objects(serving_team(), training_team()) == _objects(copy.deepcopy(serving_team()), training_team())


def test_stale_objects_only_ours_not_protected_namespaced_first():
    desired = _objects(serving_team())
    ours = {"app.kubernetes.io/managed-by": "mlops.platform", "app.kubernetes.io/component": "team-isolation"}
    other_role = {"app.kubernetes.io/managed-by": "mlops.platform", "app.kubernetes.io/component": "seldon"}
    found = [
        *desired,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "old-team", "labels": ours}},
        {"apiVersion": "v1", "kind": "ResourceQuota",
         "metadata": {"name": "mlops-team-quota", "namespace": "old-team", "labels": ours}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "removed-sa", "namespace": "financial-ml", "labels": ours}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "theirs", "namespace": "financial-ml", "labels": {"app": "x"}}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "seldon", "namespace": "financial-ml", "labels": other_role}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "seldon-system", "labels": ours}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system", "labels": ours}},
    ]
    stale = tm.stale_objects(found, desired, ["seldon-system"])
    assert [object_key(o) for o in stale] == ["ServiceAccount/financial-ml/removed-sa", "Namespace/old-team"]


def test_changed_objects_from_batched_and_single_results():
    batched = {"changed": True, "result": {"results": [
        {"changed": True, "method": "apply", "diff": {"before": {}, "after": {}},
         "result": {"kind": "Namespace", "metadata": {"name": "a"}}},
        {"changed": False, "method": "apply", "result": {"kind": "Role", "metadata": {"name": "r", "namespace": "a"}}},
    ]}}
    diff = {"before": {}, "after": {}}
    assert changed_objects(batched) == [{"object": "Namespace/a", "method": "apply", "diff": diff}]
    role = {"kind": "Role", "metadata": {"name": "r", "namespace": "a"}}
    single = {"changed": True, "method": "apply", "result": role}
    assert changed_objects(single)[0]["object"] == "Role/a/r"
    assert changed_objects({"skipped": True}) == []


def test_access_reviews_expect_own_namespace_only():
    actions = [{"verb": "get", "resource": "secrets"}, {"verb": "create", "resource": "pods"}]
    reviews = tm.access_reviews([serving_team(), training_team()], SETTINGS["access_rules"], actions)
    by = {(r["subject"], r["namespace"], r["action"]): r["expected"] for r in reviews}
    assert by[("group:fml-admins", "financial-ml", "get secrets")] is True
    assert by[("group:fml-eng", "financial-ml", "create pods")] is True
    assert by[("group:fml-eng", "financial-ml", "get secrets")] is False
    assert by[("group:fml-admins", "financial-mlops-pytorch", "get secrets")] is False
    assert by[("sa:financial-mlops-pytorch/pipeline-runner", "financial-mlops-pytorch", "create pods")] is True
    assert by[("sa:financial-mlops-pytorch/pipeline-runner", "financial-ml", "create pods")] is False
    sar = reviews[0]["definition"]
    assert sar["kind"] == "SubjectAccessReview" and sar["spec"]["resourceAttributes"]["namespace"] == "financial-ml"


def test_access_matrix_counts_cross_team_grants_and_surprises():
    actions = [{"verb": "create", "resource": "pods"}]
    reviews = tm.access_reviews([serving_team(), training_team()], SETTINGS["access_rules"], actions)
    answers = [r["expected"] for r in reviews]
    clean = tm.access_matrix(reviews, answers)
    assert clean["cross_team_grants"] == [] and clean["unexpected"] == []
    assert clean["table"][0] == "c1 = financial-ml:create pods"
    leaky = [True] * len(reviews)
    matrix = tm.access_matrix(reviews, leaky)
    assert matrix["cross_team_grants"] and matrix["unexpected"]


def test_mismatches_between_rendered_and_live():
    from ansible_collections.mlops.platform.plugins.module_utils.k8s_results import mismatches

    desired = _objects(serving_team())
    live = copy.deepcopy(desired)
    assert mismatches(desired, live) == []
    quota = next(o for o in live if o["kind"] == "ResourceQuota")
    quota["spec"]["hard"]["limits.cpu"] = "100"
    live[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = "privileged"
    live.pop()
    problems = mismatches(desired, live)
    assert len(problems) == 3, problems
    assert any("ResourceQuota/financial-ml/mlops-team-quota: spec" in p for p in problems)
    # The API server's own additions to a LimitRange are not differences.
    lr = next(o for o in live if o["kind"] == "LimitRange")
    lr["spec"]["limits"][0]["max"] = {"cpu": "8"}
    assert len(mismatches(desired, live)) == 3
    lr["spec"]["limits"][0]["default"]["cpu"] = "1"
    assert len(mismatches(desired, live)) == 4
