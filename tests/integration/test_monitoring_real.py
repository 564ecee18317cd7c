"""A real Prometheus scraping a real MLflow with the scrape job the monitoring role renders.

MLflow runs exactly as the mlflow role renders it (test_mlflow_real's helpers: its init and server
containers, environment resolved from its rendered Secrets) with `--expose-prometheus`. The
monitoring role renders inventories/local; its MLflow ServiceMonitor becomes the Prometheus job the
operator would generate (job = the Service's name, the endpoint's path, basic auth from the keys of
the Secret it names, read from MLflow's rendered Secret; the target is the server's loopback
address instead of the Service's endpoints, and the interval is 2 s instead of 30 s to keep the test
short). Prometheus (built from github.com/prometheus/prometheus, the release of the role's image)
also loads the rendered PrometheusRule. The test reads back: the target is up, MLflow's request
counter is there, the same job without basic auth is refused, every rule loaded healthy and
MLflowDown is not firing, and every dashboard expression evaluates.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request

import boto3
import pytest
import yaml
from ansible_collections.mlops.platform.plugins.module_utils import monitoring
from monitoring_tools import render_monitoring, rules_file, tool
from servers import free_port, stop, wait_http
from test_mlflow_real import BUCKET, pod_process, render, role_vars, run_init


def query(base: str, expr: str) -> list[dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_for(base: str, expr: str, timeout: float = 90) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = query(base, expr)
        if found:
            return found
        time.sleep(1)
    pytest.fail(f"Prometheus never answered {expr!r} with a sample")


def scrape_job(monitor: dict, secret_data: dict, target: str, auth: bool = True) -> dict:
    """The scrape job the Prometheus Operator generates for a ServiceMonitor endpoint, on a static target."""
    endpoint = monitor["spec"]["endpoints"][0]
    job = {"job_name": monitor["metadata"]["name"] + ("" if auth else "-no-auth"),
           "metrics_path": endpoint["path"], "scrape_interval": "2s", "scrape_timeout": "2s",
           "static_configs": [{"targets": [target], "labels": {"namespace": monitor["metadata"]["namespace"]}}]}
    if auth and "basicAuth" in endpoint:
        user, password = endpoint["basicAuth"]["username"], endpoint["basicAuth"]["password"]
        job["basic_auth"] = {"username": secret_data[user["name"]][user["key"]],
                             "password": secret_data[password["name"]][password["key"]]}
    return job


def test_real_prometheus_scrapes_real_mlflow_with_the_rendered_job(tmp_path, ansible_playbook, mlflow_bin, moto, postgres):
    prometheus = tool("prometheus")
    boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing-secret").create_bucket(Bucket=f"{BUCKET}-prom")
    port = free_port()
    variables = role_vars(tmp_path, postgres, moto.url, port, mlflow_metrics_dir=str(tmp_path / "mlflow-metrics"))
    variables["mlops_storage"] = {**variables["mlops_storage"], "buckets": {"mlflow-artifacts": f"{BUCKET}-prom"}}
    mlflow = render(ansible_playbook, tmp_path, variables)
    deployment = next(o for o in mlflow["objects"] if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    argv, env = pod_process(mlflow, pod["containers"][0], tmp_path, mlflow_bin)
    assert argv[argv.index("--expose-prometheus") + 1] == str(tmp_path / "mlflow-metrics")
    done = run_init(mlflow, tmp_path, mlflow_bin, "db-upgrade")
    assert done.returncode == 0, done.stderr[-3000:]

    rendered = render_monitoring(ansible_playbook, tmp_path)
    monitor = next(o for o in rendered["objects"] if o["kind"] == "ServiceMonitor" and o["metadata"]["name"] == "mlflow")
    assert monitor["spec"]["endpoints"][0]["port"] == "http"  # the mlflow Service's port, here the server's
    target = f"127.0.0.1:{port}"
    rules_file(rendered, tmp_path / "rules.yml")
    config = {"global": {"evaluation_interval": "2s"}, "rule_files": ["rules.yml"],
              "scrape_configs": [scrape_job(monitor, mlflow["secret_data"], target),
                                 scrape_job(monitor, mlflow["secret_data"], target, auth=False)]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    (tmp_path / "prometheus.yml").chmod(0o600)  # it holds the MLflow admin's password

    server_log = (tmp_path / "mlflow.log").open("w")
    server = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=server_log, stderr=subprocess.STDOUT)
    prom_port = free_port()
    prom_log = (tmp_path / "prometheus.log").open("w")
    prom = None
    try:
        wait_http(f"http://{target}/health", timeout=240, proc=server)
        prom = subprocess.Popen([str(prometheus), "--config.file=prometheus.yml", f"--storage.tsdb.path={tmp_path / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                                cwd=tmp_path, stdout=prom_log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{prom_port}"
        wait_http(base + "/-/ready", timeout=60, proc=prom, ready=True)

        up = wait_for(base, 'up{job="mlflow", namespace="mlflow"} == 1')
        assert up[0]["metric"]["instance"] == target
        # Without the admin's basic auth MLflow refuses the scrape (401): the rendered credentials matter.
        refused = wait_for(base, 'up{job="mlflow-no-auth"} == 0')
        assert refused[0]["value"][1] == "0"
        counted = wait_for(base, 'sum(mlflow_http_request_duration_seconds_count{job="mlflow"}) > 0')
        assert float(counted[0]["value"][1]) >= 1

        with urllib.request.urlopen(base + "/api/v1/rules", timeout=10) as response:
            groups = json.load(response)["data"]["groups"]
        loaded = [r for g in groups for r in g["rules"]]
        assert len(loaded) == sum(len(g["rules"]) for g in rendered["rules"]) == 9
        assert {r["health"] for r in loaded} == {"ok"}, [(r["name"], r.get("lastError")) for r in loaded]
        mlflow_down = next(r for r in loaded if r["name"] == "MLflowDown")
        time.sleep(3)  # one more evaluation with the target up
        assert query(base, 'ALERTS{alertname="MLflowDown"}') == [], mlflow_down

        config_map = next(o for o in rendered["objects"] if o["metadata"]["name"] == "grafana-dashboards-mlops")
        for text in config_map["data"].values():
            for expr in monitoring.dashboard_expressions(json.loads(text), {"team": "financial-ml", "namespace": "mlflow"}):
                query(base, expr)  # fails the test unless Prometheus evaluates it
        served = query(base, 'sum(rate(mlflow_http_request_duration_seconds_count{job="mlflow"}[1m]))')
        assert served, "the platform dashboard's request rate has no data"
    finally:
        for proc in (prom, server):
            stop(proc)
        server_log.close()
        prom_log.close()
