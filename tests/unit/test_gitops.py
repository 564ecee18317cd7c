"""The GitOps tree (plugins/module_utils/gitops.py) and k8s_bundle's render_only, with real git, no cluster."""

from __future__ import annotations

import base64
import os
import subprocess

import pytest
import yaml
from ansible_collections.mlops.platform.plugins.module_utils import bundle as bd
from ansible_collections.mlops.platform.plugins.module_utils import gitops
from ansible_collections.mlops.platform.plugins.module_utils.kube import Failed

NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
SA = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "deployer", "namespace": "team-a"}}
SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "mlflow"}, "stringData": {"p": "x"}}
DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "mlflow", "namespace": "mlflow"}, "spec": {}}


def params(render_dir, **overrides) -> dict:
    return {"render_dir": str(render_dir), "engine": "argocd", "components": {}, "repo_url": "file:///srv/p.git",
            "branch": "main", "teams": [{"name": "team-a"}, {"name": "team-b", "namespaces": ["b1", "b2"]}],
            "project": "mlops-platform", "prefix": "mlops-", "argocd_namespace": "argocd", "flux_namespace": "flux-system",
            "destination_server": "https://kubernetes.default.svc", "automated": True, "prune": True, "self_heal": False,
            **overrides}


def render(tmp_path, name: str, objects: list[dict]) -> None:
    result = bd.apply_bundle({**{k: v.get("default") for k, v in bd.ARGUMENT_SPEC.items()}, "definitions": objects,
                              "render_only": True, "render_dir": str(tmp_path), "name": name}, False, False)
    assert result["changed"] is False and result["counts"]["unchanged"] == len(objects)


def test_render_only_writes_what_would_be_sent_and_contacts_no_cluster(tmp_path):
    # kubeconfig None and no cluster: an apply would fail; render_only never connects.
    render(tmp_path, "team_isolation", [NS, SA])
    (written,) = tmp_path.iterdir()
    assert written.name == "001-team_isolation.yaml" and written.stat().st_mode & 0o777 == 0o600
    assert list(yaml.safe_load_all(written.read_text())) == [NS, SA]


def test_render_only_renders_in_check_mode_too(tmp_path):
    base = {k: v.get("default") for k, v in bd.ARGUMENT_SPEC.items()}
    result = bd.apply_bundle({**base, "definitions": [NS], "render_only": True, "render_dir": str(tmp_path)}, True, False)
    assert result["changed"] is False and result["rendered"].endswith("001-bundle.yaml")


def test_render_only_needs_render_dir_and_checks_definitions(tmp_path):
    base = {k: v.get("default") for k, v in bd.ARGUMENT_SPEC.items()}
    with pytest.raises(Failed, match="render_only needs render_dir"):
        bd.apply_bundle({**base, "definitions": [NS], "render_only": True}, False, False)
    with pytest.raises(Failed, match=r"metadata\.name is missing"):
        bd.apply_bundle({**base, "definitions": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}],
                         "render_only": True, "render_dir": str(tmp_path)}, False, False)
    assert not list(tmp_path.iterdir())


def test_the_tree_is_deterministic_with_waves_projects_and_a_kustomization_per_component(tmp_path):
    render(tmp_path, "mlflow", [DEPLOY])
    render(tmp_path, "team_isolation", [SA, NS])
    render(tmp_path, "team_isolation_verify", [NS])
    files, facts = gitops.build_tree(params(tmp_path))
    again = gitops.build_tree(params(tmp_path))[0]
    assert files == again
    assert yaml.safe_load(files["components/team-isolation/kustomization.yaml"])["resources"] == [
        "namespace-team-a.yaml", "serviceaccount-team-a-deployer.yaml"]
    assert facts["components"] == {"mlflow": {"wave": 2, "objects": 1}, "team-isolation": {"wave": 0, "objects": 2}}
    assert facts["ignored"] == ["team_isolation_verify"] and facts["sealed"] == []
    apps = {o["metadata"]["name"]: o for o in facts["delivery"] if o["kind"] == "Application"}
    assert apps["mlops-team-isolation"]["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "0"
    assert apps["mlops-mlflow"]["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "2"
    assert apps["mlops-mlflow"]["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": False}
    assert apps["mlops-root"]["spec"]["source"]["path"] == "argocd"
    assert apps["mlops-mlflow"]["spec"]["ignoreDifferences"][0]["kind"] == "StatefulSet"
    # The role applies the projects and the root; the root creates the component Applications by wave.
    assert sorted(o["metadata"]["name"] for o in facts["bootstrap"]) == ["mlops-platform", "mlops-root", "team-team-a",
                                                                         "team-team-b"]
    assert [o["metadata"]["name"] for o in facts["refresh"]] == ["mlops-root"]
    assert "argocd/application-argocd-mlops-root.yaml" not in files  # the root points at the tree
    projects = {o["metadata"]["name"]: o["spec"] for o in facts["delivery"] if o["kind"] == "AppProject"}
    assert [d["namespace"] for d in projects["team-team-b"]["destinations"]] == ["b1", "b2"]
    assert projects["team-team-a"]["clusterResourceWhitelist"] == []


def test_flux_kustomizations_depend_on_the_wave_before(tmp_path):
    render(tmp_path, "team_isolation", [NS])
    render(tmp_path, "storage", [SA])
    render(tmp_path, "mlflow", [DEPLOY])
    facts = gitops.build_tree(params(tmp_path, engine="flux", repo_url="https://git.example/p.git"))[1]
    kustomizations = {o["metadata"]["name"]: o["spec"] for o in facts["delivery"] if o["kind"] == "Kustomization"}
    assert "dependsOn" not in kustomizations["mlops-team-isolation"]
    assert kustomizations["mlops-storage"]["dependsOn"] == [{"name": "mlops-team-isolation"}]
    assert kustomizations["mlops-mlflow"]["dependsOn"] == [{"name": "mlops-storage"}]
    assert all(k["prune"] and k["wait"] for k in kustomizations.values())


def test_a_plain_secret_is_refused_before_anything_is_written(tmp_path):
    render(tmp_path / "r", "mlflow", [DEPLOY, SECRET])
    with pytest.raises(gitops.GitOpsError, match="mlflow: Secret mlflow/db") as refused:
        gitops.build_tree(params(tmp_path / "r"))
    assert "gitops_sealing_cert" in str(refused.value) and "secrets_mode: external" in str(refused.value)
    assert not (tmp_path / "repo.git").exists()


def test_a_bundle_mapping_to_no_component_fails_naming_it_and_the_fix(tmp_path):
    render(tmp_path, "team_isolation", [NS])
    render(tmp_path, "airflow", [SA])
    with pytest.raises(gitops.GitOpsError, match=r"map to no component .*: airflow;.*gitops_components.*gitops_render_roles"):
        gitops.build_tree(params(tmp_path))
    mapped = gitops.build_tree(params(tmp_path, components={
        **gitops.DEFAULT_COMPONENTS, "airflow": {"component": "airflow", "wave": 2}}))[1]
    assert mapped["components"]["airflow"] == {"wave": 2, "objects": 1}


def test_an_object_two_components_render_stays_in_the_earliest_wave_only(tmp_path):
    kafka_ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kafka"}}
    render(tmp_path / "r", "secrets", [kafka_ns, SA])
    render(tmp_path / "r", "kafka", [kafka_ns])
    files, facts = gitops.build_tree(params(tmp_path / "r"))
    assert "components/kafka/namespace-kafka.yaml" in files and "components/secrets/namespace-kafka.yaml" not in files
    assert facts["shared"] == ["secrets: Namespace kafka (kept in kafka)"]
    assert facts["components"] == {"kafka": {"wave": 1, "objects": 1}, "secrets": {"wave": 2, "objects": 1}}
    # Argo CD would track it in one Application only: a different content is refused, naming both.
    render(tmp_path / "d", "secrets", [{**kafka_ns, "metadata": {"name": "kafka", "labels": {"a": "b"}}}])
    render(tmp_path / "d", "kafka", [kafka_ns])
    with pytest.raises(gitops.GitOpsError, match="Namespace kafka: rendered differently by components kafka and secrets"):
        gitops.build_tree(params(tmp_path / "d"))


def test_a_zero_printer_column_priority_is_not_a_difference():
    crd = [d for d in gitops.IGNORE_DIFFERENCES if d["kind"] == "CustomResourceDefinition"]
    assert crd and "select(.priority == 0)" in crd[0]["jqPathExpressions"][0]


def test_every_platform_role_but_cluster_maps_to_a_component():
    spec = yaml.safe_load(open(gitops.__file__.replace("plugins/module_utils/gitops.py",
                                                       "roles/gitops/meta/argument_specs.yml"), encoding="utf-8"))
    roles = spec["argument_specs"]["main"]["options"]["gitops_render_roles"]["default"]
    assert roles == ["team_isolation", "storage", "mlflow", "monitoring", "redis", "processing", "secrets", "kafka", "seldon"]
    # seldon's bundles are named after what they carry (the charts' Applications, its CRDs, the runtimes)
    bundles = [*(r for r in roles if r != "seldon"), "seldon-controller", "seldon-crds", "seldon-runtimes"]
    assert set(bundles) <= set(gitops.DEFAULT_COMPONENTS)
    waves = {gitops.DEFAULT_COMPONENTS[b]["component"]: gitops.DEFAULT_COMPONENTS[b]["wave"] for b in bundles}
    assert waves == {"team-isolation": 0, "storage": 1, "kafka": 1, "processing": 1, "mlflow": 2, "monitoring": 2,
                     "redis": 2, "secrets": 2, "seldon-controller": 2, "seldon": 3}


LEAK = "s3cr3t-Val/ue+never-in-git"
TLS = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
       "metadata": {"name": "ghcr", "namespace": "team-a", "labels": {"app.kubernetes.io/managed-by": "mlops.platform"},
                    "annotations": {"mlops.platform/owner": "team-a"}},
       "data": {".dockerconfigjson": base64.b64encode(LEAK.encode()).decode()}, "stringData": {"extra": LEAK + "2"}}
EXTERNAL = {"apiVersion": "external-secrets.io/v1beta1", "kind": "ExternalSecret",
            "metadata": {"name": "ml-platform", "namespace": "team-a"}, "spec": {"secretStoreRef": {"name": "store"}}}


def test_secrets_are_sealed_strict_deterministic_and_unseal_to_the_same_values(
        tmp_path, sealing_cert_pem, rsa_private_key, controller_decrypt):
    render(tmp_path, "secrets", [TLS, EXTERNAL])
    render(tmp_path, "mlflow", [DEPLOY, SECRET])
    cert_file = tmp_path / "cert.pem"
    cert_file.write_text(sealing_cert_pem)
    sealed = params(tmp_path, sealing_cert=str(cert_file), sealing_seed_key="seed")
    files, facts = gitops.build_tree(sealed)
    assert files == gitops.build_tree({**sealed, "sealing_cert": sealing_cert_pem})[0]  # a path or the PEM: same bytes
    assert facts["sealed"] == ["mlflow: Secret mlflow/db", "secrets: Secret team-a/ghcr"]
    everything = "\n".join(files.values())
    assert LEAK not in everything and base64.b64encode(LEAK.encode()).decode() not in everything
    obj = yaml.safe_load(files["components/secrets/sealedsecret-team-a-ghcr.yaml"])
    assert obj["kind"] == "SealedSecret" and obj["apiVersion"] == "bitnami.com/v1alpha1"
    assert obj["spec"]["template"] == {"metadata": {"name": "ghcr", "namespace": "team-a", "labels": TLS["metadata"]["labels"],
                                                    "annotations": TLS["metadata"]["annotations"]},
                                       "type": "kubernetes.io/dockerconfigjson"}
    values = {k: controller_decrypt(rsa_private_key, v, b"team-a/ghcr") for k, v in obj["spec"]["encryptedData"].items()}
    assert values == {".dockerconfigjson": LEAK.encode(), "extra": (LEAK + "2").encode()}
    assert yaml.safe_load(files["components/secrets/externalsecret-team-a-ml-platform.yaml"]) == EXTERNAL
    assert "sealedsecret-team-a-ghcr.yaml" in yaml.safe_load(files["components/secrets/kustomization.yaml"])["resources"]
    # Another seed key: other ciphertext (nobody without it can reproduce one to test a guess).
    assert gitops.build_tree({**sealed, "sealing_seed_key": "other"})[0] != files


def test_sealing_needs_a_seed_key_and_a_valid_certificate(tmp_path, sealing_cert_pem):
    render(tmp_path, "mlflow", [SECRET])
    with pytest.raises(gitops.GitOpsError, match="gitops_sealing_seed_key is empty"):
        gitops.build_tree(params(tmp_path, sealing_cert=sealing_cert_pem, sealing_seed_key=""))
    with pytest.raises(gitops.GitOpsError, match=r"gitops_sealing_cert: .*valid PEM"):
        gitops.build_tree(params(tmp_path, sealing_cert="-----BEGIN CERTIFICATE-----\nnope\n", sealing_seed_key="k"))
    with pytest.raises(gitops.GitOpsError, match=r"gitops_sealing_cert: .*missing\.pem"):
        gitops.build_tree(params(tmp_path, sealing_cert=str(tmp_path / "missing.pem"), sealing_seed_key="k"))
    bad = {**SECRET, "stringData": None, "data": {"p": "%%% not base64"}}
    (tmp_path / "b").mkdir()
    render(tmp_path / "b", "mlflow", [bad])
    with pytest.raises(gitops.GitOpsError, match="mlflow: Secret mlflow/db: cannot be sealed") as failed:
        gitops.build_tree(params(tmp_path / "b", sealing_cert=sealing_cert_pem, sealing_seed_key="k"))
    assert "%%%" not in str(failed.value)


def test_commit_only_when_the_tree_differs(tmp_path):
    repo = str(tmp_path / "repo.git")
    first = gitops.commit_tree({"a/x.yaml": "x: 1\n"}, repo, "main", "m", False)
    assert first["changed"] and first["files_changed"] == ["a/x.yaml"]
    assert gitops.commit_tree({"a/x.yaml": "x: 1\n"}, repo, "main", "m", False) == {
        "changed": False, "commit": first["commit"], "files_changed": []}
    checked = gitops.commit_tree({"b/y.yaml": "y: 1\n"}, repo, "main", "m", True)
    assert checked["changed"] and checked["commit"] is None
    third = gitops.commit_tree({"b/y.yaml": "y: 1\n"}, repo, "main", "m", False)
    tree = subprocess.run(["git", "--git-dir", repo, "ls-tree", "-r", "--name-only", "main"], capture_output=True,
                          text=True, check=True).stdout.split()
    assert tree == ["b/y.yaml"] and third["commit"] != first["commit"]


def test_a_push_url_commits_on_top_of_the_remote_branch_and_never_creates_a_repository(tmp_path):
    """The remote is a real bare repository reached by a file:// URL (what a git@/https remote is to git)."""
    remote, local = tmp_path / "remote.git", str(tmp_path / "unused.git")
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(remote)], check=True)
    url = f"file://{remote}"
    first = gitops.commit_tree({"a/x.yaml": "x: 1\n"}, local, "main", "m", False, push_url=url)

    def log():
        return subprocess.run(["git", "--git-dir", str(remote), "log", "--format=%H", "main"],
                              capture_output=True, text=True, check=True).stdout.split()

    assert first["changed"] and log() == [first["commit"]] and not os.path.exists(local)
    again = gitops.commit_tree({"a/x.yaml": "x: 1\n"}, local, "main", "m", False, push_url=url)
    assert not again["changed"] and again["commit"] == first["commit"]
    second = gitops.commit_tree({"a/x.yaml": "x: 2\n"}, local, "main", "m", False, push_url=url)
    assert log() == [second["commit"], first["commit"]]  # fetched, committed on top, pushed
    with pytest.raises(gitops.GitOpsError, match="gitops_push_url: cannot read the repository"):
        gitops.commit_tree({"a/x.yaml": "x: 1\n"}, local, "main", "m", False, push_url=f"file://{tmp_path}/missing.git")
    assert not os.path.exists(f"{tmp_path}/missing.git")


@pytest.mark.parametrize(("values", "expected"), [
    ({"gitops_engine": "none"}, []),
    ({"gitops_engine": "argocd", "gitops_repo_url": ""}, ["gitops_repo_url: empty"]),
    ({"gitops_engine": "flux", "gitops_repo_url": "file:///x.git"}, ["Flux's GitRepository accepts"]),
    ({"gitops_engine": "argocd", "gitops_repo_url": "file:///x", "gitops_argocd_namespace": "Argo"}, ["not a DNS label"]),
    ({"gitops_engine": "argocd", "gitops_repo_url": "file:///x", "gitops_components": {
        "a": {"component": "c", "wave": 0}, "b": {"component": "c", "wave": 1}}}, ["has waves 0 and 1"]),
    ({"gitops_engine": "argocd", "gitops_sealing_cert": "/c.pem"}, ["gitops_sealing_seed_key: empty"]),
    ({"gitops_engine": "argocd", "gitops_render_roles": ["cluster", "storage"]}, ["cluster render no platform object"]),
])
def test_variable_errors(values, expected):
    errors = gitops.variable_errors(values)
    assert len(errors) == len(expected)
    for error, text in zip(errors, expected, strict=True):
        assert text in error
