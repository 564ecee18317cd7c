"""The processing role's Airflow DAGs, run by the pinned Apache Airflow against a real MLflow.

Airflow is the one ``roles/processing/files/airflow.sh env`` installs into .venv-airflow from its full
lock (airflow-requirements.txt); MLflow is the server of .venv-mlflow (scripts/mlflow-env.sh) with
its basic-auth app on, on loopback, with a SQLite store. Airflow runs in a throw-away AIRFLOW_HOME
(SQLite, ``airflow db migrate``) with the DAG folder the role ships:

- Airflow's DagBag imports the folder with no import error and finds ``mlflow_smoke`` and its tasks;
- ``airflow dags test mlflow_smoke`` with the team's ``MLFLOW_TRACKING_*`` variables succeeds, every
  task instance succeeded, and MLflow's REST API returns the finished run the DAG logged, tagged with
  the DAG run's id;
- with a wrong password the run fails at the first authenticated call (401) and the next task never
  runs; with MLflow unreachable (a closed port) it fails at the health check.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import secrets
import sqlite3
import subprocess
import textwrap
import urllib.request

import pytest
from servers import free_port, stop, wait_http

ROOT = pathlib.Path(__file__).resolve().parents[2]
AIRFLOW_SH = ROOT / "roles" / "processing" / "files" / "airflow.sh"
DAGS = ROOT / "roles" / "processing" / "files" / "dags"
TASKS = {"check_health", "get_experiment", "log_smoke_run"}
ADMIN = "mlflow-admin"


@pytest.fixture(scope="module")
def airflow_bin() -> pathlib.Path:
    """.venv-airflow/bin, installed by the role's script; fails (never skips) when it cannot be."""
    proc = subprocess.run([str(AIRFLOW_SH), "env"], capture_output=True, text=True, check=False, timeout=1200)
    if proc.returncode != 0:
        pytest.fail(f"{AIRFLOW_SH} env failed: {proc.stderr[-3000:]}")
    return pathlib.Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def mlflow_and_airflow(tmp_path_factory, mlflow_bin, airflow_bin):
    """MLflow's URL and admin password, Airflow's environment: MLflow starts while Airflow's database migrates."""
    tmp = tmp_path_factory.mktemp("airflow-dag")
    password = secrets.token_urlsafe(18)
    auth = tmp / "basic_auth.ini"
    auth.write_text(textwrap.dedent(f"""\
        [mlflow]
        default_permission = READ
        database_uri = sqlite:///{tmp / 'auth.db'}
        admin_username = {ADMIN}
        admin_password = {password}
        authorization_function = mlflow.server.auth:authenticate_request_basic_auth
        """))
    auth.chmod(0o600)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_env = {"PATH": f"{mlflow_bin}:/usr/bin:/bin", "HOME": str(tmp), "LANG": "C.UTF-8",
                  "MLFLOW_AUTH_CONFIG_PATH": str(auth), "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}
    log = (tmp / "mlflow.log").open("w")
    server = subprocess.Popen(
        [str(mlflow_bin / "mlflow"), "server", "--app-name", "basic-auth", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
         "--default-artifact-root", str(tmp / "artifacts")],
        env=server_env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    try:
        home = tmp / "airflow"
        home.mkdir()
        env = {"PATH": f"{airflow_bin}:/usr/bin:/bin", "HOME": str(tmp), "LANG": "C.UTF-8",
               "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
               "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        migrate = subprocess.run([str(airflow_bin / "airflow"), "db", "migrate"], env=env, cwd=tmp,
                                 capture_output=True, text=True, timeout=300, check=False)
        assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
        wait_http(url + "/health", timeout=240, proc=server)
        yield {"url": url, "password": password, "env": env}
    finally:
        stop(server)
        log.close()


def dags_test(airflow_bin: pathlib.Path, env: dict, **mlflow_env: str) -> tuple[subprocess.CompletedProcess, str, dict]:
    """Run ``airflow dags test mlflow_smoke``; return the process, the DAG run's state and its task states."""
    db = pathlib.Path(env["AIRFLOW_HOME"]) / "airflow.db"
    with sqlite3.connect(db) as conn:
        before = {r[0] for r in conn.execute("SELECT run_id FROM dag_run WHERE dag_id = 'mlflow_smoke'")}
    proc = subprocess.run([str(airflow_bin / "airflow"), "dags", "test", "mlflow_smoke"], env={**env, **mlflow_env},
                          cwd=env["HOME"], capture_output=True, text=True, timeout=300, check=False)
    with sqlite3.connect(db) as conn:
        runs = [r for r in conn.execute("SELECT run_id, state FROM dag_run WHERE dag_id = 'mlflow_smoke'")
                if r[0] not in before]
        assert len(runs) == 1, f"expected one new DAG run, got {runs}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        run_id, state = runs[0]
        tasks = dict(conn.execute("SELECT task_id, state FROM task_instance WHERE dag_id = 'mlflow_smoke' AND run_id = ?",
                                  (run_id,)).fetchall())
    return proc, state, {"run_id": run_id, **tasks}


def mlflow_api(url: str, password: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json", "Authorization": "Basic "
                                              + base64.b64encode(f"{ADMIN}:{password}".encode()).decode()})
    with urllib.request.urlopen(request, timeout=30) as response:  # loopback only
        return json.loads(response.read())


def test_dagbag_imports_the_dags_without_errors(airflow_bin):
    proc = subprocess.run([str(AIRFLOW_SH), "check"], capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PATH": f"{airflow_bin}:/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    dags = dict(line.split(" ", 1) for line in proc.stdout.strip().splitlines())
    assert set(dags["mlflow_smoke"].split()) == TASKS


def test_smoke_dag_logs_a_run_that_mlflow_keeps(airflow_bin, mlflow_and_airflow):
    url, password, env = (mlflow_and_airflow[k] for k in ("url", "password", "env"))
    proc, state, tasks = dags_test(airflow_bin, env, MLFLOW_TRACKING_URI=url, MLFLOW_TRACKING_USERNAME=ADMIN,
                                   MLFLOW_TRACKING_PASSWORD=password)
    assert proc.returncode == 0 and state == "success", proc.stdout[-4000:] + proc.stderr[-4000:]
    run_id = tasks.pop("run_id")
    assert tasks == dict.fromkeys(TASKS, "success")
    # What the DAG logged, read back from MLflow itself.
    experiments = mlflow_api(url, password, "/api/2.0/mlflow/experiments/search",
                             {"max_results": 10, "filter": "name = 'airflow-smoke'"})["experiments"]
    assert len(experiments) == 1
    runs = mlflow_api(url, password, "/api/2.0/mlflow/runs/search",
                      {"experiment_ids": [experiments[0]["experiment_id"]],
                       "filter": f"tags.`airflow.run_id` = '{run_id}'"}).get("runs", [])
    assert len(runs) == 1, runs
    assert runs[0]["info"]["status"] == "FINISHED"
    assert [(m["key"], m["value"]) for m in runs[0]["data"]["metrics"]] == [("smoke", 1.0)]


def test_smoke_dag_fails_with_a_wrong_password(airflow_bin, mlflow_and_airflow):
    url, env = mlflow_and_airflow["url"], mlflow_and_airflow["env"]
    proc, state, tasks = dags_test(airflow_bin, env, MLFLOW_TRACKING_URI=url, MLFLOW_TRACKING_USERNAME=ADMIN,
                                   MLFLOW_TRACKING_PASSWORD="not-the-password")
    assert proc.returncode != 0 and state == "failed"
    assert tasks["check_health"] == "success"  # /health needs no credentials
    assert tasks["get_experiment"] == "failed"
    assert tasks["log_smoke_run"] == "upstream_failed"
    assert "answered 401" in proc.stdout + proc.stderr


def test_smoke_dag_fails_when_mlflow_is_unreachable(airflow_bin, mlflow_and_airflow):
    env = mlflow_and_airflow["env"]
    closed = f"http://127.0.0.1:{free_port()}"
    proc, state, tasks = dags_test(airflow_bin, env, MLFLOW_TRACKING_URI=closed)
    assert proc.returncode != 0 and state == "failed"
    assert tasks["check_health"] == "failed"
    assert tasks["get_experiment"] == tasks["log_smoke_run"] == "upstream_failed"
    assert f"MLflow at {closed}/health is unreachable" in proc.stdout + proc.stderr
