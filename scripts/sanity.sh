#!/usr/bin/env bash
# ansible-test needs the collection at .../ansible_collections/mlops/platform; a checkout
# can live anywhere, so run it on a fresh copy of the files git would ship.
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${MLOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlops-platform}/ansible-test/ansible_collections/mlops/platform"
rm -rf "$(dirname "$(dirname "$dest")")"; mkdir -p "$dest"
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$dest"
# The collections ours depends on (bundled by the pinned `ansible` package) must sit beside it,
# or the import, ansible-doc and validate-modules tests cannot resolve their doc fragments and
# module_utils.
bundled=$(python -c 'import ansible_collections.kubernetes.core as m, pathlib; print(pathlib.Path(m.__path__[0]).parents[1])')
for dep in kubernetes/core amazon/aws community/aws; do
  mkdir -p "$dest/../../$(dirname "$dep")"
  cp -a "$bundled/$dep" "$dest/../../$dep"
done
cd "$dest"
exec ansible-test sanity --local --python 3.12 --color no "$@"
