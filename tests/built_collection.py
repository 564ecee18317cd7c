"""The collection as a user gets it (the `installed_collection` fixture of tests/conftest.py).

`installed_collection` builds the tarball with `ansible-galaxy collection build` from a copy of
this checkout in which files that must never ship are planted (a virtualenv, test output,
the `.collections` link, built and extracted secret packages), then installs the tarball
offline into a clean collections path outside the checkout. Commands run with `user_env()`:
no ANSIBLE_* settings of the checkout, so the installed copy is the only mlops.platform found.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(sys.executable).parent
# Local state left out of the copy (it is large or is the developer's); the build must leave it out too.
LOCAL_STATE = {".git", ".venv", ".venv-mlflow", ".collections", ".cache", ".pytest_cache", ".ruff_cache", ".ansible",
               "dist", "k8s"}
# Files planted in the copy that must not be in the tarball, each standing for a class of them.
PLANTED = {
    ".venv/bin/python3": "a virtualenv",
    ".venv-mlflow/bin/mlflow": "the MLflow virtualenv",
    ".cache/x": "a cache",
    ".pytest_cache/v/cache/lastfailed": "pytest's cache",
    ".ruff_cache/CACHEDIR.TAG": "ruff's cache",
    ".ansible/tmp/x": "ansible-lint's cache",
    "tests/output/junit/x.xml": "ansible-test output",
    "dist/secrets/team-ml-secrets-20250704.tar.gz": "a built secret package",
    "k8s/manifests/team/base/ml-platform.yaml": "an extracted (clear-text) secret package",
    "mlops-platform-0.0.9.tar.gz": "an older collection tarball",
    "plugins/modules/__pycache__/k8s_bundle.cpython-312.pyc": "bytecode",
}


@dataclasses.dataclass(frozen=True)
class InstalledCollection:
    tarball: pathlib.Path
    members: frozenset[str]
    collections_path: pathlib.Path  # what ANSIBLE_COLLECTIONS_PATH names
    path: pathlib.Path  # .../ansible_collections/mlops/platform
    user_dir: pathlib.Path  # a directory outside the checkout to run commands from

    def env(self, **extra: str) -> dict[str, str]:
        return user_env(self.collections_path, **extra)

    def run(self, *argv: str, cwd: pathlib.Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
        """Run a tool of the toolchain (ansible-doc, ansible-playbook, ...) as the user would."""
        return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True,
                              env=self.env(), cwd=cwd or self.user_dir, timeout=timeout, check=False)


def user_env(collections_path: pathlib.Path, **extra: str) -> dict[str, str]:
    """The environment without this checkout's ANSIBLE_* settings (ansible.cfg, .collections)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PYTHONPATH"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", ANSIBLE_COLLECTIONS_PATH=str(collections_path),
               ANSIBLE_NOCOLOR="1", **extra)
    return env


def _copy_checkout(dest: pathlib.Path) -> None:
    def ignore(directory: str, names: list[str]) -> set[str]:
        rel = pathlib.Path(directory).relative_to(ROOT)
        top = rel == pathlib.Path(".")
        skipped = {n for n in names if n in LOCAL_STATE or n.endswith(".tar.gz")} if top else set()
        if rel == pathlib.Path("tests"):
            skipped.add("output")
        return skipped | {n for n in names if n == "__pycache__"}

    shutil.copytree(ROOT, dest, symlinks=True, ignore=ignore)
    for rel in PLANTED:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text("planted by tests/built_collection.py\n")
    links = dest / ".collections" / "ansible_collections" / "mlops"
    links.mkdir(parents=True)
    (links / "platform").symlink_to("../../..")  # what `make setup` makes: a loop back to the checkout


def build_and_install(work: pathlib.Path) -> InstalledCollection:
    """Build from a copy of the checkout with PLANTED files, install offline under `work`."""
    checkout, out, collections, user_dir = (work / n for n in ("checkout", "out", "collections", "user"))
    _copy_checkout(checkout)
    user_dir.mkdir()
    build = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out)],
                           capture_output=True, text=True, cwd=checkout, env=user_env(collections),
                           timeout=300, check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    (tarball,) = out.glob("mlops-platform-*.tar.gz")
    with tarfile.open(tarball) as tar:
        members = frozenset(m.name for m in tar.getmembers())
    install = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "install", str(tarball), "-p", str(collections),
         "--offline", "--no-deps"],
        capture_output=True, text=True, cwd=user_dir, env=user_env(collections), timeout=300, check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    path = collections / "ansible_collections" / "mlops" / "platform"
    assert (path / "MANIFEST.json").is_file(), install.stdout + install.stderr
    shutil.rmtree(checkout)  # from here on nothing can come from the copy
    return InstalledCollection(tarball, members, collections, path, user_dir)
