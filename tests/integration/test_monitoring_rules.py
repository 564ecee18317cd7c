"""The alert rules and dashboards the monitoring role renders for inventories/local, checked by the real
promtool (built from github.com/prometheus/prometheus by roles/monitoring/files/upstream.sh).

`promtool check rules` parses every rule; `promtool test rules` runs unit tests of each alert on
synthetic series: a team at 80% and 95% of its limits.cpu fires (warning, then critical too), one
at 79% does not, nothing fires before the inventory's `for:`; a not-ready SeldonRuntime or Server
fires after its `for:`, a ready one never; MLflow, its database and MinIO down, and a failed
bucket Job, each fire. Every PromQL expression of the dashboards passes promtool's parser.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess

import pytest
import yaml
from ansible_collections.mlops.platform.plugins.module_utils import monitoring
from monitoring_tools import render_monitoring, rules_file, tool

ROOT = pathlib.Path(__file__).resolve().parents[2]
INVENTORY = yaml.safe_load((ROOT / "inventories/local/group_vars/all/monitoring.yml").read_text())
TEAM = monitoring.TEAM_METRIC_LABEL


@pytest.fixture(scope="module")
def rendered(ansible_playbook, tmp_path_factory) -> dict:
    return render_monitoring(ansible_playbook, tmp_path_factory.mktemp("monitoring-render"))


@pytest.fixture(scope="module")
def promtool() -> pathlib.Path:
    return tool("promtool")


def promtool_run(promtool: pathlib.Path, *args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(promtool), *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False)


def test_promtool_check_rules_accepts_every_rendered_rule(rendered, promtool, tmp_path):
    path = rules_file(rendered, tmp_path / "rules.yml")
    done = promtool_run(promtool, "check", "rules", path.name, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    count = sum(len(g["rules"]) for g in rendered["rules"])
    assert f"SUCCESS: {count} rules found" in done.stdout
    assert count == 9  # 2 quota, 2 Seldon, 3 MLflow and its database, 2 MinIO (inventories/local)


def test_promtool_check_rules_refuses_a_broken_rule(promtool, tmp_path):
    """The check can fail: a rule whose expression does not parse."""
    (tmp_path / "bad.yml").write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [{"alert": "A", "expr": "sum(up"}]}]}))
    done = promtool_run(promtool, "check", "rules", "bad.yml", cwd=tmp_path)
    assert done.returncode != 0 and "parse error" in done.stdout + done.stderr


def annotations(rule: dict, labels: dict, value: str) -> dict:
    """The rule's annotation templates filled in the way Prometheus fills these ($labels, $value | humanizePercentage)."""
    def fill(text: str) -> str:
        text = text.replace("{{ $value | humanizePercentage }}", value)
        return re.sub(r"\{\{ \$labels\.([a-z_]+) \}\}", lambda m: labels.get(m.group(1), ""), text)

    return {k: fill(v) for k, v in rule["annotations"].items()}


def expected(rule: dict, labels: dict, value: str = "") -> dict:
    full = {**labels, **rule["labels"]}
    return {"exp_labels": full, "exp_annotations": annotations(rule, full, value)}


def quota_series(namespace: str, team: str, used: int) -> list[dict]:
    base = f'namespace="{namespace}", resource="limits.cpu", resourcequota="mlops-team-quota"'
    return [
        {"series": f'kube_namespace_labels{{namespace="{namespace}", {TEAM}="{team}"}}', "values": "1x30"},
        {"series": f'kube_resourcequota{{{base}, type="hard"}}', "values": "100x30"},
        {"series": f'kube_resourcequota{{{base}, type="used"}}', "values": f"{used}x30"},
    ]


def test_promtool_unit_tests_fire_each_alert_when_it_should(rendered, promtool, tmp_path):
    rules = {(r["alert"], r["labels"]["severity"]): r for g in rendered["rules"] for r in g["rules"]}
    warning, critical = rules[("TeamQuotaHigh", "warning")], rules[("TeamQuotaHigh", "critical")]
    thresholds = INVENTORY["monitoring_quota_thresholds"]
    assert warning["expr"].endswith(f">= {thresholds['warning']}") and critical["expr"].endswith(f">= {thresholds['critical']}")
    waits = INVENTORY["monitoring_alert_for"]
    quota_minutes = int(waits["quota"].rstrip("m"))
    seldon_minutes = int(waits["seldon"].rstrip("m"))

    def quota_labels(namespace, team):
        return {"namespace": namespace, "resource": "limits.cpu", "resourcequota": "mlops-team-quota", "team": team, TEAM: team}

    runtime, server = rules[("SeldonSeldonRuntimeNotReady", "critical")], rules[("SeldonServerNotReady", "warning")]
    runtime_base = 'namespace="team-serving", name="mlserver-runtime"'
    tests = [
        {   # Quotas: 80% and 95% fire after `for:`, 79% never.
            "interval": "1m",
            "input_series": quota_series("team-a", "a", 80) + quota_series("team-b", "b", 79) + quota_series("team-c", "c", 95),
            "alert_rule_test": [
                {"eval_time": f"{quota_minutes - 1}m", "alertname": "TeamQuotaHigh", "exp_alerts": []},
                {"eval_time": f"{quota_minutes + 1}m", "alertname": "TeamQuotaHigh", "exp_alerts": [
                    expected(warning, quota_labels("team-a", "a"), "80%"),
                    expected(warning, quota_labels("team-c", "c"), "95%"),
                    expected(critical, quota_labels("team-c", "c"), "95%"),
                ]},
            ],
        },
        {   # Seldon: a runtime whose Ready is False and one without any condition fire after `for:`; a ready one never.
            "interval": "1m",
            "input_series": [
                {"series": f'mlops_seldon_runtime_info{{{runtime_base}}}', "values": f"1x{seldon_minutes + 5}"},
                {"series": f'mlops_seldon_runtime_condition{{{runtime_base}, type="Ready"}}', "values": f"0x{seldon_minutes + 5}"},
                {"series": 'mlops_seldon_runtime_info{namespace="team-ok", name="rt"}', "values": f"1x{seldon_minutes + 5}"},
                {"series": 'mlops_seldon_runtime_condition{namespace="team-ok", name="rt", type="Ready"}',
                 "values": f"1x{seldon_minutes + 5}"},
                {"series": 'mlops_seldon_server_info{namespace="team-serving", name="mlserver"}', "values": f"1x{seldon_minutes + 5}"},
            ],
            "alert_rule_test": [
                {"eval_time": f"{seldon_minutes - 1}m", "alertname": runtime["alert"], "exp_alerts": []},
                {"eval_time": f"{seldon_minutes + 1}m", "alertname": runtime["alert"], "exp_alerts": [
                    expected(runtime, {"namespace": "team-serving", "name": "mlserver-runtime"})]},
                {"eval_time": f"{seldon_minutes + 1}m", "alertname": server["alert"], "exp_alerts": [
                    expected(server, {"namespace": "team-serving", "name": "mlserver"})]},
            ],
        },
        {   # MLflow, its database and MinIO down; a failed bucket-provisioning Job.
            "interval": "1m",
            "input_series": [
                {"series": 'up{job="mlflow", namespace="mlflow", instance="a"}', "values": "0x15"},
                {"series": 'up{job="mlflow-postgresql-exporter", namespace="mlflow", instance="b"}', "values": "1x15"},
                {"series": 'pg_up{job="mlflow-postgresql-exporter", namespace="mlflow", instance="b"}', "values": "0x15"},
                {"series": 'up{job="minio", namespace="minio", instance="c"}', "values": "1x15"},
                {"series": 'kube_job_status_failed{namespace="minio", job_name="minio-buckets-0123abcd"}', "values": "0 1x15"},
            ],
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "MLflowDown",
                 "exp_alerts": [expected(rules[("MLflowDown", "critical")], {})]},
                {"eval_time": "10m", "alertname": "MLflowDatabaseUnreachable",
                 "exp_alerts": [expected(rules[("MLflowDatabaseUnreachable", "critical")], {"namespace": "mlflow"})]},
                {"eval_time": "10m", "alertname": "MLflowDatabaseExporterDown", "exp_alerts": []},
                {"eval_time": "10m", "alertname": "MinIODown", "exp_alerts": []},
                {"eval_time": "0m", "alertname": "MinIOBucketProvisioningFailed", "exp_alerts": []},
                {"eval_time": "1m", "alertname": "MinIOBucketProvisioningFailed", "exp_alerts": [
                    expected(rules[("MinIOBucketProvisioningFailed", "critical")],
                             {"namespace": "minio", "job_name": "minio-buckets-0123abcd"})]},
            ],
        },
    ]
    rules_file(rendered, tmp_path / "rules.yml")
    (tmp_path / "tests.yml").write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests},
                                                       sort_keys=False))
    done = promtool_run(promtool, "test", "rules", "tests.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_unit_tests_can_fail(rendered, promtool, tmp_path):
    """The same harness reports a quota at 79% expected to fire as a failure."""
    rules_file(rendered, tmp_path / "rules.yml")
    test = {"interval": "1m", "input_series": quota_series("team-b", "b", 79),
            "alert_rule_test": [{"eval_time": "10m", "alertname": "TeamQuotaHigh",
                                 "exp_alerts": [{"exp_labels": {"severity": "warning", "namespace": "team-b"}}]}]}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "tests": [test]}))
    done = promtool_run(promtool, "test", "rules", "tests.yml", cwd=tmp_path)
    assert done.returncode != 0 and "FAILED" in done.stdout + done.stderr


def test_every_dashboard_expression_parses(rendered, promtool, tmp_path):
    config = next(o for o in rendered["objects"] if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "grafana-dashboards-mlops")
    exprs = []
    for name, text in sorted(config["data"].items()):
        board = json.loads(text)
        assert monitoring.dashboard_errors(name, board) == []
        exprs += monitoring.dashboard_expressions(board, {"team": "financial-ml", "namespace": "financial-ml"})
    assert len(exprs) >= 20
    # As recording rules, promtool parses each expression with Prometheus' own parser.
    rules = [{"record": f"dashboard:expr_{i}:check", "expr": e} for i, e in enumerate(exprs)]
    (tmp_path / "dashboards.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    done = promtool_run(promtool, "check", "rules", "dashboards.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
