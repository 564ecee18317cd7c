#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine, idempotently:
#   - .venv with the pinned Python toolchain (Python 3.12, from pyenv when it is not on PATH)
#   - .collections/ansible_collections/mlops/platform -> this checkout, so `mlops.platform.*`
#     resolves for ansible-playbook, ansible-lint, ansible-doc and Molecule (ansible.cfg)
#   - the pip bootstrap that offline `ansible-test sanity` needs
#   - Debian packages the gate uses (shellcheck for ansible-test's shellcheck test)
#   - the Prometheus Operator's CRDs from its pinned Go module (the monitoring role applies them)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV="$ROOT/.venv"

log() { printf '[setup] %s\n' "$*" >&2; }

find_python() {
  local c root
  for c in "${PYTHON:-}" python3.12; do
    [[ -n $c ]] && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { command -v "$c"; return; }
  done
  if root=$(pyenv root 2>/dev/null); then
    while read -r c; do
      "$c" -c 'import sys' 2>/dev/null && { echo "$c"; return; }
    done < <(printf '%s\n' "$root"/versions/3.12*/bin/python3.12 | sort -V -r)
  fi
  log "ERROR: Python 3.12 not found: install it (e.g. 'pyenv install 3.12') or set PYTHON=/path/to/python3.12"
  exit 1
}

# 0. Debian packages, when missing and we may install them.
SYSTEM_PACKAGES=(shellcheck redis-server)
missing=()
for p in "${SYSTEM_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    log "WARNING: missing Debian packages ${missing[*]}: install them (sudo apt-get install ${missing[*]})"
  fi
fi

# 1. virtualenv with the pinned toolchain; reinstalled only when requirements.txt changes.
stamp="$VENV/.requirements.sha256"
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [[ ! -x $VENV/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  py=$(find_python)
  log "installing the toolchain into .venv with $py"
  [[ -x $VENV/bin/python ]] || "$py" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
  "$VENV/bin/python" -m pip check
  echo "$want" >"$stamp"
fi

# 1b. the real MLflow of tests/integration/test_mlflow_real.py, in its own venv (.venv-mlflow):
#     its dependency tree would fight requirements.txt; reinstalled only when requirements-mlflow.txt changes.
scripts/mlflow-env.sh >/dev/null

# 2. the collection on a collections path, without copying it.
mkdir -p .collections/ansible_collections/mlops
ln -sfn ../../.. .collections/ansible_collections/mlops/platform

# 3. offline ansible-test: it bootstraps pip in its venvs with a get-pip script it downloads
#    from a host we cannot reach, but first looks for it in its cache. Put there a stand-in
#    that installs the same pinned pip from the wheel the package index serves.
"$VENV/bin/python" scripts/ansible_test_offline.py
# 4. the monitoring role's upstream CRDs (a Go module download, seconds; needs Go and the proxy).
if command -v go >/dev/null; then
  VIRTUAL_ENV="$VENV" roles/monitoring/files/upstream.sh crds >/dev/null
else
  log "WARNING: go is not on PATH: the monitoring role (monitoring_install: objects) needs roles/monitoring/files/upstream.sh crds"
fi
# 5. the kafka role's Strimzi CRDs (io.strimzi:api's Crds class, a Maven download, seconds).
if command -v mvn >/dev/null && command -v java >/dev/null; then
  roles/kafka/files/broker.sh crds >/dev/null
else
  log "WARNING: mvn or java is missing: the kafka role (kafka_mode: strimzi) needs roles/kafka/files/broker.sh crds"
fi
# 6. the processing role's Spark and Flink operator CRDs (a Go module and a Maven jar, 13 s cold).
if command -v go >/dev/null && command -v mvn >/dev/null; then
  VIRTUAL_ENV="$VENV" roles/processing/files/operators.sh crds >/dev/null
else
  log "WARNING: go or mvn is missing: the processing role needs roles/processing/files/operators.sh crds"
fi
log "ready: . .venv/bin/activate"
