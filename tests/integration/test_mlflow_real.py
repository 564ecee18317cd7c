"""The mlflow role's configuration, proven by a real MLflow.

The role renders its objects (``tasks_from: render``, no cluster needed) and its Secrets (the role
variable ``__mlflow_secret_objects``, what its apply task sends); the test takes the
Deployment's init containers and server container exactly as rendered, resolves their
environment from the rendered Secrets the way the kubelet does (``resolve_container``), writes
the mounted Secret files, and runs them on loopback: ``mlflow db upgrade`` and ``mlflow server``
from .venv-mlflow (scripts/mlflow-env.sh) against Debian's PostgreSQL and a moto S3 server.
The MLflow client then logs a run with a parameter, a metric and an artifact, registers a model
version and reads everything back; the artifact is also read from the bucket with boto3.
A wrong database URL and an unreachable S3 endpoint fail with messages naming the setting.
"""

from __future__ import annotations

import base64
import json
import pathlib
import secrets
import subprocess
import textwrap
import urllib.error
import urllib.request

import pytest
from ansible_collections.mlops.platform.plugins.module_utils.mlflow import resolve_container
from servers import PostgresServer, free_port, stop, wait_http

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUCKET = "it-mlflow-artifacts"


def render(ansible_playbook, tmp: pathlib.Path, variables: dict) -> dict:
    """The role's rendered objects and Secrets (decoded), written 0600 and read back."""
    out = tmp / "rendered.json"
    vars_file = tmp / "vars.json"
    vars_file.write_text(json.dumps(variables))
    vars_file.chmod(0o600)
    playbook = tmp / "render.yml"
    playbook.write_text(textwrap.dedent(f"""\
        - hosts: localhost
          gather_facts: false
          tasks:
            - name: Render the mlflow role's objects
              ansible.builtin.include_role:
                name: mlops.platform.mlflow
                tasks_from: render
                public: true  # __mlflow_secret_objects is a role variable (vars/main.yml)
              vars:
                __mlflow_render_only: true
            - name: Save them
              ansible.builtin.copy:
                dest: {out}
                content: "{{{{ {{'objects': __mlflow_objects, 'secrets': __mlflow_secret_objects}} | to_json }}}}"
                mode: "0600"
              no_log: true
        """))
    proc = ansible_playbook(playbook, "-i", "localhost,", "-c", "local",
                            "-e", "ansible_python_interpreter={{ ansible_playbook_python }}", "-e", f"@{vars_file}")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    rendered = json.loads(out.read_text())
    rendered["secret_data"] = {
        s["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in s["data"].items()} for s in rendered["secrets"]
    }
    return rendered


def role_vars(tmp: pathlib.Path, postgres: PostgresServer, moto_url: str, port: int, **overrides) -> dict:
    """Inventory-style settings: only addresses differ from a cluster (loopback, test credentials)."""
    creds = {
        "secrets_mlflow": {"tracking_username": "mlflow-admin", "tracking_password": secrets.token_urlsafe(16),
                           "flask_server_secret_key": secrets.token_hex(16)},
        "secrets_s3": {"access_key_id": "testing", "secret_access_key": "testing-secret"},
        "mlflow_database": {"username": postgres.user, "password": postgres.password, "host": "127.0.0.1",
                            "port": postgres.port, "database": "mlflow", "driver": "psycopg2",
                            "scheme": "postgresql+psycopg2", "connection_url": ""},
        "mlops_storage": {"backend": "minio", "endpoint_url": moto_url, "region": "us-east-1",
                          "buckets": {"mlflow-artifacts": BUCKET}},
        "mlflow_listen_host": "127.0.0.1",
        "mlflow_port": port,
        "mlflow_auth_config_dir": str(tmp / "auth"),
    }
    creds.update(overrides)
    return creds


def pod_process(rendered: dict, container: dict, tmp: pathlib.Path, mlflow_bin: pathlib.Path):
    """(argv, env) of one rendered container, with its Secret volumes written where they are mounted."""
    deployment = next(o for o in rendered["objects"] if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        secret = volumes[mount["name"]].get("secret")
        if not secret:
            continue
        target = pathlib.Path(mount["mountPath"])
        assert tmp in target.parents, f"{target} would be written outside the test directory"
        target.mkdir(parents=True, exist_ok=True)
        for item in secret["items"]:
            path = target / item["path"]
            path.write_text(rendered["secret_data"][secret["secretName"]][item["key"]])
            path.chmod(0o600)
    base = {"PATH": f"{mlflow_bin}:/usr/bin:/bin", "HOME": str(tmp), "LANG": "C.UTF-8"}
    argv, env = resolve_container(container, rendered["secret_data"], base)
    env["HOME"] = str(tmp)  # the pod's HOME is an emptyDir at /tmp
    if argv[0] == "python":  # the image's python is the one MLflow is installed in
        argv[0] = str(mlflow_bin / "python")
    return argv, env


def run_init(rendered, tmp, mlflow_bin, name: str) -> subprocess.CompletedProcess:
    deployment = next(o for o in rendered["objects"] if o["kind"] == "Deployment")
    container = next(c for c in deployment["spec"]["template"]["spec"]["initContainers"] if c["name"] == name)
    argv, env = pod_process(rendered, container, tmp, mlflow_bin)
    return subprocess.run(argv, env=env, cwd=tmp, capture_output=True, text=True, timeout=180, check=False)


CLIENT = textwrap.dedent("""\
    import json, os, sys, tempfile
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_experiment("it-real")
    with mlflow.start_run() as run:
        mlflow.log_param("alpha", "0.5")
        mlflow.log_metric("rmse", 0.25)
        mlflow.log_text("weights-v1", "model/weights.txt")
    client = MlflowClient()
    client.create_registered_model("it-model")
    version = client.create_model_version("it-model", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    got = client.get_run(run.info.run_id)
    mv = client.get_model_version("it-model", version.version)
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="model/weights.txt",
                                                dst_path=tempfile.mkdtemp())
    print(json.dumps({
        "run_id": run.info.run_id,
        "params": got.data.params,
        "metrics": got.data.metrics,
        "artifacts": [a.path for a in client.list_artifacts(run.info.run_id, "model")],
        "artifact": open(local).read(),
        "artifact_uri": got.info.artifact_uri,
        "model_version": mv.version,
        "model_run_id": mv.run_id,
        "model_source": mv.source,
    }))
""")


def test_real_mlflow_logs_and_registers(tmp_path, ansible_playbook, mlflow_bin, moto, postgres):
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing-secret")
    s3.create_bucket(Bucket=BUCKET)
    port = free_port()
    variables = role_vars(tmp_path, postgres, moto.url, port)
    rendered = render(ansible_playbook, tmp_path, variables)

    deployment = next(o for o in rendered["objects"] if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["db-upgrade", "check-artifacts"]

    for name in ("db-upgrade", "check-artifacts"):
        done = run_init(rendered, tmp_path, mlflow_bin, name)
        assert done.returncode == 0, f"{name}: {done.stdout[-2000:]}{done.stderr[-3000:]}"

    argv, env = pod_process(rendered, pod["containers"][0], tmp_path, mlflow_bin)
    assert argv[:2] == ["mlflow", "server"] and "--app-name" in argv
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", timeout=240, proc=server)

        # Basic auth is on: no credentials, no access.
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(url + "/api/2.0/mlflow/experiments/search?max_results=1", timeout=10)
        assert denied.value.code == 401

        admin = variables["secrets_mlflow"]
        client_env = {"PATH": env["PATH"], "HOME": str(tmp_path), "MLFLOW_TRACKING_URI": url,
                      "MLFLOW_TRACKING_USERNAME": admin["tracking_username"],
                      "MLFLOW_TRACKING_PASSWORD": admin["tracking_password"]}
        done = subprocess.run([str(mlflow_bin / "python"), "-c", CLIENT], env=client_env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-4000:] + (tmp_path / "server.log").read_text()[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        stop(server)
        log.close()

    assert result["params"] == {"alpha": "0.5"}
    assert result["metrics"] == {"rmse": 0.25}
    assert result["artifacts"] == ["model/weights.txt"]
    assert result["artifact"] == "weights-v1"
    assert result["artifact_uri"].startswith("mlflow-artifacts:/")
    assert result["model_version"] == "1" and result["model_run_id"] == result["run_id"]

    # The artifact is in the bucket the role pointed the server at, under mlflow/.
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="mlflow/").get("Contents", [])]
    artifact_keys = [k for k in keys if k.endswith(f"{result['run_id']}/artifacts/model/weights.txt")]
    assert len(artifact_keys) == 1, keys
    assert s3.get_object(Bucket=BUCKET, Key=artifact_keys[0])["Body"].read() == b"weights-v1"


def test_wrong_database_url_names_the_setting(tmp_path, ansible_playbook, mlflow_bin, moto, postgres):
    variables = role_vars(tmp_path, postgres, moto.url, free_port())
    variables["mlflow_database"] = {**variables["mlflow_database"], "password": "not-the-password"}
    rendered = render(ansible_playbook, tmp_path, variables)
    done = run_init(rendered, tmp_path, mlflow_bin, "db-upgrade")
    assert done.returncode != 0
    assert "MLFLOW_BACKEND_STORE_URI" in done.stderr
    assert "password authentication failed" in done.stderr
    assert "not-the-password" not in done.stderr


def test_unreachable_s3_endpoint_names_the_setting(tmp_path, ansible_playbook, mlflow_bin, postgres):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    rendered = render(ansible_playbook, tmp_path, role_vars(tmp_path, postgres, closed, free_port()))
    done = run_init(rendered, tmp_path, mlflow_bin, "check-artifacts")
    assert done.returncode != 0
    assert f"MLFLOW_S3_ENDPOINT_URL={closed} cannot be reached" in done.stderr
