#!/usr/bin/env bash
# The secret controllers the secrets role writes for, built from the Go module proxy at pinned
# versions and cached outside the repository (like the offline cluster's binaries), so the
# tests run the real controllers as processes against an offline cluster:
#
#   controllers.sh build [X]  the Sealed Secrets controller (github.com/bitnami-labs/sealed-secrets,
#                             cmd/controller) and the External Secrets Operator
#                             (github.com/external-secrets/external-secrets, its main package)
#   controllers.sh crds       their CRDs from the modules' own files, as one v1 List (JSON, printed path)
#   controllers.sh path X     print the path of X: sealed-secrets | external-secrets | crds
#   controllers.sh env        print the settings as shell assignments
#
# Nothing fetched or built here is committed. Logs go to stderr; stdout carries the path.
set -euo pipefail

SEALED_SECRETS_VERSION="${SEALED_SECRETS_VERSION:-v0.27.1}"
EXTERNAL_SECRETS_VERSION="${EXTERNAL_SECRETS_VERSION:-v0.16.2}"
export LOG_TAG=controllers  # the shared functions tag their log lines with it
# shellcheck source-path=SCRIPTDIR source=../../../scripts/lib/upstream.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/lib/upstream.sh"
SS_MOD=github.com/bitnami-labs/sealed-secrets
ESO_MOD=github.com/external-secrets/external-secrets
SS_BIN="$CACHE_DIR/bin/sealed-secrets-$SEALED_SECRETS_VERSION/controller"
ESO_BIN="$CACHE_DIR/bin/external-secrets-$EXTERNAL_SECRETS_VERSION/external-secrets"
CRD_LIST="$CACHE_DIR/upstream/secret-controllers-$SEALED_SECRETS_VERSION-$EXTERNAL_SECRETS_VERSION-crds.json"

# A throw-away main module requiring the release (and copying its replace directives, which
# `go install pkg@version` refuses), so the build resolves exactly the release's go.sum graph.
wrapper_build() {
  local name=$1 mod=$2 version=$3 pkg=$4 out=$5 ldflags=$6 start=$SECONDS work dir
  work="$CACHE_DIR/work/$name-$version"
  log "building $pkg from $mod@$version"
  dir=$(module_dir "$mod@$version")
  rm -rf "$work"; mkdir -p "$work"
  {
    echo "module mlops.platform/$name-build"
    echo
    sed -n 's/^go \(.*\)/go \1/p' "$dir/go.mod"
    echo
    echo "require $mod $version"
    grep '^replace ' "$dir/go.mod" || true
  } >"$work/go.mod"
  cp "$dir/go.sum" "$work/go.sum"
  chmod u+w "$work/go.sum"
  rm -rf "$(dirname "$out").tmp"; mkdir -p "$(dirname "$out").tmp"
  (cd "$work" && go build -mod=mod -trimpath -ldflags "-s -w $ldflags" -o "$(dirname "$out").tmp/$(basename "$out")" "$pkg")
  rm -rf "$(dirname "$out")"; mv "$(dirname "$out").tmp" "$(dirname "$out")"
  log "$name ready in $(dirname "$out") ($((SECONDS - start)) s)"
}

cmd_build() {
  local want=${1:-all}
  [[ $want == all || $want == sealed-secrets || $want == external-secrets ]] || die "build: sealed-secrets, external-secrets or nothing (both)"
  if [[ ($want != external-secrets && ! -x $SS_BIN) || ($want != sealed-secrets && ! -x $ESO_BIN) ]]; then
    need_go 1.24 "$ESO_MOD $EXTERNAL_SECRETS_VERSION"
    build_lock secret-controllers-build
    [[ $want == external-secrets || -x $SS_BIN ]] || wrapper_build sealed-secrets "$SS_MOD" "$SEALED_SECRETS_VERSION" "$SS_MOD/cmd/controller" "$SS_BIN" \
      "-X main.VERSION=$SEALED_SECRETS_VERSION"
    [[ $want == sealed-secrets || -x $ESO_BIN ]] || wrapper_build external-secrets "$ESO_MOD" "$EXTERNAL_SECRETS_VERSION" "$ESO_MOD" "$ESO_BIN" ""
    build_unlock
  fi
  echo "$CACHE_DIR/bin"
}

cmd_crds() {
  [[ -s $CRD_LIST ]] && { echo "$CRD_LIST"; return; }
  need_go 1.24 "$ESO_MOD $EXTERNAL_SECRETS_VERSION"
  local ss eso python
  ss=$(module_dir "$SS_MOD@$SEALED_SECRETS_VERSION")
  eso=$(module_dir "$ESO_MOD@$EXTERNAL_SECRETS_VERSION")
  mkdir -p "$(dirname "$CRD_LIST")"
  python=$(python_bin)
  "$python" - "$ss" "$eso" "$CRD_LIST.tmp" "$SS_MOD@$SEALED_SECRETS_VERSION" "$ESO_MOD@$EXTERNAL_SECRETS_VERSION" <<'PY'
import glob, json, os, sys
import yaml
ss, eso, out, ss_ref, eso_ref = sys.argv[1:]
def docs(pattern):
    found = []
    for path in sorted(glob.glob(pattern)):
        with open(path, encoding="utf-8") as handle:
            found += [d for d in yaml.safe_load_all(handle) if d and d.get("kind") == "CustomResourceDefinition"]
    return found
sealed = docs(os.path.join(ss, "helm/sealed-secrets/crds/*.yaml"))
external = docs(os.path.join(eso, "config/crds/bases/*.yaml"))
if len(sealed) != 1 or len(external) < 6:
    sys.exit(f"expected the SealedSecret CRD and 6+ External Secrets CRDs, found {len(sealed)} and {len(external)}")
with open(out, "w", encoding="utf-8") as handle:
    json.dump({"apiVersion": "v1", "kind": "List",
               "metadata": {"annotations": {"mlops.platform/upstream": f"{ss_ref} {eso_ref}"}},
               "items": sealed + external}, handle, sort_keys=True)
PY
  mv "$CRD_LIST.tmp" "$CRD_LIST"
  log "CRDs of $SS_MOD@$SEALED_SECRETS_VERSION and $ESO_MOD@$EXTERNAL_SECRETS_VERSION in $CRD_LIST"
  echo "$CRD_LIST"
}

case "${1:-}" in
  build) cmd_build "${2:-all}" ;;
  crds) cmd_crds ;;
  path)
    case "${2:-}" in
      sealed-secrets) echo "$SS_BIN" ;;
      external-secrets) echo "$ESO_BIN" ;;
      crds) echo "$CRD_LIST" ;;
      *) die "path: sealed-secrets, external-secrets or crds" ;;
    esac ;;
  env) printf 'SEALED_SECRETS_VERSION=%s\nEXTERNAL_SECRETS_VERSION=%s\nMLOPS_CACHE_DIR=%s\n' \
         "$SEALED_SECRETS_VERSION" "$EXTERNAL_SECRETS_VERSION" "$CACHE_DIR" ;;
  *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
