#!/usr/bin/env bash
# Builds the pinned `helm` binary from the Go module proxy into the platform's cache (no
# download of release archives needed) and prints its path. Idempotent: an existing build
# is reused. Used by the seldon role's Helm path on machines without a helm on PATH, and by
# tests/integration/test_seldon_helm.py.
#   scripts/helm.sh [path]     build if missing, print the binary's path
#   HELM_VERSION=v3.19.5 scripts/helm.sh
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.19.5}"
CACHE="${MLOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlops-platform}"
BIN_DIR="$CACHE/bin/helm-$HELM_VERSION"
HELM="$BIN_DIR/helm"

if [[ ! -x $HELM ]]; then
  command -v go >/dev/null || { echo "helm.sh: Go is needed to build helm $HELM_VERSION (or put helm on PATH)" >&2; exit 1; }
  mkdir -p "$BIN_DIR"
  echo "helm.sh: building helm $HELM_VERSION into $BIN_DIR (a few minutes on a cold Go cache)" >&2
  # Build into a temporary directory and rename, so an interrupted build never leaves a
  # half-written binary that a later run would trust.
  tmp=$(mktemp -d "$BIN_DIR.tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  GOBIN="$tmp" GOFLAGS="${GOFLAGS:--buildvcs=false}" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
  mv "$tmp/helm" "$HELM"
fi
"$HELM" version --short >/dev/null
echo "$HELM"
