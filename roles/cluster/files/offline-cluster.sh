#!/usr/bin/env bash
# Offline Kubernetes for mlops.platform: a real control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler) built from the Go module proxy, run as plain
# processes by `kwokctl --runtime binary`, with KWOK simulating the nodes.
#
#   offline-cluster.sh build        build (or reuse) the binaries in the cache
#   offline-cluster.sh up           build if needed, create or start the cluster
#   offline-cluster.sh down         delete the cluster (keeps the binary cache)
#   offline-cluster.sh status       exit 0 when the API server answers
#   offline-cluster.sh kubeconfig   print the kubeconfig path
#   offline-cluster.sh env          print the settings as shell assignments
#
# Binaries are cached per version under $MLOPS_CACHE_DIR (default ~/.cache/mlops-platform),
# outside the repository; a warm cache makes `up` take seconds. `up` and `down` print one
# line `result=created|started|reused|deleted|absent` on stdout; logs go to stderr.
# Opt-in: MLOPS_AUDIT_LOG=<path> when the cluster is created makes the API server write an audit
# log there (every request at level Metadata: who, verb, resource, no bodies); unset, no audit.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.33.13}"
ETCD_VERSION="${ETCD_VERSION:-v3.5.35}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
CLUSTER_NAME="${MLOPS_CLUSTER_NAME:-mlops-platform}"
NODES="${MLOPS_CLUSTER_NODES:-2}"
CACHE_DIR="${MLOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlops-platform}"
KUBECONFIG_PATH="${MLOPS_KUBECONFIG:-$CACHE_DIR/kubeconfig}"
AUDIT_LOG="${MLOPS_AUDIT_LOG:-}"
K8S_BIN="$CACHE_DIR/bin/kubernetes-$K8S_VERSION"
ETCD_BIN="$CACHE_DIR/bin/etcd-$ETCD_VERSION"
KWOK_BIN="$CACHE_DIR/bin/kwok-$KWOK_VERSION"
# One log directory per cluster: tests run clusters of their own next to the default one.
LOG_DIR="$CACHE_DIR/logs/$CLUSTER_NAME"
KUBECTL="$K8S_BIN/kubectl"
# kwokctl keeps its clusters here instead of ~/.kwok.
export KWOK_WORKDIR="$CACHE_DIR/kwok"

log() { printf '[offline-cluster] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need_go() {
  command -v go >/dev/null || die "go is not on PATH: install Go >= 1.26 (KWOK $KWOK_VERSION and etcd $ETCD_VERSION need it)"
}

# A throw-away main module whose replace directives pin each of the given modules'
# unpublished ("v0.0.0" / "../x") requirements to published versions: `go install pkg@v`
# refuses modules with replace directives (kubernetes/kubernetes#79384).
wrapper_module() {
  local dir=$1 require=$2 godebug=$3; shift 3
  rm -rf "$dir"; mkdir -p "$dir"
  {
    echo "module mlops.platform/offline-cluster-build"
    echo
    echo "go 1.24.0"
    [[ -n $godebug ]] && echo "$godebug"
    echo
    echo "require $require"
    echo
    if (($#)); then
      echo "replace ("
      printf '\t%s\n' "$@"
      echo ")"
    fi
  } >"$dir/go.mod"
}

build_kubernetes() {
  local b
  for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    [[ -x $K8S_BIN/$b ]] || break
    [[ $b == kubectl ]] && return 0
  done
  need_go
  log "building Kubernetes $K8S_VERSION (cold: 15-30 min on 2 cores)"
  local work="$CACHE_DIR/work/kubernetes-$K8S_VERSION" gomod staging_version="v0${K8S_VERSION#v1}"
  gomod=$(cd /tmp && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  [[ -f $gomod ]] || die "could not download k8s.io/kubernetes@$K8S_VERSION from the Go module proxy"
  # The authoritative list of staging modules is the release's own go.mod.
  local -a replaces=()
  while read -r mod; do replaces+=("$mod => $mod $staging_version"); done \
    < <(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod")
  ((${#replaces[@]} > 20)) || die "found only ${#replaces[@]} staging modules in $gomod"
  wrapper_module "$work" "k8s.io/kubernetes $K8S_VERSION" "$(grep -m1 '^godebug' "$gomod" || true)" "${replaces[@]}"
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local pkg=k8s.io/component-base/version
  local ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  mkdir -p "$K8S_BIN.tmp"
  (cd "$work" && go build -mod=mod -trimpath -ldflags "$ldflags" -o "$K8S_BIN.tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl)
  rm -rf "$K8S_BIN"; mv "$K8S_BIN.tmp" "$K8S_BIN"
}

build_etcd() {
  [[ -x $ETCD_BIN/etcd ]] && return 0
  need_go
  log "building etcd $ETCD_VERSION"
  local work="$CACHE_DIR/work/etcd-$ETCD_VERSION"
  # server/v3 already requires its sibling modules at published versions; only its own
  # `../api`-style replace directives stop `go install`, and those are ignored here.
  wrapper_module "$work" "go.etcd.io/etcd/server/v3 $ETCD_VERSION" ""
  mkdir -p "$ETCD_BIN.tmp"
  (cd "$work" && go build -mod=mod -trimpath -ldflags "-s -w" -o "$ETCD_BIN.tmp/etcd" go.etcd.io/etcd/server/v3)
  rm -rf "$ETCD_BIN"; mv "$ETCD_BIN.tmp" "$ETCD_BIN"
}

build_kwok() {
  [[ -x $KWOK_BIN/kwok && -x $KWOK_BIN/kwokctl ]] && return 0
  need_go
  log "building kwok/kwokctl $KWOK_VERSION"
  mkdir -p "$KWOK_BIN.tmp"
  GOBIN="$KWOK_BIN.tmp" go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
  rm -rf "$KWOK_BIN"; mv "$KWOK_BIN.tmp" "$KWOK_BIN"
}

cmd_build() {
  mkdir -p "$CACHE_DIR"
  # One build at a time: a second caller waits for the first, then finds the cache warm.
  exec 9>"$CACHE_DIR/build.lock"
  flock 9
  local start=$SECONDS
  build_etcd
  build_kwok
  build_kubernetes
  # Release the lock before anything long-lived starts: the cluster's processes would
  # inherit the descriptor and hold the lock for as long as they run.
  exec 9>&-
  log "binaries ready in $CACHE_DIR/bin ($((SECONDS - start)) s)"
}

kwokctl() {
  # KWOK_KUBE_VERSION makes kwokctl pass the flags of this Kubernetes version, not its newest.
  KWOK_KUBE_VERSION="$K8S_VERSION" \
  KWOK_KUBE_APISERVER_BINARY="$K8S_BIN/kube-apiserver" \
  KWOK_KUBE_CONTROLLER_MANAGER_BINARY="$K8S_BIN/kube-controller-manager" \
  KWOK_KUBE_SCHEDULER_BINARY="$K8S_BIN/kube-scheduler" \
  KWOK_CONTROLLER_BINARY="$KWOK_BIN/kwok" \
  KWOK_ETCD_BINARY="$ETCD_BIN/etcd" \
  KWOK_KUBECTL_BINARY="$KUBECTL" \
    "$KWOK_BIN/kwokctl" --name "$CLUSTER_NAME" "$@"
}

api_answers() {
  [[ -f $KUBECONFIG_PATH ]] && "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" --request-timeout=5s get --raw /readyz >/dev/null 2>&1
}

cluster_exists() {
  # The list first, then grep: `kwokctl ... | grep -q` under pipefail fails when grep stops reading
  # early (kwokctl gets SIGPIPE), and up would then recreate an existing cluster empty.
  local names
  [[ -x $KWOK_BIN/kwokctl ]] && names=$(kwokctl get clusters 2>/dev/null) && grep -qx -- "$CLUSTER_NAME" <<<"$names"
}

# With MLOPS_AUDIT_LOG: writes the policy (next to the log) and sets AUDIT_ARGS, the flags that make
# the API server use it; the later --audit-log-path wins over the one kwokctl passes.
AUDIT_ARGS=()
audit_args() {
  [[ -n $AUDIT_LOG ]] || return 0
  local policy="${AUDIT_LOG%.*}-policy.yaml"
  mkdir -p "$(dirname "$AUDIT_LOG")"
  printf '%s\n' 'apiVersion: audit.k8s.io/v1' 'kind: Policy' 'omitStages: [RequestReceived]' 'rules:' '  - level: Metadata' >"$policy"
  AUDIT_ARGS=(--kube-audit-policy "$policy" --extra-args "kube-apiserver=audit-log-path=$AUDIT_LOG")
}

cmd_up() {
  cmd_build
  local start=$SECONDS result=reused
  mkdir -p "$(dirname "$KUBECONFIG_PATH")" "$LOG_DIR"
  if api_answers; then
    log "cluster $CLUSTER_NAME already up"
  elif cluster_exists; then
    log "starting existing cluster $CLUSTER_NAME"
    result=started
    # Stop first: after one component died (the API server or etcd killed, a crash) the others still
    # run, and `kwokctl start` on such a half-running cluster waits its 2 minutes and fails, and the
    # cluster would be recreated empty. Stopping what still runs, then starting all, keeps etcd's data.
    kwokctl stop cluster >"$LOG_DIR/start.log" 2>&1 || true
    kwokctl start cluster --wait 2m >>"$LOG_DIR/start.log" 2>&1 || {
      log "start failed (see $LOG_DIR/start.log); recreating"; kwokctl delete cluster >/dev/null 2>&1 || true; }
    # A started cluster whose kubeconfig file was removed: write it again.
    if [[ ! -f $KUBECONFIG_PATH ]] && cluster_exists; then
      (umask 077; kwokctl get kubeconfig >"$KUBECONFIG_PATH" 2>>"$LOG_DIR/start.log") || rm -f "$KUBECONFIG_PATH"
    fi
  fi
  if ! api_answers; then
    log "creating cluster $CLUSTER_NAME (Kubernetes $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION)"
    result=created
    rm -f "$KUBECONFIG_PATH"
    # kwokctl create does nothing (and writes no kubeconfig) for a cluster it still knows.
    if cluster_exists; then kwokctl delete cluster >/dev/null 2>&1 || true; fi
    audit_args
    # Node leases of 30 s, not kwokctl's 200 s: a KWOK controller started again (up after a crash or
    # a stop) simulates no new pod until the lease of the one before it has expired.
    kwokctl create cluster --runtime binary --kubeconfig "$KUBECONFIG_PATH" --wait 3m "${AUDIT_ARGS[@]}" \
      --extra-args "kwok-controller=node-lease-duration-seconds=30" \
      >"$LOG_DIR/create.log" 2>&1 \
      || { tail -n 40 "$LOG_DIR/create.log" >&2; die "kwokctl create cluster failed (log: $LOG_DIR/create.log)"; }
  fi
  chmod 0600 "$KUBECONFIG_PATH"
  local have
  have=$("$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" get nodes -o name 2>/dev/null | wc -l)
  if ((have < NODES)); then
    kwokctl scale node --replicas "$NODES" >>"$LOG_DIR/create.log" 2>&1 || die "kwokctl scale node failed"
  fi
  "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" wait --for=condition=Ready node --all --timeout=120s >/dev/null \
    || die "nodes did not become Ready"
  log "cluster $CLUSTER_NAME up in $((SECONDS - start)) s; KUBECONFIG=$KUBECONFIG_PATH"
  echo "result=$result"
}

cmd_down() {
  if cluster_exists; then
    kwokctl delete cluster --kubeconfig "$KUBECONFIG_PATH" >&2
    log "cluster $CLUSTER_NAME deleted"
    echo "result=deleted"
  else
    log "cluster $CLUSTER_NAME not present"
    echo "result=absent"
  fi
  rm -f "$KUBECONFIG_PATH"
}

cmd_status() {
  if api_answers; then
    printf 'server %s\n' "$("$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" get --raw /version | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')"
    "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" get nodes
  else
    log "cluster $CLUSTER_NAME is not answering"; return 1
  fi
}

cmd_env() {
  printf 'K8S_VERSION=%s\nETCD_VERSION=%s\nKWOK_VERSION=%s\nMLOPS_CLUSTER_NAME=%s\nMLOPS_CACHE_DIR=%s\nKUBECONFIG=%s\n' \
    "$K8S_VERSION" "$ETCD_VERSION" "$KWOK_VERSION" "$CLUSTER_NAME" "$CACHE_DIR" "$KUBECONFIG_PATH"
}

case "${1:-}" in
  build) cmd_build ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  kubeconfig) echo "$KUBECONFIG_PATH" ;;
  env) cmd_env ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
