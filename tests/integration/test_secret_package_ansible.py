"""The secret_package module run by ansible-playbook: check mode, idempotence, refusals, and
no secret value anywhere in the -vvv output. Needs no cluster."""

from __future__ import annotations

import json
import os
import pathlib
import secrets as pysecrets
import subprocess
import sys
import tarfile

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

ROOT = pathlib.Path(__file__).resolve().parents[2]
NS = "team-pkg-it"

PLAYBOOK = """
- name: Secret package round trip
  hosts: localhost
  gather_facts: false
  vars:
    pkg_args: &pkg
      project: demo
      scope: ml
      date: "20250704"
      namespace: {ns}
      team: demo
      environments: [production, staging]
      certificate: "{{{{ lookup('ansible.builtin.file', cert_file) }}}}"
      signing_key: "{{{{ lookup('ansible.builtin.file', signing_key_file) }}}}"
      secrets: "{{{{ package_secrets }}}}"
      dest: "{{{{ work }}}}/dist"
    pkg_path: "{{{{ work }}}}/dist/demo-ml-secrets-20250704.tar.gz"
    extract_dest: "{{{{ work }}}}/k8s/manifests/{ns}"
  tasks:
    - name: Build in check mode
      mlops.platform.secret_package:
        state: built
        <<: *pkg
      check_mode: true
      diff: true
      register: build_check
    - name: Nothing was written in check mode
      ansible.builtin.stat:
        path: "{{{{ pkg_path }}}}"
      register: pkg_after_check
    - name: Build
      mlops.platform.secret_package:
        state: built
        <<: *pkg
      register: build1
    - name: Rebuild with the same inputs
      mlops.platform.secret_package:
        state: built
        <<: *pkg
      register: build2
    - name: Extract in check mode
      mlops.platform.secret_package:
        state: extracted
        src: "{{{{ build1.path }}}}"
        dest: "{{{{ extract_dest }}}}"
        namespace: {ns}
        verify_key: "{{{{ lookup('ansible.builtin.file', verify_key_file) }}}}"
      check_mode: true
      diff: true
      register: extract_check
    - name: Nothing was extracted in check mode
      ansible.builtin.stat:
        path: "{{{{ extract_dest }}}}"
      register: dest_after_check
    - name: Extract
      mlops.platform.secret_package:
        state: extracted
        src: "{{{{ build1.path }}}}"
        dest: "{{{{ extract_dest }}}}"
        namespace: {ns}
        verify_key: "{{{{ lookup('ansible.builtin.file', verify_key_file) }}}}"
      register: extract1
    - name: Extract again
      mlops.platform.secret_package:
        state: extracted
        src: "{{{{ build1.path }}}}"
        dest: "{{{{ extract_dest }}}}"
        namespace: {ns}
      register: extract2
    - name: Extract for the wrong namespace
      mlops.platform.secret_package:
        state: extracted
        src: "{{{{ build1.path }}}}"
        dest: "{{{{ work }}}}/k8s/manifests/other"
        namespace: other
      register: wrong_ns
      ignore_errors: true
    - name: Remove the extracted package
      mlops.platform.secret_package:
        state: absent
        path: "{{{{ extract_dest }}}}"
      register: removed
    - name: Show every registered result (scanned for secret values)
      ansible.builtin.debug:
        var: item
      loop: "{{{{ [build_check, build1, build2, extract_check, extract1, extract2, wrong_ns, removed] }}}}"
    - name: Check the results
      ansible.builtin.assert:
        that:
          - build_check is changed
          - not pkg_after_check.stat.exists
          - "'base/ml-platform.yaml' in build_check.diff.after"
          - build1 is changed
          - build1.sealed and build1.signed
          - build2 is not changed
          - build2.sha256 == build1.sha256
          - extract_check is changed
          - not dest_after_check.stat.exists
          - extract1 is changed
          - extract1.signed
          - extract2 is not changed
          - wrong_ns is failed
          - "'the package is for namespace' in wrong_ns.msg"
          - removed is changed
"""


def _write_keys(work: pathlib.Path) -> dict[str, str]:
    ctrl = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signing = ed25519.Ed25519PrivateKey.generate()
    files = {
        "cert_file": ctrl.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "signing_key_file": signing.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        "verify_key_file": signing.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    out = {}
    for name, data in files.items():
        path = work / f"{name}.pem"
        path.write_bytes(data)
        out[name] = str(path)
    return out


def run_playbook(work: pathlib.Path, playbook: str, extra: dict) -> subprocess.CompletedProcess:
    (work / "play.yml").write_text(playbook)
    (work / "vars.json").write_text(json.dumps(extra))
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
    }
    cmd = [
        str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-vvv", "-i", "localhost,", "-c", "local",
        "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"@{work / 'vars.json'}", str(work / "play.yml"),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=work, check=False, timeout=300)


@pytest.fixture()
def secret_values() -> dict[str, str]:
    # Unique per run so a hit in the output can only come from leaking them.
    return {key: f"leakcheck-{pysecrets.token_hex(12)}" for key in
            ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_PASSWORD", "STAGING_PASSWORD")}


def test_playbook_check_mode_idempotence_and_no_leak(tmp_path, secret_values):
    work = tmp_path
    keys = _write_keys(work)
    extra = {
        "work": str(work),
        **keys,
        "package_secrets": [
            {
                "name": "ml-platform",
                "data": {k: secret_values[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")},
            },
            {
                "name": "mlflow",
                "environments": {
                    "production": {"MLFLOW_TRACKING_PASSWORD": secret_values["MLFLOW_TRACKING_PASSWORD"]},
                    "staging": {"MLFLOW_TRACKING_PASSWORD": secret_values["STAGING_PASSWORD"]},
                },
            },
        ],
    }
    result = run_playbook(work, PLAYBOOK.format(ns=NS), extra)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "sha256: " in output  # the debug task printed the registered results
    assert "failed=0" in output and "ignored=1" in output
    leaks = [name for name, value in secret_values.items() if value in output]
    assert leaks == [], f"secret values of {leaks} appear in the -vvv output"
    signing_key_body = pathlib.Path(keys["signing_key_file"]).read_text().splitlines()[1]
    assert signing_key_body not in output
    # The module really ran with the values: the package holds them sealed, not in clear.
    package = work / "dist" / "demo-ml-secrets-20250704.tar.gz"
    with tarfile.open(package) as tar:
        blob = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())
    assert b"SealedSecret" in blob
    assert not any(v.encode() in blob for v in secret_values.values())
    assert not (work / "k8s" / "manifests" / "other").exists()
