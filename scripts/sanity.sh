#!/usr/bin/env bash
# ansible-test needs the collection at .../ansible_collections/mlops/platform; a checkout
# can live anywhere, so run it on a fresh copy of the files git would ship.
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${MLOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlops-platform}/ansible-test/ansible_collections/mlops/platform"
rm -rf "$dest"; mkdir -p "$dest"
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$dest"
cd "$dest"
exec ansible-test sanity --local --python 3.12 --color no "$@"
