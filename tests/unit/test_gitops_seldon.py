"""GitOps mode of the seldon role: seldon_runtime's render_only (module_utils/seldon_task.py) and the charts as
Argo CD Applications or Flux HelmReleases (module_utils/gitops_charts.py). No cluster: a render that tried to
reach one would fail (kubeconfig points nowhere)."""

from __future__ import annotations

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.mlops.platform.plugins.module_utils import bundle as bd
from ansible_collections.mlops.platform.plugins.module_utils import gitops
from ansible_collections.mlops.platform.plugins.module_utils import seldon_task as st
from ansible_collections.mlops.platform.plugins.module_utils.gitops_charts import chart_delivery
from ansible_collections.mlops.platform.plugins.module_utils.kube import Failed
from ansible_collections.mlops.platform.plugins.module_utils.seldon import KAFKA_COMPONENTS, build_runtime, build_servers

NO_KAFKA = [{"name": n, "disable": True} for n in KAFKA_COMPONENTS]
QUOTA = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "mlops-team-quota", "namespace": "team-a"},
         "spec": {"hard": {"requests.cpu": "8", "requests.memory": "16Gi", "pods": "50"}}}
TINY = {**QUOTA, "spec": {"hard": {"requests.memory": "1Gi"}}}
LIMITS = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "mlops-team-limits", "namespace": "team-a"},
          "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m", "memory": "512Mi"}}]}}


def args(render_dir, **extra) -> dict:
    raw = {"name": "seldon", "runtimes": [{"namespace": "team-a", "team": "a", "overrides": NO_KAFKA},
                                          {"namespace": "team-b", "team": "b", "overrides": NO_KAFKA}],
           "servers": [{"name": "mlserver", "replicas": 1}], "render_only": True, "render_dir": str(render_dir),
           "kubeconfig": "/nonexistent/kubeconfig", **extra}
    found = ArgumentSpecValidator(st.ARGUMENT_SPEC, **st.VALIDATOR_KWARGS).validate(raw)
    assert not found.error_messages
    return found.validated_parameters


def render_team_isolation(directory, objects) -> None:
    bd.apply_bundle({**{k: v.get("default") for k, v in bd.ARGUMENT_SPEC.items()}, "definitions": objects,
                     "render_only": True, "render_dir": str(directory), "name": "team_isolation"}, False, False)


@pytest.mark.parametrize("check_mode", [False, True])
def test_render_writes_the_runtimes_with_k8s_bundles_writer_and_contacts_no_cluster(tmp_path, check_mode):
    render_team_isolation(tmp_path, [QUOTA, LIMITS])
    result = st.run_runtimes(args(tmp_path), check_mode, True)
    assert result["changed"] is False and result["api_writes"] == 0
    assert result["rendered"].endswith("002-seldon-runtimes.yaml")
    assert [r["namespace"] for r in result["runtimes"]] == ["team-a", "team-b"]
    # The preflight used the rendered quota and limits of team-a; team-b has none rendered.
    assert result["runtimes"][0]["preflight"]["base"].endswith("rendered ResourceQuota and LimitRange")
    assert "no ResourceQuota" in result["runtimes"][1]["preflight"]["base"]
    # Byte for byte what k8s_bundle's render writes for the same objects (the push path's objects, built once).
    each = st.runtime_params(args(tmp_path))
    expected = [o for p in each for o in (build_runtime(p), *build_servers(p))]
    other = tmp_path / "bundle"
    bd.apply_bundle({**{k: v.get("default") for k, v in bd.ARGUMENT_SPEC.items()}, "definitions": expected,
                     "render_only": True, "render_dir": str(other), "name": "seldon-runtimes"}, False, False)
    assert (tmp_path / "002-seldon-runtimes.yaml").read_bytes() == (other / "001-seldon-runtimes.yaml").read_bytes()
    assert [o["kind"] for o in yaml.safe_load_all((tmp_path / "002-seldon-runtimes.yaml").read_text())] == \
        ["SeldonRuntime", "Server", "SeldonRuntime", "Server"]


def test_render_refuses_a_runtime_over_the_rendered_quota_and_writes_nothing(tmp_path):
    render_team_isolation(tmp_path, [TINY])
    with pytest.raises(Failed, match=r"team-a/seldon: the quota preflight found .* nothing was rendered") as caught:
        st.run_runtimes(args(tmp_path), False, False)
    assert caught.value.result["api_writes"] == 0 and caught.value.result["preflight"]["errors"]
    assert [p.name for p in tmp_path.iterdir()] == ["001-team_isolation.yaml"]
    # preflight: false renders (the quota is then the API server's business).
    assert st.run_runtimes(args(tmp_path, preflight=False), False, False)["rendered"].endswith("002-seldon-runtimes.yaml")


def test_render_refuses_state_absent_and_needs_render_dir(tmp_path):
    with pytest.raises(Failed, match="state absent"):
        st.run_runtimes(args(tmp_path, state="absent"), False, False)
    with pytest.raises(Failed, match="render_only needs render_dir"):
        st.run_runtimes({**args(tmp_path), "render_dir": None}, False, False)


def test_rendered_runtimes_land_in_the_seldon_component_and_charts_a_wave_before(tmp_path):
    st.run_runtimes(args(tmp_path), False, False)
    charts = [{"release": "seldon-core-v2-crds", "chart": "seldon-core-v2-crds", "version": "2.10.2", "namespace": "seldon-system"}]
    bd.apply_bundle({**{k: v.get("default") for k, v in bd.ARGUMENT_SPEC.items()}, "render_only": True,
                     "definitions": chart_delivery(charts, "https://charts.example/seldon"),
                     "render_dir": str(tmp_path), "name": "seldon-controller"}, False, False)
    found, ignored = gitops.read_rendered(str(tmp_path), gitops.DEFAULT_COMPONENTS)
    assert not ignored and sorted(found) == ["seldon", "seldon-controller"]
    assert gitops.DEFAULT_COMPONENTS["seldon-controller"]["wave"] < gitops.DEFAULT_COMPONENTS["seldon-runtimes"]["wave"]


CHARTS = [{"release": "seldon-core-v2-crds", "chart": "seldon-core-v2-crds", "version": "2.10.2", "namespace": "seldon-system",
           "values": {}},
          {"release": "seldon-core-v2-setup", "chart": "seldon-core-v2-setup", "version": "2.10.2", "namespace": "seldon-system",
           "values": {"controller": {"clusterwide": True}}}]
REPO = "https://seldonio.github.io/helm-charts/"


def test_argocd_applications_pin_the_chart_version_carry_the_values_and_are_ordered():
    project, crds, setup = chart_delivery(CHARTS, REPO, "argocd", project="seldon-charts", destination_server="https://k")
    assert project["kind"] == "AppProject" and project["spec"]["sourceRepos"] == [REPO]
    assert project["spec"]["destinations"] == [{"server": "https://k", "namespace": "seldon-system"}]
    for app, wave in ((crds, "0"), (setup, "1")):
        assert app["kind"] == "Application" and app["metadata"]["namespace"] == "argocd"
        assert app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == wave
        assert app["spec"]["project"] == "seldon-charts"
        assert app["spec"]["source"]["targetRevision"] == "2.10.2" and app["spec"]["source"]["repoURL"] == REPO
    assert crds["spec"]["source"]["chart"] == "seldon-core-v2-crds" and "valuesObject" not in crds["spec"]["source"]["helm"]
    assert setup["spec"]["source"]["helm"] == {"releaseName": "seldon-core-v2-setup",
                                               "valuesObject": {"controller": {"clusterwide": True}}}
    assert setup["spec"]["destination"]["namespace"] == "seldon-system"


def test_flux_helm_releases_depend_on_each_other():
    repo, crds, setup = chart_delivery(CHARTS, REPO, "flux")
    assert repo["kind"] == "HelmRepository" and repo["spec"]["url"] == REPO and "type" not in repo["spec"]
    assert crds["spec"]["chart"]["spec"] == {"chart": "seldon-core-v2-crds", "version": "2.10.2",
                                             "sourceRef": {"kind": "HelmRepository", "name": "seldon-core-v2-crds"}}
    assert "dependsOn" not in crds["spec"] and setup["spec"]["dependsOn"] == [{"name": "seldon-core-v2-crds"}]
    assert setup["spec"]["values"] == {"controller": {"clusterwide": True}} and setup["spec"]["targetNamespace"] == "seldon-system"
    assert chart_delivery(CHARTS, "oci://registry.example/charts", "flux")[0]["spec"]["type"] == "oci"


def test_chart_delivery_refuses_an_archive_path_an_unknown_engine_and_empty_fields():
    with pytest.raises(ValueError) as caught:
        chart_delivery([{**CHARTS[0], "version": ""}], "/srv/charts/seldon.tgz", "helm")
    message = str(caught.value)
    assert "engine 'helm'" in message and "internal chart repository" in message and "charts[0].version is empty" in message


class Served:
    """The two reads check_versions makes (discovery, then the object): a stand-in, the test's name says so."""

    def __init__(self, served: bool, obj: dict | None) -> None:
        self.served, self.obj, self.gets = served, obj, 0

    def resource(self, api_version, kind):
        return {"name": "applications", "namespaced": True} if self.served else None

    def get(self, api_version, kind, name, namespace=None):
        self.gets += 1
        return self.obj


GUARD = {"variable": "seldon_version", "requested": "2.9.0", "api_version": "argoproj.io/v1alpha1", "kind": "Application",
         "name": "seldon-core-v2-setup", "namespace": "argocd", "annotation": "mlops.platform/version", "reason": "no downgrade",
         "downgrade_flag": "seldon_allow_downgrade"}


def test_fake_client_version_guard_on_a_kind_not_served_is_nothing_live_and_on_a_live_application_refuses():
    absent = Served(False, None)
    bd.check_versions(absent, [GUARD])
    assert absent.gets == 0
    live = Served(True, {"metadata": {"annotations": {"mlops.platform/version": "2.10.2"}}})
    with pytest.raises(bd.BundleError, match=r"seldon_version 2\.9\.0 < live 2\.10\.2 \(Application argocd/seldon-core-v2-setup\)"):
        bd.check_versions(live, [GUARD])


def test_helm_release_guard_and_chart_archive_errors(tmp_path):
    from ansible_collections.mlops.platform.plugins.module_utils import versions as vs

    guard = vs.helm_release_guard({"chart": "argo-cd-9.1.9", "namespace": "argocd", "name": "argocd"},
                                  "gitops_argocd_chart_version", "9.1.8", "why", "helm rollback")
    [error] = vs.guard_errors([guard])
    assert "gitops_argocd_chart_version 9.1.8 < live 9.1.9 (Helm release argocd/argocd)" in error
    assert "gitops_argocd_chart_version_allow_downgrade: true" in error
    assert vs.guard_errors([vs.helm_release_guard({}, "v", "1.0.0", "why", "fix")]) == []
    archive = tmp_path / "argo-cd-9.1.9.tgz"
    assert vs.chart_archive_errors("", "9.1.9", "a") == []
    assert "is missing or is not the 9.1.9 chart" in vs.chart_archive_errors(str(archive), "9.1.9", "a")[0]
    archive.write_bytes(b"x")
    assert vs.chart_archive_errors(str(archive), "9.1.9", "a") == []
    assert vs.chart_archive_errors(str(archive), "9.1.8", "a")
