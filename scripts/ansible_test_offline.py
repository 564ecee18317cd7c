"""Prepare ansible-test's pip bootstrap cache so `ansible-test sanity --venv` works offline.

ansible-test bootstraps pip into each sanity venv by running a get-pip script it downloads
from a host this workplace cannot reach; it first looks for ~/.ansible/test/cache/get_pip_<v>.py.
This writes a stand-in there that installs the same pip version from its wheel.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import ansible_test

STUB = '''"""Stand-in for get-pip.py (written by mlops.platform scripts/ansible_test_offline.py)."""
import os
import runpy
import sys

CACHE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(CACHE, "{wheel}"))
ARGS = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.argv = ["pip", "install", "--find-links", CACHE] + ARGS
runpy.run_module("pip", run_name="__main__", alter_sys=True)
'''


def pinned_pip_version() -> str:
    source = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
    match = re.search(r"pip='([0-9.]+)'", source.read_text(encoding="utf-8"))
    if not match:
        sys.exit(f"could not find ansible-test's pinned pip version in {source}")
    return match.group(1)


def main() -> None:
    version = pinned_pip_version()
    cache = pathlib.Path.home() / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / f"pip-{version}-py3-none-any.whl"
    if not wheel.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
             "--no-deps", "--only-binary=:all:", "-d", str(cache), f"pip=={version}"],
            check=True,
        )
    stub = cache / f"get_pip_{version.replace('.', '_')}.py"
    content = STUB.format(wheel=wheel.name)
    if not stub.exists() or stub.read_text(encoding="utf-8") != content:
        stub.write_text(content, encoding="utf-8")


if __name__ == "__main__":
    main()
