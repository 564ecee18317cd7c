#!/usr/bin/env bash
# Argo CD and the GitOps CRDs for mlops.platform, taken from the Go module proxy at pinned
# versions and cached outside the repository (like the offline cluster's binaries):
#
#   argocd.sh build       Argo CD's multi-call binary from github.com/argoproj/argo-cd/v3 (with the
#                         symlinks that pick a component: argocd-application-controller,
#                         argocd-repo-server, argocd-git-ask-pass) and kustomize, which the repo
#                         server runs for a directory with a kustomization.yaml; prints the directory
#   argocd.sh crds        Argo CD's CRDs (the module's manifests/crds) as a JSON List; prints its path
#   argocd.sh flux-crds   Flux's GitRepository and Kustomization CRDs (source-controller and
#                         kustomize-controller modules, config/crd/bases) as a JSON List
#   argocd.sh path X      print the path of X: dir | argocd | application-controller | repo-server |
#                         kustomize | crds | flux-crds
#   argocd.sh env         print the settings as shell assignments
#
# Nothing fetched or built here is committed. Logs go to stderr; stdout carries the path.
set -euo pipefail

# v3.2.11: v3.3+ point gitops-engine at a nested module the proxy does not serve, and v3.2.12's
# module does not compile (settings.ValidateExternalURL is undefined in it).
ARGOCD_VERSION="${ARGOCD_VERSION:-v3.2.11}"
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.7.1}"
# Flux 2.7's controllers; the proxy serves these two (it refuses kustomize-controller v1.7.0).
FLUX_SOURCE_VERSION="${FLUX_SOURCE_VERSION:-v1.7.0}"
FLUX_KUSTOMIZE_VERSION="${FLUX_KUSTOMIZE_VERSION:-v1.7.3}"
export LOG_TAG=argocd  # the shared functions tag their log lines with it
# shellcheck source-path=SCRIPTDIR source=../../../scripts/lib/upstream.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/lib/upstream.sh"
BIN_DIR="$CACHE_DIR/bin/argocd-$ARGOCD_VERSION"
CRDS_FILE="$CACHE_DIR/upstream/argo-cd-$ARGOCD_VERSION-crds.json"
FLUX_CRDS_FILE="$CACHE_DIR/upstream/flux-source-$FLUX_SOURCE_VERSION-kustomize-$FLUX_KUSTOMIZE_VERSION-crds.json"
COMPONENTS=(argocd-application-controller argocd-repo-server argocd-git-ask-pass argocd-server)

# CRD files (YAML, one or more documents each) to a JSON v1 List, each CRD with the collection's labels.
crd_list() {
  local out=$1 source=$2; shift 2
  "$(python_bin)" - "$out" "$source" "$@" <<'PY'
import json, sys
import yaml
out, source, *paths = sys.argv[1:]
crds = []
for path in paths:
    with open(path, encoding="utf-8") as handle:
        crds += [d for d in yaml.safe_load_all(handle) if d and d.get("kind") == "CustomResourceDefinition"]
if not crds:
    sys.exit(f"no CustomResourceDefinition in {paths}")
labels = {"app.kubernetes.io/managed-by": "mlops.platform", "app.kubernetes.io/part-of": "mlops-platform",
          "app.kubernetes.io/component": "gitops"}
for crd in crds:
    crd["metadata"]["labels"] = {**(crd["metadata"].get("labels") or {}), **labels}
with open(out, "w", encoding="utf-8") as handle:
    json.dump({"apiVersion": "v1", "kind": "List", "metadata": {"annotations": {"mlops.platform/upstream": source}},
               "items": crds}, handle, sort_keys=True)
PY
}

cmd_crds() {
  [[ -s $CRDS_FILE ]] && { echo "$CRDS_FILE"; return; }
  need_go 1.25 "github.com/argoproj/argo-cd/v3 $ARGOCD_VERSION"
  local dir
  dir=$(module_dir "github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION")
  mkdir -p "$(dirname "$CRDS_FILE")"
  crd_list "$CRDS_FILE.tmp" "github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION" \
    "$dir/manifests/crds/application-crd.yaml" "$dir/manifests/crds/appproject-crd.yaml"
  mv "$CRDS_FILE.tmp" "$CRDS_FILE"
  log "Argo CD $ARGOCD_VERSION CRDs in $CRDS_FILE"
  echo "$CRDS_FILE"
}

cmd_flux_crds() {
  [[ -s $FLUX_CRDS_FILE ]] && { echo "$FLUX_CRDS_FILE"; return; }
  need_go 1.25 "github.com/argoproj/argo-cd/v3 $ARGOCD_VERSION"
  local source kustomize
  source=$(module_dir "github.com/fluxcd/source-controller@$FLUX_SOURCE_VERSION")
  kustomize=$(module_dir "github.com/fluxcd/kustomize-controller@$FLUX_KUSTOMIZE_VERSION")
  mkdir -p "$(dirname "$FLUX_CRDS_FILE")"
  crd_list "$FLUX_CRDS_FILE.tmp" \
    "github.com/fluxcd/source-controller@$FLUX_SOURCE_VERSION github.com/fluxcd/kustomize-controller@$FLUX_KUSTOMIZE_VERSION" \
    "$source/config/crd/bases/source.toolkit.fluxcd.io_gitrepositories.yaml" \
    "$kustomize/config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml"
  mv "$FLUX_CRDS_FILE.tmp" "$FLUX_CRDS_FILE"
  log "Flux CRDs in $FLUX_CRDS_FILE"
  echo "$FLUX_CRDS_FILE"
}

built() {
  [[ -x $BIN_DIR/argocd && -x $BIN_DIR/kustomize ]] || return 1
  local name
  for name in "${COMPONENTS[@]}"; do [[ -L $BIN_DIR/$name ]] || return 1; done
}

build_all() {
  local start=$SECONDS work="$CACHE_DIR/work/argo-cd-$ARGOCD_VERSION" tmp="$BIN_DIR.tmp" dir name
  dir=$(module_dir "github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION")
  log "building Argo CD from github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION"
  # The module cache is read-only and the build writes nothing there, but `go build ./cmd` must run
  # in a main module: a writable copy of the release is that module (its go.sum pins everything).
  rm -rf "$work" "$tmp"; mkdir -p "$(dirname "$work")" "$tmp"
  cp -r "$dir" "$work"; chmod -R u+w "$work"
  local pkg=github.com/argoproj/argo-cd/v3/common
  (cd "$work" && go mod download && go build -trimpath \
    -ldflags "-s -w -X $pkg.version=${ARGOCD_VERSION#v} -X $pkg.gitTag=$ARGOCD_VERSION" -o "$tmp/argocd" ./cmd)
  for name in "${COMPONENTS[@]}"; do ln -s argocd "$tmp/$name"; done
  log "building kustomize $KUSTOMIZE_VERSION (the repo server runs it for a kustomization.yaml)"
  GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  rm -rf "$BIN_DIR" "$work"; mv "$tmp" "$BIN_DIR"
  log "Argo CD and kustomize ready in $BIN_DIR ($((SECONDS - start)) s)"
}

cmd_build() {
  if ! built; then
    need_go 1.25 "github.com/argoproj/argo-cd/v3 $ARGOCD_VERSION"
    build_lock argocd-build
    built || build_all
    build_unlock
  fi
  cmd_crds >/dev/null
  cmd_flux_crds >/dev/null
  echo "$BIN_DIR"
}

case "${1:-}" in
  build) cmd_build ;;
  crds) cmd_crds ;;
  flux-crds) cmd_flux_crds ;;
  path)
    case "${2:-}" in
      dir) echo "$BIN_DIR" ;;
      argocd | kustomize) echo "$BIN_DIR/$2" ;;
      application-controller | repo-server) echo "$BIN_DIR/argocd-$2" ;;
      crds) echo "$CRDS_FILE" ;;
      flux-crds) echo "$FLUX_CRDS_FILE" ;;
      *) die "path: dir, argocd, application-controller, repo-server, kustomize, crds or flux-crds" ;;
    esac ;;
  env) printf 'ARGOCD_VERSION=%s\nKUSTOMIZE_VERSION=%s\nFLUX_SOURCE_VERSION=%s\nFLUX_KUSTOMIZE_VERSION=%s\nMLOPS_CACHE_DIR=%s\n' \
         "$ARGOCD_VERSION" "$KUSTOMIZE_VERSION" "$FLUX_SOURCE_VERSION" "$FLUX_KUSTOMIZE_VERSION" "$CACHE_DIR" ;;
  *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
