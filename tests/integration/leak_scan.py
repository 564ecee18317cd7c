"""Secret leak scan: run a playbook with canary secret values and look for them everywhere.

Every secret-bearing variable gets a canary: a random value used nowhere else, so finding
one (as is, or base64-encoded at any alignment, as in a Secret's `data` or a
`.dockerconfigjson`) anywhere outside a secret destination can only be a leak. A run is
scanned in:

- its output (stdout and stderr at -vvv, and the log file ANSIBLE_LOG_PATH),
- the JSON report of the ansible.posix.json callback, when that is the stdout callback,
- every file written under the run's TMPDIR, ANSIBLE_LOCAL_TEMP and ANSIBLE_REMOTE_TEMP,
  under its MLOPS_CACHE_DIR (except the secret destinations and the cluster's own data),
  and every file of the checkout created or changed during the run.

Secret destinations (built packages, extracted packages, the credentials store) may hold the
values; their files must be 0600 and their directories 0700.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import pathlib
import secrets as pysecrets
import stat
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Local state of the checkout that a run may touch without being the collection's doing.
CHECKOUT_SKIP = {".git", ".venv", ".venv-mlflow", ".collections", ".pytest_cache", ".ruff_cache", "__pycache__",
                 ".ansible"}
# The real cache's upstream files (roles/monitoring/files/upstream.sh crds), outside any test's cache.
UPSTREAM_DIR = pathlib.Path(subprocess.run(
    [str(pathlib.Path(__file__).resolve().parents[2] / "roles/monitoring/files/upstream.sh"), "path", "crds"],
    capture_output=True, text=True, check=True).stdout.strip()).parent
CANARY_NAMES = ("s3_id", "s3_key", "mlflow_pw", "flask", "registry_pw", "db_pw", "grafana_pw", "alert_hook", "redis_pw",
                "airflow_jwt", "airflow_api", "kafka_pw")


def b64_forms(value: str) -> list[str]:
    """The base64 text that encodes `value` wherever it sits in a longer encoded string."""
    forms = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + value.encode()).decode()
        # Drop the characters that mix in the bytes around the value.
        forms.append(encoded[(offset * 4 + 2) // 3 + 1:-4])
    return forms


@dataclasses.dataclass
class Canaries:
    values: dict[str, str]
    signing_key_pem: str = ""

    @classmethod
    def new(cls) -> Canaries:
        values = {name: f"canary{name.replace('_', '')}{pysecrets.token_hex(10)}" for name in CANARY_NAMES}
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        # The key material is the PEM's middle line.
        values["signing_key"] = pem.splitlines()[1]
        # A Fernet key is 32 bytes in URL-safe base64 (secrets_airflow checks it): the canary is such a key.
        values["airflow_fernet"] = base64.urlsafe_b64encode(b"canaryfernet" + os.urandom(20)).decode()
        return cls(values, pem)

    def platform_vars(self) -> dict:
        """Extra vars that put a canary in every secret of the local inventory."""
        v = self.values
        return {
            "secrets_s3": {"access_key_id": v["s3_id"], "secret_access_key": v["s3_key"], "region": "us-east-1",
                           "endpoint_url": "http://minio.minio.svc.cluster.local:9000", "rclone_provider": "Minio"},
            "secrets_mlflow": {"tracking_uri": "http://mlflow.mlflow.svc.cluster.local:5000",
                               "tracking_username": "mlflow", "tracking_password": v["mlflow_pw"],
                               "s3_endpoint_url": "", "flask_server_secret_key": v["flask"]},
            "secrets_registry": {"server": "ghcr.io", "username": "leakscan", "password": v["registry_pw"],
                                 "email": ""},
            "mlflow_database": {"username": "mlflow", "password": v["db_pw"],
                                "host": "mlflow-postgresql.mlflow.svc.cluster.local", "port": 5432,
                                "database": "mlflow", "driver": "psycopg2", "scheme": "postgresql+psycopg2",
                                "connection_url": ""},
            "secrets_grafana": {"enabled": True, "name": "grafana-admin", "namespace": "monitoring",
                                "admin_user": "admin", "admin_password": v["grafana_pw"]},
            "secrets_redis": {"enabled": True, "name": "redis-auth", "namespace": "redis", "team_secret_name": "redis",
                              "password": v["redis_pw"], "host": "redis.redis.svc.cluster.local", "port": 6379, "tls": False},
            "secrets_airflow": {"enabled": True, "name": "airflow", "namespace": "airflow",
                                "database_username": "mlflow", "database_password": v["db_pw"],
                                "database_host": "mlflow-postgresql.mlflow.svc.cluster.local", "database_port": 5432,
                                "database_name": "airflow", "database_scheme": "postgresql+psycopg2",
                                "sql_alchemy_conn": "", "fernet_key": v["airflow_fernet"], "jwt_secret": v["airflow_jwt"],
                                "api_secret_key": v["airflow_api"], "mlflow_secret_name": "airflow-mlflow"},
            "kafka_team_passwords": {"financial-ml": v["kafka_pw"]},
            "monitoring_alertmanager_config": {
                "route": {"receiver": "pager"},
                "receivers": [{"name": "pager", "webhook_configs": [{"url": f"https://hooks.example/{v['alert_hook']}"}]}]},
            "secrets_package_signing_key": self.signing_key_pem,
        }

    def patterns(self) -> dict[str, list[str]]:
        return {name: [value, *b64_forms(value)] for name, value in self.values.items()}

    def found_in(self, text: str) -> list[str]:
        return sorted(name for name, forms in self.patterns().items() if any(f in text for f in forms))


@dataclasses.dataclass
class Run:
    rc: int
    output: str  # stdout + stderr (+ the log file)
    report: dict | None  # the JSON callback's report
    leaks: dict[str, list[str]]  # where → canary names (never the values)
    loose_modes: list[str]  # secret destination files not 0600 / directories not 0700


class LeakScan:
    """Runs playbooks from the checkout with canaries, each run scanned (see the module docstring)."""

    def __init__(self, tmp_path: pathlib.Path, canaries: Canaries, *, cache_dir: pathlib.Path | None = None,
                 destinations: tuple[pathlib.Path, ...] = (), cache_skip: tuple[str, ...] = ()) -> None:
        self.tmp = tmp_path
        self.canaries = canaries
        self.cache_dir = cache_dir or tmp_path / "cache"
        self.destinations = (*destinations, self.cache_dir / "credentials")
        # Under the cache: the cluster's binaries and its data (etcd holds the Secrets: a destination),
        # and the monitoring role's upstream CRDs (fetched by make setup into the real cache).
        self.cache_skip = ("bin", "work", "kwok", "upstream", *cache_skip)
        upstream = self.cache_dir / "upstream"
        if not upstream.exists():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            upstream.symlink_to(UPSTREAM_DIR, target_is_directory=True)
        self.count = 0

    def run(self, playbook: str, *args: str, extra: dict | None = None, json_report: bool = False,
            env: dict | None = None) -> Run:
        self.count += 1
        base = self.tmp / f"run{self.count}"
        dirs = {name: base / name for name in ("tmpdir", "local-tmp", "remote-tmp")}
        for directory in dirs.values():
            directory.mkdir(parents=True)
        inputs = base / "input"
        inputs.mkdir()
        vars_file = inputs / "vars.json"
        vars_file.write_text(json.dumps({**self.canaries.platform_vars(), **(extra or {})}))
        vars_file.chmod(0o600)
        log = base / "ansible.log"
        run_env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOG_PATH": str(log),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json" if json_report else "ansible.builtin.default",
            "TMPDIR": str(dirs["tmpdir"]), "ANSIBLE_LOCAL_TEMP": str(dirs["local-tmp"]),
            "ANSIBLE_REMOTE_TEMP": str(dirs["remote-tmp"]), "MLOPS_CACHE_DIR": str(self.cache_dir),
            **(env or {}),
        }
        started = time.time() - 1
        proc = subprocess.run(
            [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-vvv", playbook,
             "-e", f"@{vars_file}", *args],
            capture_output=True, text=True, env=run_env, cwd=ROOT, timeout=900, check=False,
        )
        output = proc.stdout + proc.stderr + (log.read_text() if log.exists() else "")
        leaks: dict[str, list[str]] = {}
        found = self.canaries.found_in(proc.stdout + proc.stderr)
        if found:
            leaks["output"] = found
        if log.exists() and (found := self.canaries.found_in(log.read_text())):
            leaks["log file"] = found
        report = None
        if json_report:
            start = proc.stdout.find("\n{\n")
            text = proc.stdout if proc.stdout.startswith("{") else proc.stdout[start + 1:]
            assert start >= 0 or proc.stdout.startswith("{"), f"no JSON report\n{proc.stdout[-3000:]}"
            report = json.loads(text)
            if found := self.canaries.found_in(json.dumps(report, ensure_ascii=False)):
                leaks["json report"] = found
        for path in self._written_files(dirs.values(), started):
            try:
                content = path.read_bytes().decode("utf-8", "replace")
            except OSError:
                continue
            if found := self.canaries.found_in(content):
                leaks[str(path)] = found
        return Run(proc.returncode, output, report, leaks, self._loose_modes())

    def _written_files(self, temp_dirs, since: float):
        for directory in temp_dirs:
            yield from (p for p in directory.rglob("*") if p.is_file())
        if self.cache_dir.exists():
            for path in self.cache_dir.rglob("*"):
                rel = path.relative_to(self.cache_dir)
                if rel.parts[0] in self.cache_skip or self._in_destination(path):
                    continue
                if path.is_file() and not path.is_symlink() and path.stat().st_mtime >= since:
                    yield path
        for dirpath, dirnames, filenames in os.walk(ROOT):
            dirnames[:] = [d for d in dirnames if d not in CHECKOUT_SKIP
                           and not self._in_destination(pathlib.Path(dirpath) / d)]
            for name in filenames:
                path = pathlib.Path(dirpath) / name
                if not path.is_symlink() and path.stat().st_mtime >= since:
                    yield path

    def _in_destination(self, path: pathlib.Path) -> bool:
        return any(path == d or d in path.parents for d in self.destinations)

    def _loose_modes(self) -> list[str]:
        loose = []
        for destination in self.destinations:
            if not destination.exists():
                continue
            for path in [destination, *destination.rglob("*")]:
                mode = stat.S_IMODE(path.lstat().st_mode)
                want = 0o700 if path.is_dir() else 0o600
                if mode != want:
                    loose.append(f"{path} {mode:o}")
        return loose
