#!/usr/bin/env bash
# Upstream Prometheus pieces for mlops.platform, taken from the Go module proxy at pinned
# versions and cached outside the repository (like the offline cluster's binaries):
#
#   upstream.sh crds      the Prometheus Operator's CRDs and operator RBAC from its module's own
#                         files (example/prometheus-operator-crd, example/rbac): the rules file
#                         (printed) and the CRDs as a List beside it (<same name>-crds.json)
#   upstream.sh build     promtool and prometheus built from github.com/prometheus/prometheus, and
#                         the operator from github.com/prometheus-operator/prometheus-operator
#   upstream.sh path X    print the path of X: crds | promtool | prometheus | operator
#   upstream.sh env       print the settings as shell assignments
#
# Nothing fetched or built here is committed. Logs go to stderr; stdout carries the path.
set -euo pipefail

# v0.93.0: the newest release whose three modules (the operator, pkg/apis/monitoring and pkg/client)
# the Go module proxy serves; it refuses pkg/client v0.94.0, so 0.94's operator cannot be built.
OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.93.0}"
PROMETHEUS_MODULE_VERSION="${PROMETHEUS_MODULE_VERSION:-v0.316.0}"
export LOG_TAG=upstream  # the shared functions tag their log lines with it
# shellcheck source-path=SCRIPTDIR source=../../../scripts/lib/upstream.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/lib/upstream.sh"
CRDS_FILE="$CACHE_DIR/upstream/prometheus-operator-$OPERATOR_VERSION.json"
CRD_LIST="$CACHE_DIR/upstream/prometheus-operator-$OPERATOR_VERSION-crds.json"
PROM_BIN="$CACHE_DIR/bin/prometheus-$PROMETHEUS_MODULE_VERSION"
OPERATOR_BIN="$CACHE_DIR/bin/prometheus-operator-$OPERATOR_VERSION"

cmd_crds() {
  [[ -s $CRDS_FILE && -s $CRD_LIST ]] && { echo "$CRDS_FILE"; return; }
  need_go 1.26.7 "github.com/prometheus/prometheus $PROMETHEUS_MODULE_VERSION"
  log "fetching github.com/prometheus-operator/prometheus-operator@$OPERATOR_VERSION"
  local dir python
  dir=$(module_dir "github.com/prometheus-operator/prometheus-operator@$OPERATOR_VERSION")
  mkdir -p "$(dirname "$CRDS_FILE")"
  python=$(python_bin)
  # JSON, not YAML: a converge reads 4 MiB of CRDs in milliseconds instead of seconds. Two files:
  # the operator's ClusterRole rules with the release (the role renders the ClusterRole), and the
  # CRDs as a v1 List that the role hands to k8s_bundle as its src (read by the module, never
  # templated), each with the labels the collection puts on everything it applies
  # (tests/unit/test_monitoring.py checks them against the role's).
  "$python" - "$dir" "$OPERATOR_VERSION" "$CRDS_FILE.tmp" "$CRD_LIST.tmp" <<'PY'
import glob, json, os, sys
import yaml
class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """YAML 1.1 reads a plain `=` (an enum value of the matchers) as the `value` type: keep it a string."""
Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))
src, version, rules_out, crds_out = sys.argv[1:]
module = "github.com/prometheus-operator/prometheus-operator"
def docs(pattern):
    found = []
    for path in sorted(glob.glob(os.path.join(src, pattern))):
        with open(path, encoding="utf-8") as handle:
            found += [d for d in yaml.load_all(handle, Loader=Loader) if d]
    return found
crds = docs("example/prometheus-operator-crd/*.yaml")
rbac = docs("example/rbac/prometheus-operator/prometheus-operator-cluster-role.yaml")
if len(crds) < 10 or not rbac:
    sys.exit(f"{src}: expected 10 CRDs and the operator ClusterRole, found {len(crds)} and {len(rbac)}")
labels = {"app.kubernetes.io/managed-by": "mlops.platform", "app.kubernetes.io/part-of": "mlops-platform",
          "app.kubernetes.io/name": "prometheus-operator", "app.kubernetes.io/component": "monitoring"}
for crd in crds:
    crd["metadata"]["labels"] = {**(crd["metadata"].get("labels") or {}), **labels}
with open(rules_out, "w", encoding="utf-8") as handle:
    json.dump({"module": module, "version": version, "crds": len(crds), "operator_cluster_role_rules": rbac[0]["rules"]},
              handle, sort_keys=True)
with open(crds_out, "w", encoding="utf-8") as handle:
    json.dump({"apiVersion": "v1", "kind": "List", "metadata": {"annotations": {"mlops.platform/upstream": f"{module}@{version}"}},
               "items": crds}, handle, sort_keys=True)
PY
  mv "$CRD_LIST.tmp" "$CRD_LIST"
  mv "$CRDS_FILE.tmp" "$CRDS_FILE"
  log "CRDs of prometheus-operator $OPERATOR_VERSION in $CRDS_FILE"
  echo "$CRDS_FILE"
}

build_prometheus() {
  [[ -x $PROM_BIN/promtool && -x $PROM_BIN/prometheus ]] && return 0
  local start=$SECONDS minor="${PROMETHEUS_MODULE_VERSION#v0.}" pkg=github.com/prometheus/common/version version
  # Module version v0.3MM.P is Prometheus 3.MM.P (the repository tags both).
  version="3.$((10#${minor:1:2})).${minor#*.}"
  log "building promtool and prometheus from github.com/prometheus/prometheus@$PROMETHEUS_MODULE_VERSION"
  rm -rf "$PROM_BIN.tmp"; mkdir -p "$PROM_BIN.tmp"
  # remove_all_sd: no cloud service discovery (static and file configs remain), a much
  # smaller build; the web UI assets are not embedded (the HTTP API is all the tests use).
  GOBIN="$PROM_BIN.tmp" go install -trimpath -tags remove_all_sd \
    -ldflags "-s -w -X $pkg.Version=$version -X $pkg.Revision=$PROMETHEUS_MODULE_VERSION -X $pkg.Branch=module" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_MODULE_VERSION" \
    "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_MODULE_VERSION"
  rm -rf "$PROM_BIN"; mv "$PROM_BIN.tmp" "$PROM_BIN"
  log "promtool and prometheus ready in $PROM_BIN ($((SECONDS - start)) s)"
}

build_operator() {
  [[ -x $OPERATOR_BIN/operator ]] && return 0
  local start=$SECONDS mod=github.com/prometheus-operator/prometheus-operator work="$CACHE_DIR/work/prometheus-operator-$OPERATOR_VERSION"
  log "building the Prometheus Operator from $mod@$OPERATOR_VERSION"
  # Its go.mod points its two submodules at ./pkg/... (replace directives, which `go install
  # pkg@version` refuses): a throw-away main module pins them to the published release instead.
  rm -rf "$work"; mkdir -p "$work"
  cat >"$work/go.mod" <<GOMOD
module mlops.platform/prometheus-operator-build

go 1.26.0

require $mod $OPERATOR_VERSION

replace (
	$mod/pkg/apis/monitoring => $mod/pkg/apis/monitoring $OPERATOR_VERSION
	$mod/pkg/client => $mod/pkg/client $OPERATOR_VERSION
)
GOMOD
  rm -rf "$OPERATOR_BIN.tmp"; mkdir -p "$OPERATOR_BIN.tmp"
  (cd "$work" && go build -mod=mod -trimpath -ldflags "-s -w -X github.com/prometheus/common/version.Version=${OPERATOR_VERSION#v}" \
    -o "$OPERATOR_BIN.tmp/operator" "$mod/cmd/operator")
  rm -rf "$OPERATOR_BIN"; mv "$OPERATOR_BIN.tmp" "$OPERATOR_BIN"
  log "the operator is ready in $OPERATOR_BIN ($((SECONDS - start)) s)"
}

cmd_build() {
  if [[ ! -x $PROM_BIN/promtool || ! -x $PROM_BIN/prometheus || ! -x $OPERATOR_BIN/operator ]]; then
    need_go 1.26.7 "github.com/prometheus/prometheus $PROMETHEUS_MODULE_VERSION"
    build_lock prometheus-build
    build_prometheus
    build_operator
    build_unlock
  fi
  echo "$PROM_BIN"
}

case "${1:-}" in
  crds) cmd_crds ;;
  build) cmd_build ;;
  path)
    case "${2:-}" in
      crds) echo "$CRDS_FILE" ;;
      promtool | prometheus) echo "$PROM_BIN/$2" ;;
      operator) echo "$OPERATOR_BIN/operator" ;;
      *) die "path: crds, promtool, prometheus or operator" ;;
    esac ;;
  env) printf 'PROMETHEUS_OPERATOR_VERSION=%s\nPROMETHEUS_MODULE_VERSION=%s\nMLOPS_CACHE_DIR=%s\n' \
         "$OPERATOR_VERSION" "$PROMETHEUS_MODULE_VERSION" "$CACHE_DIR" ;;
  *) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
