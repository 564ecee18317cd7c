"""Secret leak scan of every playbook, success and failure paths, at -vvv (see leak_scan.py).

Without a cluster (these run anywhere; the cluster role only looks for a cluster of its own
name that does not exist, and starts nothing):

- secrets_package.yml: a build, a rebuild in check mode with --diff, a validation failure and a
  module failure (a signing key that is not a key)
- site.yml: check mode with --diff before the cluster exists (every role predicts), a
  validation failure of the first task, and one of a role's own checks
- verify.yml and teardown.yml without a cluster

On a cluster of their own (marked `cluster`): site.yml converge, no-op, check mode with --diff
after the values changed, a failing apply, then verify.yml and teardown.yml.

Each case runs once with the default callback and once with ansible.posix.json.
"""

from __future__ import annotations

import base64
import gzip
import io
import os
import pathlib
import secrets as pysecrets
import subprocess
import tarfile

import pytest
from leak_scan import CANARY_NAMES, Canaries, LeakScan, b64_forms

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "roles" / "cluster" / "files" / "offline-cluster.sh"
LOCAL = ("-i", "inventories/local")
# Runs that are not in check mode must not bring up a cluster if something fails to fail.
NO_CLUSTER = ("-e", "cluster_create=false")


def assert_clean(run, *, rc_ok: bool | None = None) -> None:
    assert run.leaks == {}, f"canaries found (where → which): {run.leaks}\n{run.output[-3000:]}"
    assert run.loose_modes == [], run.loose_modes
    if rc_ok is True:
        assert run.rc == 0, run.output[-4000:]
    elif rc_ok is False:
        assert run.rc != 0, run.output[-4000:]


def both(scan: LeakScan, playbook: str, *args: str, rc_ok: bool, extra: dict | None = None, expect: str = ""):
    """The run with the default callback and with the JSON callback, each scanned; returns the two."""
    runs = []
    for json_report in (False, True):
        run = scan.run(playbook, *args, extra=extra, json_report=json_report)
        assert_clean(run, rc_ok=rc_ok)
        if expect and not json_report:  # the JSON report holds task results, not the recap
            assert expect in run.output, f"{expect!r} not in the output\n{run.output[-4000:]}"
        runs.append(run)
    return runs


def test_base64_forms_find_a_value_inside_any_encoding():
    value = f"canary{pysecrets.token_hex(10)}"
    for prefix in range(6):
        for suffix in range(4):
            encoded = base64.b64encode(os.urandom(prefix) + value.encode() + os.urandom(suffix)).decode()
            assert any(form in encoded for form in b64_forms(value))
    assert not any(form in base64.b64encode(b"other" * 10).decode() for form in b64_forms(value))


def test_scanner_finds_a_leak(tmp_path):
    """A playbook that prints a canary is caught in the output, the JSON report and a written file."""
    canaries = Canaries.new()
    scan = LeakScan(tmp_path, canaries)
    playbook = tmp_path / "leaky.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug: {msg: '{{ secrets_s3.secret_access_key }}'}\n"
        "    - ansible.builtin.copy: {content: '{{ secrets_registry.password | b64encode }}',"
        " dest: '{{ lookup(\"ansible.builtin.env\", \"TMPDIR\") }}/leak.txt', mode: '0600'}\n"
    )
    for json_report in (False, True):
        run = scan.run(str(playbook), "-i", "localhost,", "-c", "local",
                       "-e", "ansible_python_interpreter={{ ansible_playbook_python }}", json_report=json_report)
        assert run.rc == 0, run.output[-3000:]
        assert "s3_key" in run.leaks["output" if not json_report else "json report"]
        assert any(where.endswith("leak.txt") and names == ["registry_pw"] for where, names in run.leaks.items())


@pytest.fixture()
def offline(tmp_path) -> tuple[LeakScan, tuple[str, ...]]:
    """A scan whose cluster is an offline cluster that does not exist (nothing is started)."""
    dist, manifests = tmp_path / "dist", tmp_path / "manifests"
    scan = LeakScan(tmp_path, Canaries.new(), destinations=(dist, manifests))
    name = f"mlops-it-leak-{pysecrets.token_hex(3)}"
    args = (*LOCAL, "-e", f"cluster_provider=kwok cluster_name={name} cluster_kubeconfig={tmp_path / 'kubeconfig'}"
            f" secrets_package_dir={dist} secrets_manifests_dir={manifests}")
    return scan, args


def test_secrets_package_playbook_build_check_and_failures(offline, tmp_path):
    scan, args = offline
    both(scan, "playbooks/secrets_package.yml", *args, "-e", "secrets_package_date=20260101", rc_ok=True)
    packages = sorted(p.name for p in (tmp_path / "dist").iterdir())
    # One per namespace with secrets: the teams', monitoring's (Grafana's admin, secrets_grafana),
    # redis's (the Redis password, secrets_redis) and airflow's (secrets_airflow).
    assert packages == ["airflow-platform-secrets-20260101.tar.gz",
                        "financial-ml-platform-secrets-20260101.tar.gz",
                        "financial-mlops-pytorch-platform-secrets-20260101.tar.gz",
                        "monitoring-platform-secrets-20260101.tar.gz",
                        "redis-platform-secrets-20260101.tar.gz"], packages
    # The packages do hold the values (they are a destination): the scan would see them elsewhere.
    assert any(canaries_in_package(tmp_path / "dist" / p, scan.canaries) for p in packages)

    # Check mode with --diff after a value changed: reports a change, writes nothing.
    changed = {"secrets_registry": {**scan.canaries.platform_vars()["secrets_registry"],
                                    "password": scan.canaries.values["registry_pw"] + "x"}}
    both(scan, "playbooks/secrets_package.yml", *args, "-e", "secrets_package_date=20260101", "--check", "--diff",
         rc_ok=True, extra=changed, expect="changed=1")

    # A value the role's checks refuse (empty) and a signing key that is not a key.
    empty = {"secrets_s3": {**scan.canaries.platform_vars()["secrets_s3"], "access_key_id": ""}}
    both(scan, "playbooks/secrets_package.yml", *args, rc_ok=False, extra=empty, expect="secrets_s3.access_key_id")
    bad_key = {"secrets_package_signing_key": "-----BEGIN PRIVATE KEY-----\n"
               + scan.canaries.values["signing_key"][::-1] + "\n-----END PRIVATE KEY-----\n"}
    scan.canaries.values["bad_key"] = scan.canaries.values["signing_key"][::-1]
    both(scan, "playbooks/secrets_package.yml", *args, rc_ok=False, extra=bad_key, expect="signing_key")


def canaries_in_package(path: pathlib.Path, canaries: Canaries) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(path.read_bytes()))) as tar:
        text = "".join(tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile())
    return canaries.found_in(text)


def test_site_check_mode_with_diff_before_the_cluster_exists(offline):
    scan, args = offline
    runs = both(scan, "playbooks/site.yml", *args, "--check", "--diff", rc_ok=True,
                expect="Would create or start the offline cluster")
    # Every role got as far as predicting its objects, Secrets included (values hidden).
    assert "Secret/financial-mlops-pytorch/ml-platform" in runs[0].output


def test_site_validation_failures(offline):
    scan, args = offline
    canary = scan.canaries.values
    # Values of the wrong type where a secret belongs: the first task (validate_roles) fails
    # before anything changes. (Conversions it accepts, a list for a string, are warned about.)
    wrong_types = {"secrets_s3": canary["s3_key"], "mlflow_database": [canary["db_pw"]],
                   "mlflow_admin_password": [canary["mlflow_pw"]], "storage_access_key_id": [canary["s3_id"]]}
    both(scan, "playbooks/site.yml", *args, *NO_CLUSTER, rc_ok=False, extra=wrong_types,
         expect="argument 'secrets_s3' is of type str and we were unable to convert to dict")
    # A role's own checks (in check mode, so no cluster is needed) refusing a secret value: a
    # Flask key too short, itself a canary (14 characters, 12 of them random).
    canary["short_flask"] = f"cf{pysecrets.token_hex(6)}"
    both(scan, "playbooks/site.yml", *args, "--check", rc_ok=False, extra={"mlflow_flask_secret_key": canary["short_flask"]},
         expect="mlflow_flask_secret_key: needs 16+ characters")
    # The secrets role's check of empty values, with the roles before it satisfied.
    empty = {"secrets_registry": {**scan.canaries.platform_vars()["secrets_registry"], "password": ""}}
    both(scan, "playbooks/site.yml", *args, "--check", rc_ok=False, extra=empty, expect="secrets_registry.password")


def test_verify_and_teardown_without_a_cluster(offline):
    scan, args = offline
    both(scan, "playbooks/verify.yml", *args, *NO_CLUSTER, rc_ok=False)
    both(scan, "playbooks/teardown.yml", *args, *NO_CLUSTER, rc_ok=True)


# ------------------------------------------------------------------------- on a cluster of its own

NAME = "mlops-it-leaks"


@pytest.fixture(scope="module")
def leak_cluster(tmp_path_factory):
    """An offline cluster of its own (like test_platform_lifecycle.py), deleted afterwards."""
    tmp = tmp_path_factory.mktemp("leak-cluster")
    kubeconfig = tmp / "kubeconfig"
    env = {**os.environ, "MLOPS_CLUSTER_NAME": NAME, "MLOPS_KUBECONFIG": str(kubeconfig), "MLOPS_CLUSTER_NODES": "1"}
    up = subprocess.run([str(CLUSTER), "up"], env=env, capture_output=True, text=True, check=False)
    assert up.returncode == 0, up.stderr[-3000:]
    yield tmp, kubeconfig
    subprocess.run([str(CLUSTER), "down"], env=env, capture_output=True, check=False)


def cache_dir() -> pathlib.Path:
    settings = dict(line.split("=", 1) for line in subprocess.run(
        [str(CLUSTER), "env"], capture_output=True, text=True, check=True).stdout.split())
    return pathlib.Path(settings["MLOPS_CACHE_DIR"])


@pytest.mark.cluster
def test_every_playbook_on_a_cluster(leak_cluster, tmp_path):
    _tmp, kubeconfig = leak_cluster
    dist, manifests = tmp_path / "dist", tmp_path / "manifests"
    # The real cache (the cluster's binaries); its logs and the kubeconfig are scanned, etcd is not.
    scan = LeakScan(tmp_path, Canaries.new(), cache_dir=cache_dir(), destinations=(dist, manifests))
    args = (*LOCAL, "-e", f"cluster_provider=kwok cluster_name={NAME} cluster_kubeconfig={kubeconfig}"
            f" secrets_package_dir={dist} secrets_manifests_dir={manifests}")

    converge = scan.run("playbooks/site.yml", *args)
    assert_clean(converge, rc_ok=True)
    noop = scan.run("playbooks/site.yml", *args, json_report=True)
    assert_clean(noop, rc_ok=True)
    assert noop.report["stats"]["localhost"]["changed"] == 0

    # Check mode with --diff after every value changed: Secrets reported as changing, values hidden.
    rotated = Canaries.new()
    rotated.values.update({f"old_{k}": v for k, v in scan.canaries.values.items() if k in (*CANARY_NAMES, "airflow_fernet")})
    scan.canaries = rotated
    runs = both(scan, "playbooks/site.yml", *args, "--check", "--diff", rc_ok=True)
    assert "Secret/financial-ml/ml-platform" in runs[0].output
    assert runs[1].report["stats"]["localhost"]["changed"] >= 1

    # A failing apply: the secrets role's database Secret into a namespace that does not exist.
    absent = {"secrets_mlflow_database": {"enabled": True, "name": "mlflow-database-secret",
                                          "namespace": "it-leak-absent", "username": "mlflow",
                                          "password": scan.canaries.values["db_pw"], "host": "db.example",
                                          "port": 5432, "database": "mlflow", "driver": "psycopg2",
                                          "scheme": "postgresql+psycopg2", "connection_url": ""}}
    both(scan, "playbooks/site.yml", *args, rc_ok=False, extra=absent, expect="it-leak-absent")

    both(scan, "playbooks/verify.yml", *args, rc_ok=True)
    both(scan, "playbooks/secrets_package.yml", *args, rc_ok=True)
    both(scan, "playbooks/teardown.yml", *args, rc_ok=True)
