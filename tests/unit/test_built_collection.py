"""The built collection: the tarball holds what a user needs and nothing local or secret, it
installs offline into a clean collections path outside the checkout, and `ansible-doc` of every
module and role works from the installed copy.

`ansible-doc` exits 0 even when it cannot find a plugin (it only warns), so every check reads
its JSON output and asks for each name and the installed file it came from. The playbook run
from the installed copy needs a cluster: tests/integration/test_built_collection.py.
"""

from __future__ import annotations

import hashlib
import json
import pathlib

import pytest
from built_collection import PLANTED, ROOT

MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
ROLES = sorted(p.parent.parent.name for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))


def ansible_doc(installed, kind: str, *names: str) -> dict:
    proc = installed.run("ansible-doc", "-t", kind, "--json", *names)
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    missing = sorted(set(names) - set(docs))
    assert not missing, f"ansible-doc -t {kind} found no {missing}: {proc.stderr}"
    return docs


def test_the_checkout_has_modules_and_roles_to_check():
    assert len(MODULES) >= 8 and {"secret_package", "k8s_bundle"} <= set(MODULES)
    assert {"cluster", "team_isolation", "secrets", "storage", "mlflow", "seldon"} <= set(ROLES)


def test_tarball_leaves_out_local_state_and_secrets(installed_collection):
    members = installed_collection.members
    for planted, what in PLANTED.items():
        assert planted not in members, f"{what} ({planted}) is in the tarball"
        top = planted.split("/")[0]
        if top not in ("plugins", "tests"):  # directories that ship, with the planted file left out
            assert not any(m == top or m.startswith(top + "/") for m in members), f"{top} is in the tarball ({what})"
    assert not any(m.startswith("tests/output") for m in members)
    assert not any("__pycache__" in m or m.endswith(".pyc") for m in members)
    assert not any(m.startswith(".collections") for m in members)


def test_tarball_holds_every_plugin_role_and_playbook(installed_collection):
    members = installed_collection.members
    wanted = ["MANIFEST.json", "FILES.json", "README.md", "meta/runtime.yml"]
    wanted += [f"plugins/modules/{m}.py" for m in MODULES]
    wanted += [str(p.relative_to(ROOT)) for p in (ROOT / "plugins").rglob("*.py") if "__pycache__" not in p.parts]
    wanted += [str(p.relative_to(ROOT)) for p in (ROOT / "roles").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    wanted += [str(p.relative_to(ROOT)) for p in (ROOT / "playbooks").glob("*.yml")]
    assert sorted(set(wanted) - members) == []


def test_installed_copy_is_the_checkout(installed_collection):
    """Every plugin and role file installed holds the bytes of the checkout's."""
    for rel in ("plugins", "roles", "playbooks"):
        for source in (ROOT / rel).rglob("*"):
            if source.is_file() and "__pycache__" not in source.parts:
                target = installed_collection.path / source.relative_to(ROOT)
                assert target.is_file(), target
                assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()


def test_only_the_installed_copy_is_found(installed_collection):
    proc = installed_collection.run("ansible-galaxy", "collection", "list", "mlops.platform", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    found = {path for path, collections in json.loads(proc.stdout).items() if "mlops.platform" in collections}
    assert found == {str(installed_collection.path.parent.parent)}


def test_ansible_doc_of_every_module_from_the_installed_copy(installed_collection):
    listed = installed_collection.run("ansible-doc", "-t", "module", "--list", "mlops.platform", "--json")
    assert sorted(json.loads(listed.stdout)) == [f"mlops.platform.{m}" for m in MODULES], listed.stderr
    docs = ansible_doc(installed_collection, "module", *(f"mlops.platform.{m}" for m in MODULES))
    for module in MODULES:
        doc = docs[f"mlops.platform.{module}"]["doc"]
        assert doc["module"] == module and doc["short_description"] and doc["options"] is not None
        assert pathlib.Path(doc["filename"]) == installed_collection.path / "plugins" / "modules" / f"{module}.py"
        assert docs[f"mlops.platform.{module}"]["examples"], module


def test_ansible_doc_of_every_role_from_the_installed_copy(installed_collection):
    listed = installed_collection.run("ansible-doc", "-t", "role", "--list", "mlops.platform", "--json")
    assert sorted(json.loads(listed.stdout)) == [f"mlops.platform.{r}" for r in ROLES], listed.stderr
    docs = ansible_doc(installed_collection, "role", *(f"mlops.platform.{r}" for r in ROLES))
    for role in ROLES:
        doc = docs[f"mlops.platform.{role}"]
        assert pathlib.Path(doc["path"]) == installed_collection.path
        main = doc["entry_points"]["main"]
        assert main["short_description"] and main["options"], role


def test_a_missing_plugin_fails_the_check(installed_collection):
    """ansible-doc exits 0 for a name it cannot find; the check above must not."""
    with pytest.raises(AssertionError, match="found no"):
        ansible_doc(installed_collection, "module", "mlops.platform.secret_package", "mlops.platform.no_such_module")
