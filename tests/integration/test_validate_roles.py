"""site.yml checks every role's variables in its first task; a role used alone still validates itself.

No cluster is needed: a wrong variable must stop the play before the cluster role runs.
"""

from __future__ import annotations

from ansible_run import recap, run_role


def test_site_names_every_wrong_variable_of_every_role_before_anything_runs(ansible_playbook):
    run = ansible_playbook("playbooks/site.yml", "-i", "inventories/local",
                           "-e", "cluster_kwok_nodes=two seldon_wait=notabool",
                           "-e", '{"mlflow_quota": "{{ quota_from_a_missing_vault }}"}')
    assert run.returncode != 0
    said = run.stdout + run.stderr
    assert "Validation of the role arguments failed, nothing was changed" in said
    assert "cluster: argument 'cluster_kwok_nodes' is of type str and we were unable to convert to int" in said
    assert "seldon: argument 'seldon_wait' is of type str and we were unable to convert to bool" in said
    assert "mlflow: mlflow_quota: 'quota_from_a_missing_vault' is undefined" in said
    # The first task failed and no other ran: not even the cluster role's checks.
    assert recap(run.stdout) == {"ok": 0, "changed": 0, "unreachable": 0, "failed": 1}
    assert "TASK [mlops.platform.cluster" not in run.stdout


def test_site_validation_passes_on_the_local_inventory(ansible_playbook):
    run = ansible_playbook("playbooks/site.yml", "-i", "inventories/local", "--tags", "always")
    assert run.returncode == 0, run.stdout[-3000:]
    assert recap(run.stdout) == {"ok": 1, "changed": 0, "unreachable": 0, "failed": 0}


def test_a_role_used_alone_still_validates_its_arguments(tmp_path):
    run = run_role("mlops.platform.team_isolation", tmp_path, {"team_isolation_prune": "maybe", "teams": []})
    assert run.returncode != 0
    assert "Validating arguments against arg spec 'main'" in run.stdout
    assert "argument 'team_isolation_prune' is of type str and we were unable to convert to bool" in run.stdout + run.stderr


def test_cluster_settings_the_spec_cannot_check_fail_before_the_cluster_is_touched(ansible_playbook):
    run = ansible_playbook("playbooks/site.yml", "-i", "inventories/local",
                           "-e", "cluster_version_min=1.40 cluster_name=mlops-never-created")
    assert run.returncode != 0
    assert "cluster: invalid settings" in run.stdout + run.stderr and "(got '1.40' and '1.33')" in run.stdout + run.stderr
    assert "TASK [mlops.platform.cluster : Fail on invalid cluster settings]" in run.stdout
    assert "offline cluster answers" not in run.stdout and "TASK [mlops.platform.team_isolation" not in run.stdout


def test_grafanas_admin_password_cannot_be_a_default_or_short(tmp_path):
    """The secrets role refuses a well-known or short Grafana password before any API call (no cluster here)."""
    base = {"teams": [], "secrets_kubeconfig": str(tmp_path / "no-cluster"),
            "secrets_grafana": {"enabled": True, "name": "grafana-admin", "namespace": "monitoring", "admin_user": "admin"}}
    for password in ("prom-operator", "short-pw"):
        variables = {**base, "secrets_grafana": {**base["secrets_grafana"], "admin_password": password}}
        run = run_role("mlops.platform.secrets", tmp_path, variables)
        assert run.returncode != 0
        said = run.stdout + run.stderr
        assert "secrets_grafana.admin_password must have 12+ characters and not be a default" in said
        assert password not in said
    ok = {**base, "secrets_grafana": {**base["secrets_grafana"], "admin_password": "a-long-vaulted-password"}}
    run = run_role("mlops.platform.secrets", tmp_path, ok, "--check")
    assert "secrets_grafana.admin_password must" not in run.stdout + run.stderr
