"""Running ansible-playbook from the checkout in tests, and reading its recap."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
_RECAP = re.compile(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")


def run_playbook(playbook: str | os.PathLike, *args: str, env: dict | None = None, timeout: int = 600):
    """Run ansible-playbook from the checkout (ansible.cfg applies) and return the completed process."""
    full_env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
        **(env or {}),
    }
    return subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), str(playbook), *args],
        capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=timeout, check=False,
    )


def run_role(role: str, tmp_path: pathlib.Path, variables: dict, *args: str):
    """Run one role on localhost with `variables` from a 0600 extra-vars file."""
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(variables))
    vars_file.chmod(0o600)
    playbook = tmp_path / f"{role.rsplit('.', 1)[-1]}.yml"
    playbook.write_text(f"- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: {role}\n")
    return run_playbook(playbook, "-i", "localhost,", "-c", "local",
                        "-e", "ansible_python_interpreter={{ ansible_playbook_python }}", "-e", f"@{vars_file}", *args)


def recap(output: str) -> dict[str, int]:
    """The PLAY RECAP counts for localhost; fails the test when there is none."""
    match = _RECAP.search(output)
    assert match, output[-3000:]
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups()), strict=True))


def run_module(module: str, tmp_path: pathlib.Path, *calls: dict, check: bool = False, diff: bool = True,
               verbosity: int = 0, connection: str = "local") -> tuple[list[dict], subprocess.CompletedProcess]:
    """Run ``module`` once per entry of ``calls`` (errors ignored) with the json callback.

    Returns each task's result and the completed process (whose stdout is the whole json report).
    """
    import yaml

    tasks = [{"name": f"call {i}", module: args, "ignore_errors": True, "check_mode": check, "diff": diff}
             for i, args in enumerate(calls)]
    playbook = tmp_path / f"calls-{len(list(tmp_path.glob('calls-*.yml')))}.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    args = ["-i", "localhost,", "-c", connection, "-e", "ansible_python_interpreter={{ ansible_playbook_python }}"]
    args += ["-" + "v" * verbosity] if verbosity else []
    proc = run_playbook(playbook, *args, env={"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
                                              "ANSIBLE_CONNECTION_PLUGINS": str(ROOT / "tests" / "integration" / "connection_plugins")})
    # With -v the verbose log comes first; the report is the JSON document that starts a line.
    start = 0 if proc.stdout.startswith("{") else proc.stdout.find("\n{") + 1
    try:
        report = json.loads(proc.stdout[start:])
    except json.JSONDecodeError:
        raise AssertionError(f"ansible-playbook rc={proc.returncode} {proc.args}\n{proc.stdout[-3000:]}\n{proc.stderr[-1000:]}") from None
    return [t["hosts"]["localhost"] for play in report["plays"] for t in play["tasks"]], proc
