#!/usr/bin/env bash
# The gate (`make test`): brings up the offline cluster (building its binaries on a cold
# cache) while the static checks run, then runs the tests that need it, and deletes the
# cluster at the end, also on failure (KEEP_CLUSTER=1 keeps it). Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$PWD/.collections" ANSIBLE_CONFIG="$PWD/ansible.cfg"
CLUSTER=roles/cluster/files/offline-cluster.sh
LOGS="${MLOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlops-platform}/logs"
mkdir -p "$LOGS"
passed=0; failed=0; failures=(); cluster_pid=""; tools_pid=""; kafka_pid=""
UPSTREAM=roles/monitoring/files/upstream.sh
KAFKA=roles/kafka/files/broker.sh
ARGOCD=roles/gitops/files/argocd.sh

cleanup() {
  [[ -n $cluster_pid ]] && kill "$cluster_pid" 2>/dev/null
  [[ -n $tools_pid ]] && kill "$tools_pid" 2>/dev/null
  [[ -n $kafka_pid ]] && kill "$kafka_pid" 2>/dev/null
  [[ -n ${argocd_pid:-} ]] && kill "$argocd_pid" 2>/dev/null
  if [[ ${KEEP_CLUSTER:-0} != 1 ]]; then "$CLUSTER" down >/dev/null 2>&1 || true; fi
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

wait_cluster() {
  wait "$cluster_pid"; local rc=$?; cluster_pid=""
  cat "$LOGS/test-cluster-up.log"
  return $rc
}

wait_tools() {
  wait "$tools_pid"; local rc=$?; tools_pid=""
  cat "$LOGS/test-tools-build.log"
  return $rc
}

wait_kafka() {
  wait "$kafka_pid"; local rc=$?; kafka_pid=""
  cat "$LOGS/test-kafka-build.log"
  return $rc
}

total=$SECONDS
# The cluster comes up in the background (a cold build takes many minutes) while the
# static checks run, and so do promtool and prometheus (built from the Go module proxy).
"$CLUSTER" up >"$LOGS/test-cluster-up.log" 2>&1 &
cluster_pid=$!
"$UPSTREAM" build >"$LOGS/test-tools-build.log" 2>&1 &
tools_pid=$!
# And the Kafka broker's jars (Maven, 5-11 s cold) for tests/integration/test_kafka_real.py.
"$KAFKA" build >"$LOGS/test-kafka-build.log" 2>&1 &
kafka_pid=$!
# And Argo CD (39 s warm, see the README's GitOps section) for tests/integration/test_gitops_argocd.py.
"$ARGOCD" build >"$LOGS/test-argocd-build.log" 2>&1 &
argocd_pid=$!

step yamllint yamllint --strict .
step ansible-lint ansible-lint --profile production
step ruff ruff check .
step sanity scripts/sanity.sh
step units python -m pytest -q tests/unit
step tools-build wait_tools
step kafka-build wait_kafka
step argocd-build wait "$argocd_pid"
step cluster-up wait_cluster
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
