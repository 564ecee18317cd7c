#!/usr/bin/env bash
# The pinned Apache Airflow that runs the DAGs the processing role ships (roles/processing/files/dags),
# in its own virtualenv, .venv-airflow: Airflow's dependency tree would fight the pins of
# requirements.txt (.venv) and requirements-mlflow.txt (.venv-mlflow).
#
#   airflow.sh env     install (when missing or when airflow-requirements.txt changed) and print the
#                      venv's bin directory; scripts/setup.sh and the gate (scripts/test.sh) run it
#   airflow.sh path    print the bin directory of an installed, current venv; fails otherwise
#   airflow.sh check   import the DAGs with Airflow's DagBag in a throw-away AIRFLOW_HOME and fail
#                      on any import error (what the scheduler's DAG processor would report)
#
# airflow-requirements.txt is a full lock (pip freeze of a resolved install on Python 3.12) installed
# with --no-deps and then `pip check`ed: no resolver run, the same tree everywhere, about a minute
# cold from the package index (Airflow's own resolution takes several). The venv records the lock's
# sha256 in .requirements.sha256, like .venv and .venv-mlflow.
# Uses the Python of .venv (run scripts/setup.sh first) or $PYTHON (3.12); AIRFLOW_VENV moves the venv.
#
# Running the smoke DAG by hand against an MLflow (the team's ml-platform Secret gives these variables):
#   export AIRFLOW_HOME=$(mktemp -d) AIRFLOW__CORE__DAGS_FOLDER=$PWD/roles/processing/files/dags \
#          AIRFLOW__CORE__LOAD_EXAMPLES=False MLFLOW_TRACKING_URI=http://... \
#          MLFLOW_TRACKING_USERNAME=... MLFLOW_TRACKING_PASSWORD=...
#   bin=$(roles/processing/files/airflow.sh env) && "$bin/airflow" db migrate && "$bin/airflow" dags test mlflow_smoke
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
VENV="${AIRFLOW_VENV:-$ROOT/.venv-airflow}"
REQS="$HERE/airflow-requirements.txt"
DAGS="$HERE/dags"

log() { printf '[airflow] %s\n' "$*" >&2; }

stamp="$VENV/.requirements.sha256"
want=$(sha256sum "$REQS" | cut -d' ' -f1)
current() { [[ -x $VENV/bin/airflow && -f $stamp && $(cat "$stamp") == "$want" ]]; }

install() {
  current && return 0
  local py=${PYTHON:-$ROOT/.venv/bin/python}
  if ! "$py" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
    log "ERROR: no Python 3.12 at $py: run scripts/setup.sh first or set PYTHON=/path/to/python3.12"
    exit 1
  fi
  log "installing Airflow into $VENV (about a minute the first time)"
  # One writer at a time: setup and the gate may both ask for it.
  mkdir -p "$(dirname "$VENV")"
  exec 9>"$VENV.lock"
  flock 9
  current && return 0
  rm -f "$stamp"
  [[ -x $VENV/bin/python ]] || "$py" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$REQS"
  "$VENV/bin/python" -m pip check >&2
  log "installed Airflow $("$VENV/bin/airflow" version)"
  echo "$want" >"$stamp"
}

case "${1:-env}" in
  env)
    install
    echo "$VENV/bin"
    ;;
  path)
    current || { log "ERROR: $VENV is missing or older than $REQS: run $0 env"; exit 1; }
    echo "$VENV/bin"
    ;;
  check)
    install
    home=$(mktemp -d)
    trap 'rm -rf "$home"' EXIT
    AIRFLOW_HOME="$home" AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__DAGS_FOLDER="$DAGS" \
      "$VENV/bin/python" - "$DAGS" <<'EOF'
import sys
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])
for path, warnings in bag.captured_warnings.items():
    print(f"{path}: warning: {' | '.join(warnings)}", file=sys.stderr)
for path, error in bag.import_errors.items():
    print(f"{path}: {error}", file=sys.stderr)
if bag.import_errors or not bag.dags:
    sys.exit(f"{len(bag.import_errors)} import error(s), {len(bag.dags)} DAG(s) in {sys.argv[1]}")
for dag_id, dag in sorted(bag.dags.items()):
    print(dag_id, " ".join(sorted(dag.task_ids)))
EOF
    ;;
  *)
    echo "usage: $0 env|path|check" >&2
    exit 2
    ;;
esac
