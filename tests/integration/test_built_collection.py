"""A user's own playbook against the built and installed collection (not this checkout).

The collection is built, installed offline into a clean collections path (tests/conftest.py,
`installed_collection`), and a playbook in a directory outside the checkout uses two roles
alone (`mlops.platform.team_isolation`, `mlops.platform.secrets`) and the
`mlops.platform.secret_package` module against the offline cluster: it passes, a second run
changes nothing, and what it made is read back from the API server and the disk.

Runs in the gate after the cluster is up, or alone:
`make cluster-up && python -m pytest -q tests/integration/test_built_collection.py`.
"""

from __future__ import annotations

import json
import re
import secrets as pysecrets
import stat
import sys
import time

import pytest

pytestmark = pytest.mark.cluster

TEAM = "it-built-alpha"
INSTANCE = "it-built"

USER_PLAYBOOK = """\
- name: One team's namespace, platform secrets and secret package, from the installed collection
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: mlops.platform.team_isolation
    - role: mlops.platform.secrets
  tasks:
    - name: Build the team's package
      mlops.platform.secret_package:
        state: built
        project: "{{ team_name }}"
        scope: app
        date: "20260101"
        namespace: "{{ team_name }}"
        team: "{{ team_name }}"
        environments: [production]
        secrets:
          - name: app-token
            data:
              TOKEN: "{{ app_token }}"
        dest: "{{ playbook_dir }}/dist"
      register: package

    - name: Extract it where the team keeps its manifests
      mlops.platform.secret_package:
        state: extracted
        src: "{{ package.path }}"
        dest: "{{ playbook_dir }}/manifests/{{ team_name }}"
        namespace: "{{ team_name }}"
"""


def user_vars(kubeconfig: str, canary: dict[str, str]) -> dict:
    return {
        "ansible_python_interpreter": sys.executable,
        "team_name": TEAM,
        "teams": [{"name": TEAM, "serving": True, "secrets": ["ml-platform"]}],
        "team_isolation_instance": INSTANCE,
        "team_isolation_kubeconfig": kubeconfig,
        "secrets_kubeconfig": kubeconfig,
        "secrets_s3": {"access_key_id": canary["s3_id"], "secret_access_key": canary["s3_key"],
                       "region": "us-east-1", "endpoint_url": "http://minio.minio.svc.cluster.local:9000",
                       "rclone_provider": "Minio"},
        "app_token": canary["app_token"],
    }


def run_user_playbook(installed, project, variables: dict):
    vars_file = project / "vars.json"
    vars_file.write_text(json.dumps(variables))
    vars_file.chmod(0o600)
    # -vv prints "task path:" for every task: where each role task was read from.
    return installed.run("ansible-playbook", "-vv", "-i", "localhost,", "-e", f"@{vars_file}", "site.yml", cwd=project)


def task_paths(output: str) -> set[str]:
    return {match.rsplit(":", 1)[0] for match in re.findall(r"^task path: (\S+)$", output, flags=re.M)}


def recap_counts(output: str) -> dict[str, int]:
    match = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output)
    assert match, output[-3000:]
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups()), strict=True))


@pytest.fixture()
def project(installed_collection, api_client, tmp_path):
    """A user's project directory outside the checkout; the team namespace is deleted afterwards."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(api_client)
    directory = tmp_path / "my-project"
    directory.mkdir()
    (directory / "site.yml").write_text(USER_PLAYBOOK)
    yield directory
    try:
        core.delete_namespace(TEAM)
    except ApiException as exc:
        assert exc.status == 404
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            core.read_namespace(TEAM)
        except ApiException:
            break
        time.sleep(0.5)


def test_user_playbook_with_the_installed_roles_and_module_is_idempotent(
    installed_collection, kubeconfig, api_client, project
):
    from kubernetes import client

    canary = {k: f"canary{k}{pysecrets.token_hex(8)}" for k in ("s3_id", "s3_key", "app_token")}
    variables = user_vars(kubeconfig, canary)

    first = run_user_playbook(installed_collection, project, variables)
    out = first.stdout + first.stderr
    assert first.returncode == 0, out[-4000:]
    counts = recap_counts(out)
    assert counts["failed"] == 0 and counts["changed"] >= 3, counts
    # Every task came from the user's playbook or the installed copy, none from this checkout.
    paths = task_paths(out)
    roles = installed_collection.path / "roles"
    assert {p for p in paths if not p.startswith((f"{roles}/", f"{project}/"))} == set(), paths
    assert any(p.startswith(f"{roles}/team_isolation/") for p in paths)
    assert any(p.startswith(f"{roles}/secrets/") for p in paths)

    second = run_user_playbook(installed_collection, project, variables)
    out2 = second.stdout + second.stderr
    assert second.returncode == 0, out2[-4000:]
    assert recap_counts(out2)["changed"] == 0, out2[-4000:]

    for value in canary.values():
        assert value not in out and value not in out2

    core = client.CoreV1Api(api_client)
    namespace = core.read_namespace(TEAM)
    assert namespace.metadata.labels["mlops.platform/instance"] == INSTANCE
    assert namespace.metadata.labels["app.kubernetes.io/managed-by"] == "mlops.platform"
    secret = core.read_namespaced_secret("ml-platform", TEAM)
    assert secret.metadata.labels["mlops.platform/team"] == TEAM
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(secret.data)

    package = project / "dist" / f"{TEAM}-app-secrets-20260101.tar.gz"
    extracted = project / "manifests" / TEAM
    assert stat.S_IMODE(package.stat().st_mode) == 0o600
    assert stat.S_IMODE(extracted.stat().st_mode) == 0o700
    assert stat.S_IMODE((extracted / "base" / "app-token.yaml").stat().st_mode) == 0o600
    assert (extracted / "overlays" / "production" / "kustomization.yaml").is_file()
