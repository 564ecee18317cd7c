"""The secrets role's task files: one no_log bundle call whose masked result one task reports."""

from __future__ import annotations

import pathlib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "secrets"


def _tasks(name: str) -> list[dict]:
    return yaml.safe_load((ROLE / "tasks" / name).read_text())


def test_the_apply_is_one_no_log_bundle_call_followed_by_one_report():
    tasks = _tasks("main.yml")
    bundles = [i for i, t in enumerate(tasks) if "mlops.platform.k8s_bundle" in t]
    assert len(bundles) == 1
    apply, end, report = tasks[bundles[0]:bundles[0] + 3]
    # A no-op (the apply ran and changed nothing) ends the role before the report, on the controller.
    assert end["ansible.builtin.meta"] == "end_role"
    assert end["when"] == f"{apply['register']}.counts is defined and not ({apply['register']}.changed | default(false))"
    args = apply["mlops.platform.k8s_bundle"]
    assert args["name"] == "secrets" and args["render_dir"] == "{{ mlops_render_dir | default(omit) }}"
    assert {"kubeconfig", "context", "cluster_exists", "definitions"} <= set(args)
    # The definitions hold the values: nothing of the task is shown, the next task reports names.
    assert apply["no_log"] is True and apply["failed_when"] is False
    assert apply["when"] == "__secrets_problems | length == 0"
    check = report["ansible.builtin.assert"]
    assert report["when"].startswith(f"{apply['register']}.counts is not defined")
    assert "__secrets_problems" in check["fail_msg"] and f"{apply['register']}.msg" in check["fail_msg"]
    assert f"{apply['register']}.changes" in check["success_msg"] and f"{apply['register']}.diff" in check["success_msg"]


def test_no_kubernetes_core_call_and_every_value_holding_task_is_no_log():
    for path in (ROLE / "tasks").glob("*.yml"):
        text = path.read_text()
        assert "kubernetes.core" not in text, path.name
        for task in yaml.safe_load(text):
            if "set_fact" in str(task) and "__secrets_spec" in str(task):
                assert task.get("no_log") is True, (path.name, task["name"])
