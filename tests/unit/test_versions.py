"""The upgrade guard: version ordering (numbers, v-prefixes, variants, pre-releases), image tags, Helm chart
fields, the refusal messages, and the live version k8s_bundle reads from an object."""

from __future__ import annotations

import pytest
from ansible_collections.mlops.platform.plugins.filter.seldon import seldon_chart_guard
from ansible_collections.mlops.platform.plugins.module_utils import versions as vs
from ansible_collections.mlops.platform.plugins.module_utils.bundle import annotated, live_version


@pytest.mark.parametrize(("older", "newer"), [
    ("2.9", "2.10"),
    ("2.9.9", "2.10.0"),
    ("2.10.2", "2.22.1"),
    ("v2.22.1", "2.22.2"),
    ("2.22.1", "v3.0.0"),
    ("ghcr.io/mlflow/mlflow:v2.22.1-full", "ghcr.io/mlflow/mlflow:v3.17.2-full"),
    ("docker.io/library/postgres:15.10-alpine", "docker.io/library/postgres:16.6-alpine"),
    ("postgres:16.4-alpine", "postgres:16.6-alpine@sha256:" + "a" * 64),
    ("registry.local:5000/postgres:16.4", "registry.local:5000/postgres:16.10"),
    ("2.10.0-rc.1", "2.10.0"),
    ("2.10.0-rc.1", "2.10.0-rc.2"),
    ("2.10.0-alpha", "2.10.0-beta.1"),
    ("3.0.0rc1", "3.0.0"),
    ("1.9.99", "1.10"),
])
def test_versions_order_as_numbers(older, newer):
    assert vs.compare(older, newer) == -1
    assert vs.compare(newer, older) == 1


@pytest.mark.parametrize(("left", "right"), [
    ("16.6", "16.6.0"), ("v2.10.2", "2.10.2"), ("postgres:16.6-alpine", "16.6"),
    ("ghcr.io/mlflow/mlflow:v3.17.2-full", "3.17.2"), ("16.6-bookworm", "16.6-alpine"),
])
def test_variants_prefixes_and_trailing_zeros_do_not_count(left, right):
    assert vs.compare(left, right) == 0


@pytest.mark.parametrize("text", ["latest", "ghcr.io/mlflow/mlflow:latest", "registry.local:5000/mlflow", "", None,
                                  "sha-1f2e3d"])
def test_text_without_a_version_is_not_ordered(text):
    assert vs.parse(text) is None
    assert vs.compare(text, "1.0") is None


def test_image_tags_and_chart_fields():
    assert vs.image_tag("registry.local:5000/team/mlflow:v3.17.2-full@sha256:" + "b" * 64) == "v3.17.2-full"
    assert vs.image_tag("registry.local:5000/team/mlflow") == ""
    assert vs.image_tag("2.10.2") == "2.10.2"
    assert vs.shown("ghcr.io/mlflow/mlflow:v3.17.2-full") == "3.17.2-full"
    assert vs.helm_chart_version("seldon-core-v2-setup-2.10.2") == "2.10.2"
    assert vs.helm_chart_version("seldon-core-v2-crds-v2.9.0-rc.1") == "v2.9.0-rc.1"
    assert vs.helm_chart_version("seldon-core-v2-setup") == ""


PG = {"variable": "mlflow_postgresql_image", "source": "StatefulSet mlflow/mlflow-postgresql",
      "reason": "PostgreSQL data cannot be downgraded in place", "downgrade_flag": "mlflow_allow_downgrade",
      "major_flag": "mlflow_postgresql_major_upgrade", "major_procedure": "dump with pg_dumpall and restore"}


def test_an_older_version_is_refused_naming_the_variable_both_versions_and_the_fix():
    errors = vs.guard_errors([{**PG, "requested": "postgres:16.4-alpine", "live": "postgres:16.6-alpine"}])
    assert errors == [
        "mlflow_postgresql_image 16.4-alpine < live 16.6-alpine (StatefulSet mlflow/mlflow-postgresql): PostgreSQL data"
        " cannot be downgraded in place; nothing was changed. Fix: set mlflow_postgresql_image to 16.6-alpine or newer,"
        " or restore from a backup taken before the upgrade and set mlflow_allow_downgrade: true for that run"]
    assert vs.guard_errors([{**PG, "requested": "postgres:16.4", "live": "postgres:16.6", "allow_downgrade": True}]) == []


def test_a_major_postgresql_upgrade_needs_its_opt_in_and_a_major_downgrade_is_a_downgrade():
    guard = {**PG, "requested": "postgres:16.6-alpine", "live": "postgres:15.10-alpine"}
    [error] = vs.guard_errors([guard])
    assert error.startswith("mlflow_postgresql_image 16.6-alpine is a major upgrade from live 15.10-alpine")
    assert "dump with pg_dumpall and restore" in error and "mlflow_postgresql_major_upgrade: true" in error
    assert vs.guard_errors([{**guard, "allow_major_upgrade": True}]) == []
    # A minor upgrade needs nothing; without a major_flag a major upgrade needs nothing either.
    assert vs.guard_errors([{**PG, "requested": "postgres:16.6", "live": "postgres:16.4"}]) == []
    assert vs.guard_errors([{**guard, "major_flag": None}]) == []
    [down] = vs.guard_errors([{**PG, "requested": "postgres:15.10", "live": "postgres:16.6", "allow_major_upgrade": True}])
    assert "15.10 < live 16.6" in down


def test_nothing_live_the_same_version_or_an_unordered_tag_passes():
    assert vs.guard_errors([
        {**PG, "requested": "postgres:16.6", "live": ""},
        {**PG, "requested": "postgres:16.6", "live": None},
        {**PG, "requested": "postgres:16.6", "live": "postgres:16.6.0"},
        {**PG, "requested": "postgres:nightly", "live": "postgres:16.6"},
    ]) == []


def test_every_refusal_is_reported_at_once():
    errors = vs.guard_errors([{**PG, "requested": "1.0", "live": "2.0"}, {**PG, "variable": "other", "requested": "1", "live": "3"}])
    assert [e.split(" ")[0] for e in errors] == ["mlflow_postgresql_image", "other"]


def test_the_seldon_guard_reads_the_release_chart_version():
    status = {"name": "seldon-core-v2-setup", "namespace": "seldon-system", "chart": "seldon-core-v2-setup-2.10.2"}
    [error] = vs.guard_errors([seldon_chart_guard(status, "2.9.0")])
    assert error.startswith("seldon_version 2.9.0 < live 2.10.2 (Helm release seldon-system/seldon-core-v2-setup)")
    assert "helm rollback" in error and "seldon_allow_downgrade: true" in error
    assert vs.guard_errors([seldon_chart_guard(status, "2.9.0", True)]) == []
    assert vs.guard_errors([seldon_chart_guard(status, "2.11.0")]) == []
    assert "live" not in seldon_chart_guard({}, "2.10.2")


def test_live_version_from_a_container_image_or_an_annotation():
    deployment = {"metadata": {"annotations": {"mlops.platform/version": "2.10.2"}},
                  "spec": {"template": {"spec": {"initContainers": [{"name": "db-upgrade", "image": "m:v1.0"}],
                                                 "containers": [{"name": "mlflow", "image": "m:v3.17.2-full"}]}}}}
    assert live_version(deployment, {"container": "mlflow"}) == "m:v3.17.2-full"
    assert live_version(deployment, {"container": "db-upgrade"}) == "m:v1.0"
    assert live_version(deployment, {"container": "other"}) == ""
    assert live_version(deployment, {"annotation": "mlops.platform/version"}) == "2.10.2"
    assert live_version({"metadata": {}}, {"annotation": "mlops.platform/version"}) == ""
    assert live_version(None, {"container": "mlflow"}) == ""


def test_annotations_are_added_to_copies():
    original = [{"kind": "ConfigMap", "metadata": {"name": "a", "annotations": {"keep": "1"}}}]
    out = annotated(original, {"mlops.platform/version": "2.10.2"})
    assert out[0]["metadata"]["annotations"] == {"keep": "1", "mlops.platform/version": "2.10.2"}
    assert original[0]["metadata"]["annotations"] == {"keep": "1"}
