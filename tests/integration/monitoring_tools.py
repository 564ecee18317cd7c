"""The monitoring role's rendered output and the real Prometheus tools, for the monitoring tests."""

from __future__ import annotations

import json
import pathlib
import subprocess
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
UPSTREAM = ROOT / "roles" / "monitoring" / "files" / "upstream.sh"


def tool(name: str) -> pathlib.Path:
    """promtool or prometheus from the cache (built by `upstream.sh build`, which the gate starts in the
    background); fails, never skips, when it is not there."""
    path = pathlib.Path(subprocess.run([str(UPSTREAM), "path", name], capture_output=True, text=True, check=True).stdout.strip())
    if not path.is_file():
        pytest.fail(f"{path} is missing: run {UPSTREAM} build (make test starts it)")
    return path


def render_monitoring(ansible_playbook, tmp: pathlib.Path, *args: str, inventory: str = "inventories/local") -> dict:
    """What the role renders for an inventory (tasks_from: render): {'objects': [...], 'rules': [...]}, 0600."""
    out = tmp / "monitoring-rendered.json"
    playbook = tmp / "render-monitoring.yml"
    playbook.write_text(textwrap.dedent(f"""\
        - hosts: mlops_platform
          gather_facts: false
          tasks:
            - name: Render the monitoring role's objects
              ansible.builtin.include_role:
                name: mlops.platform.monitoring
                tasks_from: render
            - name: Save them
              ansible.builtin.copy:
                dest: {out}
                content: "{{{{ {{'objects': monitoring_rendered, 'rules': monitoring_rendered_rules}} | to_json }}}}"
                mode: "0600"
              no_log: true
        """))
    proc = ansible_playbook(playbook, "-i", str(ROOT / inventory), *args)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return json.loads(out.read_text())


def rules_file(rendered: dict, path: pathlib.Path) -> pathlib.Path:
    """The spec of the rendered PrometheusRule as a Prometheus rules file (what the operator mounts)."""
    import yaml

    rule = next(o for o in rendered["objects"] if o["kind"] == "PrometheusRule")
    assert rule["spec"]["groups"] == rendered["rules"]
    path.write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    return path
