# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Helm charts in GitOps mode: what a role would install with Helm, as objects the engine installs instead.

Argo CD: an AppProject that may use only the charts' repository and namespace, and one Application per chart
with a Helm source (repository URL, chart name, the pinned version as targetRevision, the role's values as
valuesObject); the charts are ordered by sync waves. Flux: a HelmRepository and one HelmRelease per chart,
each depending on the one before. The role renders them with k8s_bundle (``render_only``), so they land in
the GitOps tree like any other object.
"""

from __future__ import annotations

import re

ENGINES = ("argocd", "flux")
LABELS = {"app.kubernetes.io/managed-by": "mlops.platform", "app.kubernetes.io/part-of": "mlops-platform"}
VERSION_ANNOTATION = "mlops.platform/version"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def chart_errors(charts: list[dict], repo_url: str, engine: str) -> list[str]:
    """Problems of the input, each naming the field and the fix (nothing rendered when there is one)."""
    errors = []
    if engine not in ENGINES:
        errors.append(f"engine {engine!r} is not one of {', '.join(ENGINES)} (gitops_engine)")
    if not re.match(r"^(https?|oci)://", repo_url or ""):
        errors.append(f"chart repository URL {repo_url!r}: the GitOps engine fetches the charts itself, so it needs an "
                      "http(s):// or oci:// chart repository (an archive on the control node cannot be used); "
                      "point it at the internal chart repository of an air-gapped site")
    for index, chart in enumerate(charts):
        for field in ("release", "chart", "version", "namespace"):
            if not chart.get(field):
                errors.append(f"charts[{index}].{field} is empty")
        if chart.get("release") and not _DNS_LABEL.match(chart["release"]):
            errors.append(f"charts[{index}].release {chart['release']!r} is not a DNS label")
    return errors


def chart_delivery(charts: list[dict], repo_url: str, engine: str = "argocd", project: str = "",
                   argocd_namespace: str = "argocd", flux_namespace: str = "flux-system",
                   destination_server: str = "https://kubernetes.default.svc", component: str = "") -> list[dict]:
    """The objects that install ``charts`` (in order: each after the one before) through the engine.

    A chart: ``{release, chart, version, namespace, values}``. ``project``: the Argo CD AppProject made
    for them (default: the first release's name). Raises ValueError naming every problem."""
    errors = chart_errors(charts, repo_url, engine)
    if errors:
        raise ValueError("; ".join(errors))
    labels = {**LABELS, **({"app.kubernetes.io/component": component} if component else {})}
    if engine == "flux":
        return _flux(charts, repo_url, flux_namespace, labels)
    project = project or charts[0]["release"]
    namespaces = sorted({c["namespace"] for c in charts})
    out = [{"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
            "metadata": {"name": project, "namespace": argocd_namespace, "labels": labels,
                         "annotations": {"argocd.argoproj.io/sync-wave": "-1"}},
            "spec": {"description": f"Helm charts {', '.join(c['chart'] for c in charts)} from {repo_url}",
                     "sourceRepos": [repo_url],
                     "destinations": [{"server": destination_server, "namespace": n} for n in namespaces],
                     # Charts create CRDs, ClusterRoles and webhooks.
                     "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}}]
    for wave, chart in enumerate(charts):
        source = {"repoURL": repo_url, "chart": chart["chart"], "targetRevision": chart["version"],
                  "helm": {"releaseName": chart["release"]}}
        if chart.get("values"):
            source["helm"]["valuesObject"] = chart["values"]
        out.append({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                    "metadata": {"name": chart["release"], "namespace": argocd_namespace, "labels": labels,
                                 "annotations": {"argocd.argoproj.io/sync-wave": str(wave),
                                                 VERSION_ANNOTATION: chart["version"]},
                                 "finalizers": ["resources-finalizer.argocd.argoproj.io"]},
                    "spec": {"project": project, "source": source,
                             "destination": {"server": destination_server, "namespace": chart["namespace"]},
                             "syncPolicy": {"automated": {"prune": True, "selfHeal": True},
                                            "syncOptions": ["CreateNamespace=true", "ServerSideApply=true"],
                                            "retry": {"limit": 5, "backoff": {"duration": "5s", "factor": 2,
                                                                              "maxDuration": "1m"}}}}})
    return out


def _flux(charts: list[dict], repo_url: str, namespace: str, labels: dict) -> list[dict]:
    name = charts[0]["release"]
    repository = {"interval": "1h", "url": repo_url}
    if repo_url.startswith("oci://"):
        repository["type"] = "oci"
    out = [{"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
            "metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": repository}]
    before = None
    for chart in charts:
        spec = {"interval": "10m", "releaseName": chart["release"], "targetNamespace": chart["namespace"],
                "storageNamespace": chart["namespace"],
                "chart": {"spec": {"chart": chart["chart"], "version": chart["version"],
                                   "sourceRef": {"kind": "HelmRepository", "name": name}}},
                "install": {"createNamespace": True, "crds": "CreateReplace"},
                "upgrade": {"crds": "CreateReplace"}}
        if chart.get("values"):
            spec["values"] = chart["values"]
        if before:
            spec["dependsOn"] = [{"name": before}]
        out.append({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                    "metadata": {"name": chart["release"], "namespace": namespace, "labels": labels,
                                 "annotations": {VERSION_ANNOTATION: chart["version"]}},
                    "spec": spec})
        before = chart["release"]
    return out
