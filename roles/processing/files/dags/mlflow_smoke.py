"""mlflow_smoke: proves that a team's Airflow reaches the platform's MLflow with the team's credentials.

The team's ``ml-platform`` Secret (roles/secrets) carries ``MLFLOW_TRACKING_URI``,
``MLFLOW_TRACKING_USERNAME`` and ``MLFLOW_TRACKING_PASSWORD``; give them to the workers as
environment variables. The tasks speak MLflow's REST API with the standard library only, so
the DAG needs no MLflow client in the Airflow image and its parse costs nothing:

1. ``check_health``: ``GET /health`` answers ``OK``;
2. ``get_experiment``: the experiment ``$MLFLOW_SMOKE_EXPERIMENT`` (default ``airflow-smoke``),
   searched for and created when missing (needs the credentials, MLflow's basic auth is on);
3. ``log_smoke_run``: a run in it, tagged with the DAG run's id, with one metric, finished,
   then read back; its id is the task's return value (XCom).

No retries: a smoke check that waits hides the failure it exists to show.
"""

from __future__ import annotations

import datetime

from airflow.sdk import dag, task

EXPERIMENT_DEFAULT = "airflow-smoke"
TIMEOUT_SECONDS = 15


def _call(method: str, path: str, body: dict | None = None) -> dict | str:
    """One request to the tracking server of the environment; raises naming the URL on any failure."""
    import base64
    import json
    import os
    import urllib.error
    import urllib.request

    base = os.environ.get("MLFLOW_TRACKING_URI", "").rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise RuntimeError("MLFLOW_TRACKING_URI is not an http(s) URL: give the workers the team's ml-platform Secret")
    url = base + path
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    elif os.environ.get("MLFLOW_TRACKING_TOKEN"):
        headers["Authorization"] = "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"]
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")[:500]
        raise RuntimeError(f"MLflow {method} {url} answered {err.code}: {detail}") from None
    except OSError as err:
        raise RuntimeError(f"MLflow at {url} is unreachable: {err}") from None
    if path == "/health":
        return text
    return json.loads(text) if text else {}


@dag(
    dag_id="mlflow_smoke",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),  # noqa: UP017 (Airflow workers may run Python 3.10)
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 0, "execution_timeout": datetime.timedelta(minutes=2)},
    tags=["mlops-platform", "smoke", "mlflow"],
    doc_md=__doc__,
)
def mlflow_smoke():
    @task
    def check_health() -> str:
        answer = str(_call("GET", "/health")).strip()
        if answer != "OK":
            raise RuntimeError(f"MLflow /health answered {answer[:200]!r}, not OK")
        return answer

    @task
    def get_experiment() -> str:
        import os

        name = os.environ.get("MLFLOW_SMOKE_EXPERIMENT", EXPERIMENT_DEFAULT)
        if not name or "'" in name:
            raise ValueError(f"MLFLOW_SMOKE_EXPERIMENT {name!r}: an experiment name without single quotes")
        found = _call("POST", "/api/2.0/mlflow/experiments/search",
                      {"max_results": 10, "filter": f"name = '{name}'"})
        for experiment in found.get("experiments", []):
            if experiment.get("name") == name:
                return experiment["experiment_id"]
        return _call("POST", "/api/2.0/mlflow/experiments/create", {"name": name})["experiment_id"]

    @task
    def log_smoke_run(experiment_id: str, **context) -> str:
        import time

        now = int(time.time() * 1000)
        dag_run_id = context["run_id"]
        run = _call("POST", "/api/2.0/mlflow/runs/create", {
            "experiment_id": experiment_id, "start_time": now, "run_name": "airflow-smoke",
            "tags": [{"key": "airflow.dag_id", "value": "mlflow_smoke"},
                     {"key": "airflow.run_id", "value": dag_run_id}],
        })["run"]
        run_id = run["info"]["run_id"]
        _call("POST", "/api/2.0/mlflow/runs/log-metric",
              {"run_id": run_id, "key": "smoke", "value": 1.0, "timestamp": now, "step": 0})
        _call("POST", "/api/2.0/mlflow/runs/update",
              {"run_id": run_id, "status": "FINISHED", "end_time": int(time.time() * 1000)})
        got = _call("GET", f"/api/2.0/mlflow/runs/get?run_id={run_id}")["run"]
        tags = {t["key"]: t["value"] for t in got["data"].get("tags", [])}
        if got["info"]["status"] != "FINISHED" or tags.get("airflow.run_id") != dag_run_id:
            raise RuntimeError(f"MLflow did not keep the smoke run {run_id}: {got['info']}")
        return run_id

    experiment = get_experiment()
    check_health() >> experiment
    log_smoke_run(experiment)


mlflow_smoke()
