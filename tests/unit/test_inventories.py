"""The four inventories set the same keys, and the README's table of differences matches them."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_inventories_share_keys_and_readme_table_is_current():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "inventory_table.py"), "--check"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_site_yml_lists_the_same_tasks_for_every_environment():
    listings = {}
    for env in ("local", "dev", "staging", "prod"):
        result = subprocess.run(
            [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "playbooks/site.yml", "-i", f"inventories/{env}",
             "--list-tasks"], capture_output=True, text=True, cwd=ROOT, check=False,
            env={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
                 "PATH": "/usr/bin:/bin", "HOME": str(pathlib.Path.home())})
        assert result.returncode == 0, result.stderr
        listings[env] = [line.split(":")[0].strip() for line in result.stdout.splitlines() if line.startswith("      ")]
    assert listings["local"], "no tasks listed"
    assert all(listing == listings["local"] for listing in listings.values()), listings
