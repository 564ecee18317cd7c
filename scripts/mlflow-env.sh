#!/usr/bin/env bash
# Installs the real MLflow server the real-process tests run (tests/integration/test_mlflow_real.py)
# into its own virtualenv, .venv-mlflow: MLflow's dependency tree would fight the pins of
# requirements.txt. Idempotent: reinstalls only when requirements-mlflow.txt changes.
# Prints the venv's bin directory. Uses the Python of .venv (run scripts/setup.sh first) or $PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV="${MLFLOW_VENV:-$ROOT/.venv-mlflow}"
REQS="$ROOT/requirements-mlflow.txt"

log() { printf '[mlflow-env] %s\n' "$*" >&2; }

stamp="$VENV/.requirements.sha256"
want=$(sha256sum "$REQS" | cut -d' ' -f1)
if [[ ! -x $VENV/bin/mlflow || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  py=${PYTHON:-$ROOT/.venv/bin/python}
  if ! "$py" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
    log "ERROR: no Python 3.12 at $py: run scripts/setup.sh first or set PYTHON=/path/to/python3.12"
    exit 1
  fi
  log "installing MLflow into $VENV (a few minutes the first time)"
  [[ -x $VENV/bin/python ]] || "$py" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS"
  "$VENV/bin/python" -m pip check >&2
  echo "$want" >"$stamp"
fi
"$VENV/bin/mlflow" --version >&2
echo "$VENV/bin"
