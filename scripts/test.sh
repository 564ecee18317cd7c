#!/usr/bin/env bash
# The gate (`make test`): brings up the offline cluster (building its binaries on a cold
# cache) while the static checks run, then runs the tests that need it, and deletes the
# cluster at the end, also on failure (KEEP_CLUSTER=1 keeps it). Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$PWD/.collections" ANSIBLE_CONFIG="$PWD/ansible.cfg"
LOGS="${MLOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlops-platform}/logs"
mkdir -p "$LOGS"
passed=0; failed=0; failures=()
declare -A pids=()

cleanup() {
  local name
  for name in "${!pids[@]}"; do kill "${pids[$name]}" 2>/dev/null; done
  if [[ ${KEEP_CLUSTER:-0} != 1 ]]; then roles/cluster/files/offline-cluster.sh down >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

step() {
  local name=$1 start=$SECONDS; shift
  printf '\n=== %s\n' "$name"
  if "$@"; then
    passed=$((passed + 1)); printf '=== %s: ok (%d s)\n' "$name" $((SECONDS - start))
  else
    failed=$((failed + 1)); failures+=("$name"); printf '=== %s: FAILED (%d s)\n' "$name" $((SECONDS - start))
  fi
}

# background NAME CMD...: start CMD now, its output in $LOGS/test-NAME.log; `step NAME wait_for NAME` collects it.
background() {
  local name=$1; shift
  "$@" >"$LOGS/test-$name.log" 2>&1 &
  pids[$name]=$!
}

wait_for() {
  wait "${pids[$1]}"; local rc=$?
  unset "pids[$1]"
  cat "$LOGS/test-$1.log"
  return $rc
}

total=$SECONDS
# Everything the tests need that takes long on a cold machine starts in the background while the
# static checks run; warm, each is a cache hit in seconds:
# - the offline cluster (etcd, Kubernetes and KWOK built from the Go module proxy, then started);
# - promtool, prometheus and the Prometheus Operator (roles/monitoring);
# - the Kafka broker's jars (Maven, 5-11 s cold) for tests/integration/test_kafka_real.py;
# - the secret controllers and their CRDs for tests/integration/test_secret_controllers.py: the Sealed
#   Secrets controller (about 6 min cold) and the External Secrets Operator (13-15 min cold on 2 busy
#   cores: it links every provider's SDK);
# - Argo CD and kustomize (roles/gitops) for tests/integration/test_gitops_argocd.py.
background cluster-up roles/cluster/files/offline-cluster.sh up
background tools-build roles/monitoring/files/upstream.sh build
background kafka-build roles/kafka/files/broker.sh build
background secrets-build bash -c 'roles/secrets/files/controllers.sh build && roles/secrets/files/controllers.sh crds'
background argocd-build roles/gitops/files/argocd.sh build

step yamllint yamllint --strict .
step ansible-lint ansible-lint --profile production
step ruff ruff check .
step sanity scripts/sanity.sh
step units python -m pytest -q tests/unit
step tools-build wait_for tools-build
step kafka-build wait_for kafka-build
step secrets-build wait_for secrets-build
step argocd-build wait_for argocd-build
step cluster-up wait_for cluster-up
if [[ " ${failures[*]} " == *" cluster-up "* ]]; then
  failed=$((failed + 2)); failures+=(integration molecule)
  echo "=== integration, molecule: not run, the cluster did not come up"
else
  step integration python -m pytest -q tests/integration
  step molecule molecule test -s default
fi

printf '\n=== total %d s; failed: %s\n' $((SECONDS - total)) "${failures[*]:-none}"
echo "gate: $passed passed, $failed failed"
((failed == 0))
