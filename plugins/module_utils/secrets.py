# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The secrets role's logic over its secret specs ({namespace, team, secret: {name, type, data}}).

- ``secrets_specs(rows, settings)``: one spec per (namespace, secret), from the team namespace rows and
  the role's settings (names, ``s3``, ``mlflow``, ``registry``, ``database``, ``grafana``); ``missing``
  lists the empty settings a secret needs, by variable name.
- ``secrets_missing(specs)``: names of the empty settings and values the secrets need, each with the
  secret that needs it; names only, never values.
- ``secrets_objects(specs)``: the Secrets of direct mode, labelled for pruning and cost attribution.
- ``missing_errors(specs)``: the message naming them, the role's check.
- ``grafana_errors(mode, grafana)``: a short or well-known Grafana admin password, the role's check.
- ``redis_errors(mode, redis)``: a short, well-known or unquotable Redis password, the role's check.
- ``airflow_errors(mode, airflow)``: an invalid Fernet key, short or well-known JWT/API secrets, a metadata
  database URL Airflow cannot share between its pods, the role's check.
- ``variable_errors(values, context)``: all of them in direct mode, run by mlops.platform.validate_roles
  before anything changes.

Used by the role's filters (plugins/filter/secrets.py) and by validate_roles; plain Python, no cluster.
"""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote

from ansible_collections.mlops.platform.plugins.module_utils.teams import team_namespaces, validate_teams

# The start of the message naming empty values (missing_errors), in the role's check and validate_roles'.
MISSING = "these values are empty, set them (from a vault) or drop the secret from the teams' `secrets` lists: "


def secrets_missing(specs: list) -> list[str]:
    out: list[str] = []
    for spec in specs:
        where = f"{spec['namespace']}/{spec['secret']['name']}"
        for name in (spec.get("missing") or []) + (spec.get("missing_training") or []):
            out.append(f"{name} (for {where})")
        for key, value in sorted((spec["secret"].get("data") or {}).items()):
            if value is None or str(value) == "":
                out.append(f"{where}.{key}")
    return list(dict.fromkeys(out))


def secrets_objects(specs: list) -> list[dict]:
    objects = []
    for spec in specs:
        labels = {"app.kubernetes.io/managed-by": "mlops.platform", "app.kubernetes.io/part-of": "mlops-platform"}
        if spec.get("team"):
            labels["mlops.platform/team"] = spec["team"]
        secret = spec["secret"]
        objects.append({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": secret["name"], "namespace": spec["namespace"], "labels": labels},
            "type": secret["type"],
            "data": {k: base64.b64encode(str(v).encode()).decode() for k, v in sorted((secret.get("data") or {}).items())},
        })
    return objects


# endpoint_url is optional: empty means AWS S3 itself (dev/staging/prod), and the endpoint keys
# (AWS_ENDPOINT_URL, MLFLOW_S3_ENDPOINT_URL, RCLONE_CONFIG_S3_ENDPOINT) are then left out of the
# Secret, so clients use the region's default endpoint instead of an empty one.
S3_KEYS = ("access_key_id", "secret_access_key", "region")
S3_ENDPOINT_KEYS = ("AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "RCLONE_CONFIG_S3_ENDPOINT")
MLFLOW_KEYS = ("tracking_uri", "tracking_username", "tracking_password", "flask_server_secret_key")
REGISTRY_KEYS = ("server", "username", "password")
DATABASE_KEYS = ("username", "password", "host", "port", "database", "driver")
GRAFANA_KEYS = ("admin_user", "admin_password")
REDIS_KEYS = ("password", "host", "port")
# Airflow's Secret (the processing role's processing_airflow_secret): its keys are the ones the role's
# Deployments read (processing.SECRET_KEYS, checked by the unit tests), from these settings.
AIRFLOW_SECRET_KEYS = {"sql_alchemy_conn": "sql_alchemy_conn", "fernet_key": "fernet_key",
                       "jwt_secret": "jwt_secret", "api_secret_key": "api_secret_key"}
AIRFLOW_DATABASE_KEYS = ("database_username", "database_password", "database_host", "database_port", "database_name")
AIRFLOW_MLFLOW_KEYS = ("tracking_uri", "tracking_username", "tracking_password")


def _text(value) -> str:
    """A secret value as the Secret stores it; unset (None) is empty, so secrets_missing names it."""
    return "" if value is None else str(value)


def _missing(prefix: str, settings: dict, keys: tuple) -> list[str]:
    return [f"{prefix}.{k}" for k in keys if settings.get(k) is None or settings.get(k) == ""]


def _true(value) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true", "yes", "on", "y")


def secrets_specs(rows: list, settings: dict) -> list[dict]:
    """{namespace, team, missing, [missing_training], secret: {name, type, data}} per (namespace, secret)."""
    s3, mlflow, reg = settings.get("s3") or {}, settings.get("mlflow") or {}, settings.get("registry") or {}
    db, grafana = settings.get("database") or {}, settings.get("grafana") or {}
    redis, airflow = settings.get("redis") or {}, settings.get("airflow") or {}
    platform, registry = settings["platform_secret_name"], settings["registry_secret_name"]
    redis_team = redis_team_secret(redis)
    specs = []
    for row in rows or []:
        if redis_team and redis_team in row["secrets"]:
            specs.append({"namespace": row["namespace"], "team": row["team"],
                          "missing": _missing("secrets_redis", redis, REDIS_KEYS),
                          "secret": {"name": redis_team, "type": "Opaque", "data": redis_client_data(redis)}})
        if platform in row["secrets"]:
            spec = {"namespace": row["namespace"], "team": row["team"], "missing": _missing("secrets_s3", s3, S3_KEYS)}
            data = {"AWS_ACCESS_KEY_ID": s3.get("access_key_id"), "AWS_SECRET_ACCESS_KEY": s3.get("secret_access_key"),
                    "AWS_DEFAULT_REGION": s3.get("region"), "AWS_ENDPOINT_URL": s3.get("endpoint_url")}
            if row["training"]:
                spec["missing_training"] = _missing("secrets_mlflow", mlflow, MLFLOW_KEYS)
                data.update({
                    "MLFLOW_TRACKING_URI": mlflow.get("tracking_uri"),
                    "MLFLOW_TRACKING_USERNAME": mlflow.get("tracking_username"),
                    "MLFLOW_TRACKING_PASSWORD": mlflow.get("tracking_password"),
                    "MLFLOW_S3_ENDPOINT_URL": mlflow.get("s3_endpoint_url") or s3.get("endpoint_url"),
                    "MLFLOW_FLASK_SERVER_SECRET_KEY": mlflow.get("flask_server_secret_key"),
                    "RCLONE_CONFIG_S3_TYPE": "s3",
                    "RCLONE_CONFIG_S3_PROVIDER": s3.get("rclone_provider"),
                    "RCLONE_CONFIG_S3_ACCESS_KEY_ID": s3.get("access_key_id"),
                    "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": s3.get("secret_access_key"),
                    "RCLONE_CONFIG_S3_REGION": s3.get("region"),
                    "RCLONE_CONFIG_S3_ENDPOINT": s3.get("endpoint_url"),
                })
            spec["secret"] = {"name": platform, "type": "Opaque",
                              "data": {k: _text(v) for k, v in data.items() if k not in S3_ENDPOINT_KEYS or _text(v)}}
            specs.append(spec)
        if registry in row["secrets"]:
            user, password = _text(reg.get("username")), _text(reg.get("password"))
            auth = {_text(reg.get("server")): {"username": reg.get("username"), "password": reg.get("password"),
                                               "email": reg.get("email"),
                                               "auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}
            specs.append({"namespace": row["namespace"], "team": row["team"],
                          "missing": _missing("secrets_registry", reg, REGISTRY_KEYS),
                          "secret": {"name": registry, "type": "kubernetes.io/dockerconfigjson",
                                     "data": {".dockerconfigjson": json.dumps({"auths": auth}, sort_keys=True)}}})
    if _true(db.get("enabled", False)):
        url = db.get("connection_url") or (
            f"{db.get('scheme')}://{quote(_text(db.get('username')), safe='')}:{quote(_text(db.get('password')), safe='')}"
            f"@{db.get('host')}:{db.get('port')}/{db.get('database')}")
        data = {k: _text(db.get(k)) for k in ("username", "password", "host", "port", "database", "driver")}
        data["connection-url"] = _text(url)
        specs.append({"namespace": db.get("namespace"), "team": "",
                      "missing": _missing("secrets_mlflow_database", db, DATABASE_KEYS),
                      "secret": {"name": db.get("name"), "type": "Opaque", "data": data}})
    if _true(grafana.get("enabled", False)):
        specs.append({"namespace": grafana.get("namespace"), "team": "",
                      "missing": _missing("secrets_grafana", grafana, GRAFANA_KEYS),
                      "secret": {"name": grafana.get("name"), "type": "Opaque",
                                 "data": {"admin-user": _text(grafana.get("admin_user")),
                                          "admin-password": _text(grafana.get("admin_password"))}}})
    # The Redis server's own Secret (the redis role's StatefulSet reads key password); none for an
    # external Redis (secrets_redis.namespace empty: ElastiCache keeps its AUTH token itself).
    if _true(redis.get("enabled", False)) and redis.get("namespace"):
        specs.append({"namespace": redis.get("namespace"), "team": "",
                      "missing": _missing("secrets_redis", redis, ("password",)),
                      "secret": {"name": redis.get("name"), "type": "Opaque",
                                 "data": {"password": _text(redis.get("password"))}}})
    if _true(airflow.get("enabled", False)):
        specs += airflow_specs(airflow, mlflow)
    return specs


def airflow_sql_alchemy_conn(airflow: dict) -> str:
    """``sql_alchemy_conn`` as set, or built from the database fields (user and password URL-quoted)."""
    if _text(airflow.get("sql_alchemy_conn")):
        return _text(airflow.get("sql_alchemy_conn"))
    user, password = quote(_text(airflow.get("database_username")), safe=""), quote(_text(airflow.get("database_password")), safe="")
    return (f"{_text(airflow.get('database_scheme')) or 'postgresql+psycopg2'}://{user}:{password}"
            f"@{_text(airflow.get('database_host'))}:{_text(airflow.get('database_port'))}/{_text(airflow.get('database_name'))}")


def airflow_specs(airflow: dict, mlflow: dict) -> list[dict]:
    """Airflow's Secret <namespace>/<name> (sql_alchemy_conn, fernet_key, jwt_secret, api_secret_key) and, when
    ``mlflow_secret_name`` is set, a Secret there with MLFLOW_TRACKING_URI/USERNAME/PASSWORD for the DAGs (a pod
    reads Secrets of its own namespace only: the teams' ml-platform Secrets are out of Airflow's reach)."""
    ns = airflow.get("namespace")
    missing = [] if _text(airflow.get("sql_alchemy_conn")) else _missing("secrets_airflow", airflow, AIRFLOW_DATABASE_KEYS)
    missing += _missing("secrets_airflow", airflow, ("fernet_key", "jwt_secret", "api_secret_key"))
    data = {"sql_alchemy_conn": airflow_sql_alchemy_conn(airflow)}
    data.update({key: _text(airflow.get(setting)) for key, setting in AIRFLOW_SECRET_KEYS.items() if key != "sql_alchemy_conn"})
    specs = [{"namespace": ns, "team": "", "missing": missing,
              "secret": {"name": airflow.get("name"), "type": "Opaque", "data": data}}]
    if _text(airflow.get("mlflow_secret_name")):
        specs.append({"namespace": ns, "team": "", "missing": _missing("secrets_mlflow", mlflow, AIRFLOW_MLFLOW_KEYS),
                      "secret": {"name": airflow.get("mlflow_secret_name"), "type": "Opaque",
                                 "data": {"MLFLOW_TRACKING_URI": _text(mlflow.get("tracking_uri")),
                                          "MLFLOW_TRACKING_USERNAME": _text(mlflow.get("tracking_username")),
                                          "MLFLOW_TRACKING_PASSWORD": _text(mlflow.get("tracking_password"))}}})
    return specs


def redis_team_secret(redis: dict | None) -> str:
    """Name of the teams' Redis client Secret when secrets_redis is enabled, else ''."""
    redis = redis or {}
    return _text(redis.get("team_secret_name") or "redis") if _true(redis.get("enabled", False)) else ""


def redis_client_data(redis: dict) -> dict:
    """The keys of a team's Redis Secret: REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, REDIS_TLS, REDIS_URL."""
    tls = _true(redis.get("tls", False))
    host, port, password = _text(redis.get("host")), _text(redis.get("port")), _text(redis.get("password"))
    url = f"{'rediss' if tls else 'redis'}://:{quote(password, safe='')}@{host}:{port}/0"
    return {"REDIS_HOST": host, "REDIS_PORT": port, "REDIS_PASSWORD": password,
            "REDIS_TLS": "true" if tls else "false", "REDIS_URL": url}


# Passwords Grafana or a chart ships with: never the Grafana admin's.
WELL_KNOWN_PASSWORDS = ("admin", "prom-operator", "password", "changeme", "grafana")


def grafana_errors(mode: str, grafana: dict | None) -> list[str]:
    """In direct mode with ``secrets_grafana.enabled``: the admin password must have 12+ characters and not be
    well known. The message names the setting, never the value (the role's check and validate_roles')."""
    grafana = grafana or {}
    if mode != "direct" or not _true(grafana.get("enabled", False)):
        return []
    password = _text(grafana.get("admin_password"))
    if len(password) >= 12 and password.lower() not in WELL_KNOWN_PASSWORDS:
        return []
    return ["secrets_grafana.admin_password must have 12+ characters and not be a default Grafana or a chart ships with "
            "(it is the Grafana admin's password). Fix: set it from a vault, or set secrets_grafana.enabled: false and "
            f"provide the Secret {grafana.get('namespace') or 'monitoring'}/{grafana.get('name') or 'grafana-admin'} another way"]


# Passwords Redis's examples (foobared), charts and tutorials use: never the platform Redis's.
WELL_KNOWN_REDIS_PASSWORDS = ("foobared", "redis", "password", "changeme", "secret", "admin", "default")
# Written unquoted into `requirepass <password>` (redis.conf syntax): no whitespace, quotes or backslash.
_REDIS_PASSWORD = re.compile(r'^[!#-&(-\[\]-~]+$')


def redis_errors(mode: str, redis: dict | None) -> list[str]:
    """In direct mode with ``secrets_redis.enabled``: the password must have 16+ characters, not be well known,
    and hold no whitespace, quote or backslash. The message names the setting, never the value."""
    redis = redis or {}
    if mode != "direct" or not _true(redis.get("enabled", False)):
        return []
    password = _text(redis.get("password"))
    errors = []
    if len(password) < 16 or password.lower() in WELL_KNOWN_REDIS_PASSWORDS:
        errors.append("secrets_redis.password must have 16+ characters and not be a well-known one (every client "
                      "that reaches Redis could use it). Fix: set it from a vault, e.g. `openssl rand -base64 32`")
    if password and not _REDIS_PASSWORD.match(password):
        errors.append("secrets_redis.password holds whitespace, a quote or a backslash, which redis.conf's "
                      "requirepass line cannot carry unquoted. Fix: letters, digits and other punctuation only")
    return errors


# Secrets of Airflow's docs, examples and charts: never the platform's JWT or API secret.
WELL_KNOWN_AIRFLOW_SECRETS = ("secret", "changeme", "password", "airflow", "temporary_key", "jwt_secret", "secret_key")
# Metadata databases the scheduler, DAG processor and API server (separate pods) can share.
AIRFLOW_SCHEMES = ("postgresql", "mysql")


def fernet_key_valid(key) -> bool:
    """A Fernet key as cryptography's Fernet takes it: 32 bytes, URL-safe base64 (44 characters with padding)."""
    text = _text(key).strip()
    if not re.match(r"^[A-Za-z0-9_-]{43}=$", text):
        return False
    try:
        return len(base64.urlsafe_b64decode(text)) == 32
    except ValueError:
        return False


def airflow_errors(mode: str, airflow: dict | None) -> list[str]:
    """In direct mode with ``secrets_airflow.enabled``: a valid Fernet key, JWT and API secrets of 16+ characters
    that are not well known, and a PostgreSQL or MySQL metadata database URL. Names settings, never values;
    empty values are the missing check's."""
    airflow = airflow or {}
    if mode != "direct" or not _true(airflow.get("enabled", False)):
        return []
    errors = []
    if _text(airflow.get("fernet_key")) and not fernet_key_valid(airflow.get("fernet_key")):
        errors.append("secrets_airflow.fernet_key is not a Fernet key (32 bytes, URL-safe base64, 44 characters); Airflow "
                      "could not encrypt connections and variables. Fix: set it from a vault, made with "
                      "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`")
    for key in ("jwt_secret", "api_secret_key"):
        value = _text(airflow.get(key))
        if value and (len(value) < 16 or value.lower() in WELL_KNOWN_AIRFLOW_SECRETS):
            errors.append(f"secrets_airflow.{key} must have 16+ characters and not be a well-known one (it signs Airflow's "
                          "API tokens). Fix: set it from a vault, e.g. `openssl rand -base64 32`")
    conn = airflow_sql_alchemy_conn(airflow)
    scheme = conn.split("://", 1)[0].split("+", 1)[0] if "://" in conn else ""
    user_set = _text(airflow.get("sql_alchemy_conn")) or all(_text(airflow.get(k)) for k in AIRFLOW_DATABASE_KEYS)
    if user_set and scheme not in AIRFLOW_SCHEMES:
        errors.append("secrets_airflow: the metadata database URL (sql_alchemy_conn, or database_scheme) is not "
                      f"{' or '.join(AIRFLOW_SCHEMES)}; Airflow's pods share it, so SQLite cannot be it. Fix: e.g. "
                      "postgresql+psycopg2://<user>:<password>@<host>:5432/airflow")
    return errors


def variable_errors(values: dict, context: dict | None = None) -> list[str]:
    """In direct mode, the Grafana admin password's check and the names of the empty values the teams'
    secrets need (never the values).

    The team model's own problems are the team_isolation check's; with an invalid model this finds nothing.
    """
    if values.get("secrets_mode", "direct") != "direct" or validate_teams(values.get("secrets_teams")):
        return []
    grafana = values.get("secrets_grafana") or {}
    # An empty password is named with the empty values; a short or well-known one here.
    weak = grafana_errors("direct", grafana) if _text(grafana.get("admin_password")) else []
    redis = values.get("secrets_redis") or {}
    weak += redis_errors("direct", redis) if _text(redis.get("password")) else []
    airflow = values.get("secrets_airflow") or {}
    weak += airflow_errors("direct", airflow)
    weak += airflow_place_errors(airflow, context or {})
    settings = {"platform_secret_name": values.get("secrets_platform_secret_name", "ml-platform"),
                "registry_secret_name": values.get("secrets_registry_secret_name", "ghcr"),
                **{key: values.get(f"secrets_{key}") or {} for key in ("s3", "mlflow", "registry", "grafana", "redis", "airflow")},
                "database": values.get("secrets_mlflow_database") or {}}
    return missing_errors(secrets_specs(team_namespaces(values.get("secrets_teams")), settings)) + weak


def airflow_place_errors(airflow: dict, context: dict) -> list[str]:
    """With the processing role's values in ``context`` (validate_roles) and Airflow on: the Secret goes where
    its Deployments read it, and they read the MLflow Secret (processing_airflow_env_from_secrets)."""
    if not _true(airflow.get("enabled", False)) or not _true(context.get("processing_airflow", False)):
        return []
    errors = []
    where = (context.get("processing_airflow_namespace", "airflow"), context.get("processing_airflow_secret", "airflow"))
    if (airflow.get("namespace"), airflow.get("name")) != where:
        errors.append(f"secrets_airflow: puts Airflow's Secret at {airflow.get('namespace')}/{airflow.get('name')}, its pods read "
                      f"{where[0]}/{where[1]}. Fix: the same namespace (processing_airflow_namespace) and name "
                      "(processing_airflow_secret)")
    mlflow_secret = _text(airflow.get("mlflow_secret_name"))
    if mlflow_secret and mlflow_secret not in (context.get("processing_airflow_env_from_secrets") or []):
        errors.append(f"secrets_airflow.mlflow_secret_name: {mlflow_secret} is made for Airflow's DAGs but not read. Fix: "
                      "add it to processing_airflow_env_from_secrets, or set it to ''")
    return errors


def missing_errors(specs: list) -> list[str]:
    """``[message]`` naming every empty value the secrets need (``secrets_missing``), or ``[]``."""
    missing = secrets_missing(specs)
    return [MISSING + ", ".join(missing)] if missing else []
