"""roles/processing/files/airflow-requirements.txt is a full lock: airflow.sh installs it with --no-deps."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
LOCK = ROOT / "roles" / "processing" / "files" / "airflow-requirements.txt"


def test_every_requirement_is_pinned_once():
    names = []
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][A-Za-z0-9.+!-]*)", line)
        assert match, f"not an exact pin: {line!r}"
        names.append(re.sub(r"[-_.]+", "-", match[1]).lower())
    assert len(names) == len(set(names)), "a package is pinned twice"
    assert "apache-airflow" in names and "apache-airflow-core" in names and "apache-airflow-task-sdk" in names


def test_airflow_sh_installs_without_the_resolver():
    script = (ROOT / "roles" / "processing" / "files" / "airflow.sh").read_text()
    assert "--no-deps -r" in script and "pip check" in script
