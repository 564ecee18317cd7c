"""Airflow's Secret as the secrets role renders it (secrets_airflow), read by the REAL pinned Airflow.

The Secret's data (module_utils.secrets.secrets_specs, the local inventory's Fernet key) is put into the
environment exactly as the processing role's Deployments map it (processing.SECRET_KEYS: AIRFLOW__SECTION__KEY
-> Secret key); Airflow of .venv-airflow (roles/processing/files/airflow.sh) then:

- ``airflow config get-value core fernet_key`` prints the key, and Airflow's own configuration reads the
  metadata database URL, the JWT secret and [api] secret_key from the same variables;
- Airflow's Fernet (airflow.models.crypto.get_fernet) encrypts and decrypts with the key; a key the role's
  check refuses is refused by Airflow too (so the check matches what Airflow accepts).

- ``airflow db check`` connects with the rendered URL to a real PostgreSQL (the conftest ``postgres`` server with
  its ``mlflow`` superuser and a database ``airflow``: the local inventory's choice on the mlflow role's server).
"""

from __future__ import annotations

import os
import pathlib
import subprocess

import pytest
import yaml
from ansible_collections.mlops.platform.plugins.module_utils import processing
from ansible_collections.mlops.platform.plugins.module_utils.secrets import airflow_errors, secrets_specs

ROOT = pathlib.Path(__file__).resolve().parents[2]
AIRFLOW_SH = ROOT / "roles" / "processing" / "files" / "airflow.sh"
LOCAL = yaml.safe_load((ROOT / "inventories/local/group_vars/all/secrets.yml").read_text(encoding="utf-8"))
CHECK = """
import sys
from airflow.configuration import conf
from airflow.models.crypto import get_fernet
for section, key in (("database", "sql_alchemy_conn"), ("api_auth", "jwt_secret"), ("api", "secret_key")):
    print(conf.get(section, key))
try:
    fernet = get_fernet()
    assert fernet.decrypt(fernet.encrypt(b"airflow-connection")) == b"airflow-connection"
    print("fernet ok")
except Exception as exc:  # AirflowException for a bad key
    print("fernet refused", type(exc).__name__)
"""


@pytest.fixture(scope="module")
def airflow_bin() -> pathlib.Path:
    proc = subprocess.run([str(AIRFLOW_SH), "env"], capture_output=True, text=True, check=False, timeout=1200)
    if proc.returncode != 0:
        pytest.fail(f"{AIRFLOW_SH} env failed: {proc.stderr[-3000:]}")
    return pathlib.Path(proc.stdout.strip().splitlines()[-1])


def secret_env(airflow: dict, home: pathlib.Path) -> dict:
    data = secrets_specs([], {"platform_secret_name": "ml-platform", "registry_secret_name": "ghcr", "airflow": airflow})[0]["secret"]["data"]
    assert sorted(data) == sorted(processing.SECRET_KEYS.values())
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    return {**env, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            **{name: data[key] for name, key in processing.SECRET_KEYS.items()}}


def test_real_airflow_reads_the_rendered_secret(airflow_bin, postgres, tmp_path):
    postgres.create_database("airflow")
    airflow = {**LOCAL["secrets_airflow"], "database_username": postgres.user, "database_password": postgres.password,
               "database_host": "127.0.0.1", "database_port": postgres.port}
    assert airflow_errors("direct", airflow) == []
    env = secret_env(airflow, tmp_path)
    got = subprocess.run([str(airflow_bin / "airflow"), "config", "get-value", "core", "fernet_key"], env=env,
                         capture_output=True, text=True, check=True, timeout=300)
    assert got.stdout.strip() == LOCAL["secrets_airflow"]["fernet_key"]
    out = subprocess.run([str(airflow_bin / "python"), "-c", CHECK], env=env, capture_output=True, text=True,
                         check=True, timeout=300).stdout.strip().splitlines()
    assert out == [env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], LOCAL["secrets_airflow"]["jwt_secret"],
                   LOCAL["secrets_airflow"]["api_secret_key"], "fernet ok"]
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith(f"postgresql+psycopg2://{postgres.user}:")
    check = subprocess.run([str(airflow_bin / "airflow"), "db", "check"], env=env, capture_output=True, text=True,
                           check=False, timeout=300)
    assert check.returncode == 0, check.stderr[-2000:]
    # A wrong password in the Secret: the same check fails (it does connect).
    wrong = secret_env({**airflow, "database_password": "wrong-password"}, tmp_path)
    assert subprocess.run([str(airflow_bin / "airflow"), "db", "check"], env=wrong, capture_output=True, text=True,
                          check=False, timeout=300).returncode != 0


def test_a_fernet_key_the_check_refuses_is_refused_by_airflow(airflow_bin, tmp_path):
    bad = {**LOCAL["secrets_airflow"], "database_password": "x", "database_host": "h",
           "fernet_key": "local-airflow-fernet-key-0123456789abcdefghi="}
    assert [e.split(" ")[0] for e in airflow_errors("direct", bad)] == ["secrets_airflow.fernet_key"]
    out = subprocess.run([str(airflow_bin / "python"), "-c", CHECK], env=secret_env(bad, tmp_path), capture_output=True,
                         text=True, check=True, timeout=300).stdout.strip().splitlines()
    assert out[-1].startswith("fernet refused")
