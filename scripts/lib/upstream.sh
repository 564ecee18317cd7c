# shellcheck shell=bash
# Shared by the scripts that fetch and build pinned upstream software into the cache outside the
# repository (roles/*/files/*.sh): the cache directory, logging, the Go module proxy, a build lock.
# Source it after setting LOG_TAG:
#   LOG_TAG=argocd; . "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/lib/upstream.sh"

CACHE_DIR="${MLOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlops-platform}"

log() { printf '[%s] %s\n' "${LOG_TAG:-upstream}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# need_go MIN WHAT: Go on PATH, or an error naming the version WHAT needs.
need_go() { command -v go >/dev/null || die "go is not on PATH: install Go >= $1 ($2 needs it)"; }

# module_dir MODULE@VERSION: the module's read-only directory in the Go module cache (downloaded
# through the module proxy when missing).
module_dir() {
  local dir
  dir=$(cd /tmp && go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
  [[ -d $dir ]] || die "could not download $1 from the Go module proxy"
  echo "$dir"
}

# The toolchain's Python (it has PyYAML) when a virtualenv is active, else python3.
python_bin() {
  if [[ -n ${VIRTUAL_ENV:-} && -x $VIRTUAL_ENV/bin/python ]]; then echo "$VIRTUAL_ENV/bin/python"; else command -v python3; fi
}

# build_lock NAME / build_unlock: one build at a time; a second caller waits for the first, then
# finds the cache warm. Unlock before starting anything long-lived (it would inherit the lock).
build_lock() { mkdir -p "$CACHE_DIR"; exec 9>"$CACHE_DIR/$1.lock"; flock 9; }
build_unlock() { exec 9>&-; }
