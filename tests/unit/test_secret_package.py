"""The secret package format: deterministic builds, safe extraction, and every refusal."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import stat
import tarfile

import pytest
import yaml
from ansible_collections.mlops.platform.plugins.module_utils import secret_package as sp
from ansible_collections.mlops.platform.plugins.module_utils.secret_package import PackageError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

NS = "financial-mlops-pytorch"
SECRET_VALUES = {
    "AWS_ACCESS_KEY_ID": "unit-test-access-key-7f3a",
    "AWS_SECRET_ACCESS_KEY": "unit-test-secret-key-9c1e",
    "AWS_DEFAULT_REGION": "us-east-1",
}
PROD_ONLY = {"MLFLOW_TRACKING_PASSWORD": "unit-test-mlflow-password-prod-41d2"}
STAGING_ONLY = {"MLFLOW_TRACKING_PASSWORD": "unit-test-mlflow-password-stg-8e07"}


def spec(**over) -> dict:
    base = {
        "project": NS,
        "scope": "ml",
        "namespace": NS,
        "team": "mlops",
        "environments": ["production", "staging"],
        "date": "20250704",
        "secrets": [
            {"name": "ml-platform", "data": dict(SECRET_VALUES)},
            {"name": "mlflow", "environments": {"production": dict(PROD_ONLY), "staging": dict(STAGING_ONLY)}},
            {
                "name": "ghcr",
                "type": "kubernetes.io/dockerconfigjson",
                "data": {".dockerconfigjson": json.dumps({"auths": {"ghcr.io": {"auth": "dXNlcjpwYXNz"}}})},
            },
        ],
    }
    base.update(over)
    return base


def files_of(**over) -> dict[str, bytes]:
    s = spec(**over)
    return sp.render_files(
        s["project"], s["scope"], s["namespace"], s["environments"], s["secrets"], s["date"],
        team=s.get("team"), certificate=s.get("certificate"), sealing_scope=s.get("sealing_scope", "strict"),
        signing_key=s.get("signing_key"),
    )


def tar_gz(entries: list[dict]) -> bytes:
    """An archive with arbitrary members, to forge hostile packages."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry["name"])
            info.type = entry.get("type", tarfile.REGTYPE)
            info.mode = 0o600
            info.linkname = entry.get("linkname", "")
            data = entry.get("data", b"")
            if info.type == tarfile.REGTYPE:
                info.size = entry.get("size", len(data))
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return gzip.compress(raw.getvalue(), mtime=0)


def entries(files: dict[str, bytes]) -> list[dict]:
    return [{"name": name, "data": data} for name, data in sorted(files.items())]


def remanifest(files: dict[str, bytes], **manifest_over) -> dict[str, bytes]:
    """What an attacker without the signing key can do: rewrite files and recompute checksums."""
    out = dict(files)
    manifest = json.loads(out[sp.MANIFEST])
    listed = {p: c for p, c in out.items() if p not in (sp.MANIFEST, sp.SIGNATURE)}
    manifest["files"] = {p: hashlib.sha256(c).hexdigest() for p, c in listed.items()}
    manifest.update(manifest_over)
    out[sp.MANIFEST] = json.dumps(manifest).encode()
    return out


def snapshot(root) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            out[os.path.relpath(full, root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def extract_package(src, dest, namespace=NS, verify_key=None, limits=None, check_mode=False):
    files, manifest = sp.load_package(str(src), namespace, verify_key, limits)
    return sp.extract(files, str(dest), check_mode), manifest


# ---------------------------------------------------------------------------------------- build


def test_build_is_byte_identical_and_normalised():
    first, names = sp.build(spec())
    second = sp.build(spec())[0]
    assert first == second
    assert first[4:8] == b"\x00\x00\x00\x00"  # gzip header mtime
    with tarfile.open(fileobj=io.BytesIO(first), mode="r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    for member in members:
        assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (0, 0, 0, "", "")
        assert member.mode == (0o700 if member.isdir() else 0o600)
        assert member.isdir() or member.isreg()
    assert names == sorted(m.name for m in members if m.isreg())


def test_build_changes_with_any_value():
    changed = spec()
    changed["secrets"][0]["data"]["AWS_DEFAULT_REGION"] = "eu-west-1"
    assert sp.build(changed)[0] != sp.build(spec())[0]


def test_layout_base_and_overlays():
    files = files_of()
    assert sorted(files) == [
        "MANIFEST.json",
        "base/ghcr.yaml",
        "base/kustomization.yaml",
        "base/ml-platform.yaml",
        "overlays/production/kustomization.yaml",
        "overlays/production/mlflow.yaml",
        "overlays/staging/kustomization.yaml",
        "overlays/staging/mlflow.yaml",
    ]
    base = yaml.safe_load(files["base/kustomization.yaml"])
    assert base == {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": ["ghcr.yaml", "ml-platform.yaml"],
    }
    prod = yaml.safe_load(files["overlays/production/kustomization.yaml"])
    assert prod["resources"] == ["../../base", "mlflow.yaml"]
    manifest = json.loads(files["MANIFEST.json"])
    assert manifest["namespace"] == NS and manifest["environments"] == ["production", "staging"]
    for path, digest in manifest["files"].items():
        assert hashlib.sha256(files[path]).hexdigest() == digest


def test_plain_secrets_are_labelled_and_complete():
    files = files_of()
    secret = yaml.safe_load(files["base/ml-platform.yaml"])
    assert secret["kind"] == "Secret" and secret["type"] == "Opaque"
    assert secret["metadata"]["namespace"] == NS
    assert secret["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "mlops.platform",
        "app.kubernetes.io/part-of": "mlops-platform",
        "mlops.platform/team": "mlops",
    }
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == SECRET_VALUES
    ghcr = yaml.safe_load(files["base/ghcr.yaml"])
    assert ghcr["type"] == "kubernetes.io/dockerconfigjson"
    staging = yaml.safe_load(files["overlays/staging/mlflow.yaml"])
    password = base64.b64decode(staging["data"]["MLFLOW_TRACKING_PASSWORD"]).decode()
    assert password == STAGING_ONLY["MLFLOW_TRACKING_PASSWORD"]
    no_team = yaml.safe_load(files_of(team=None)["base/ml-platform.yaml"])
    assert "mlops.platform/team" not in no_team["metadata"]["labels"]


def test_environment_values_override_common_data():
    s = spec(secrets=[{"name": "s", "data": {"A": "1", "B": "2"}, "environments": {"production": {"B": "3"}}}])
    files = files_of(**{k: s[k] for k in ("secrets",)})
    prod = yaml.safe_load(files["overlays/production/s.yaml"])["data"]
    stg = yaml.safe_load(files["overlays/staging/s.yaml"])["data"]
    assert base64.b64decode(prod["B"]) == b"3" and base64.b64decode(stg["B"]) == b"2"
    assert "base/s.yaml" not in files


@pytest.mark.parametrize("scope", ["strict", "namespace-wide", "cluster-wide"])
def test_sealed_package_unseals(controller_decrypt, rsa_private_key, sealing_cert_pem, scope):
    files = files_of(certificate=sealing_cert_pem, sealing_scope=scope)
    obj = yaml.safe_load(files["overlays/production/mlflow.yaml"])
    assert obj["kind"] == "SealedSecret"
    assert obj["spec"]["template"]["metadata"]["labels"]["mlops.platform/team"] == "mlops"
    label = {"strict": f"{NS}/mlflow".encode(), "namespace-wide": NS.encode(), "cluster-wide": b""}[scope]
    value = controller_decrypt(rsa_private_key, obj["spec"]["encryptedData"]["MLFLOW_TRACKING_PASSWORD"], label)
    assert value.decode() == PROD_ONLY["MLFLOW_TRACKING_PASSWORD"]
    for path, content in files.items():
        for secret in (*SECRET_VALUES.values(), *PROD_ONLY.values()):
            if len(secret) > 12:
                assert secret.encode() not in content, f"{secret} in clear in {path}"


def test_sealed_build_is_deterministic_only_with_signing_key(sealing_cert_pem, ed25519_keys):
    private = ed25519_keys[0]
    signed = spec(certificate=sealing_cert_pem, signing_key=private)
    assert sp.build(signed)[0] == sp.build(signed)[0]
    unsigned = spec(certificate=sealing_cert_pem)
    assert sp.build(unsigned)[0] != sp.build(unsigned)[0]


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"namespace": "Bad_NS"}, "namespace 'Bad_NS' must be a DNS-1123 label"),
        ({"date": "2025-07-04"}, "date '2025-07-04' must be YYYYMMDD"),
        ({"environments": []}, "at least one environment"),
        ({"secrets": [{"name": "x", "data": {"k": "v"}, "environments": {"qa": {"k": "w"}}}]}, "names qa"),
        ({"secrets": [{"name": "x"}]}, "has no keys for environment production"),
        ({"secrets": [{"name": "x", "data": {"bad key": "v"}}]}, "not a valid Secret key"),
        ({"secrets": [{"name": "x", "data": {"k": "v"}}, {"name": "x", "data": {"k": "v"}}]}, "defined twice"),
        ({"secrets": [{"name": "x", "data": {"k": ["unit-test-hidden-value"]}}]}, "must be a string or a number"),
    ],
)
def test_spec_validation(over, message):
    with pytest.raises(PackageError, match=message) as err:
        files_of(**over)
    assert "unit-test-hidden-value" not in str(err.value)


def test_signing_key_must_be_ed25519(rsa_private_key):
    pem = rsa_private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with pytest.raises(PackageError, match="Ed25519"):
        files_of(signing_key=pem)
    with pytest.raises(PackageError, match="not an unencrypted PEM private key") as err:
        files_of(signing_key="not a key unit-test-hidden-value")
    assert "unit-test-hidden-value" not in str(err.value)


def test_write_package_is_idempotent_and_private(tmp_path):
    data, names = sp.build(spec())
    path = tmp_path / "out" / "p.tar.gz"
    assert sp.write_package(str(path), data, check_mode=True) == (True, [])
    assert not path.exists()
    assert sp.write_package(str(path), data) == (True, [])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sp.write_package(str(path), data) == (False, names)
    assert sorted(os.listdir(path.parent)) == ["p.tar.gz"]


# -------------------------------------------------------------------------------- extraction


@pytest.fixture()
def package(tmp_path):
    path = tmp_path / "pkg.tar.gz"
    path.write_bytes(sp.build(spec())[0])
    return path


def test_round_trip_modes_and_idempotence(tmp_path, package):
    dest = tmp_path / "k8s" / "manifests" / NS
    (changed, before, after), manifest = extract_package(package, dest)
    assert changed and before == [] and manifest["project"] == NS
    assert after == sorted(files_of())
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    for root, dirnames, filenames in os.walk(dest):
        for d in dirnames:
            assert stat.S_IMODE(os.stat(os.path.join(root, d)).st_mode) == 0o700
        for f in filenames:
            assert stat.S_IMODE(os.stat(os.path.join(root, f)).st_mode) == 0o600
    assert (dest / "overlays/production/mlflow.yaml").read_bytes() == files_of()["overlays/production/mlflow.yaml"]
    changed, before, after = extract_package(package, dest)[0]
    assert not changed and before == after
    # no temporary directories left next to dest
    assert os.listdir(dest.parent) == [NS]


def test_extract_check_mode_writes_nothing(tmp_path, package):
    dest = tmp_path / "dest"
    changed = extract_package(package, dest, check_mode=True)[0][0]
    assert changed and not dest.exists()


def test_extract_replaces_a_previous_package_and_repairs_modes(tmp_path, package):
    dest = tmp_path / "dest"
    extract_package(package, dest)
    (dest / "overlays/staging/stale.yaml").write_text("stale")
    os.chmod(dest / "MANIFEST.json", 0o644)
    changed, before, after = extract_package(package, dest)[0]
    assert changed and "overlays/staging/stale.yaml" in before and "overlays/staging/stale.yaml" not in after
    assert not (dest / "overlays/staging/stale.yaml").exists()
    assert stat.S_IMODE((dest / "MANIFEST.json").stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["dest", "pkg.tar.gz"]


def test_extract_refuses_to_replace_a_foreign_directory(tmp_path, package):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "important.txt").write_text("keep me")
    with pytest.raises(PackageError, match="not an extracted package"):
        extract_package(package, dest)
    assert (dest / "important.txt").read_text() == "keep me"
    regular = tmp_path / "file"
    regular.write_text("x")
    with pytest.raises(PackageError, match="not a directory"):
        extract_package(package, regular)


def test_signed_package_round_trip(tmp_path, ed25519_keys):
    private, public = ed25519_keys
    path = tmp_path / "signed.tar.gz"
    path.write_bytes(sp.build(spec(signing_key=private))[0])
    changed, _before, after = extract_package(path, tmp_path / "dest", verify_key=public)[0]
    assert changed and sp.SIGNATURE in after


def test_remove(tmp_path, package):
    dest = tmp_path / "dest"
    extract_package(package, dest)
    assert sp.remove(str(dest), check_mode=True)[0] and dest.exists()
    changed, removed = sp.remove(str(dest))
    assert changed and "MANIFEST.json" in removed and not dest.exists()
    assert sp.remove(str(dest)) == (False, [])
    assert sp.remove(str(package))[0] and not package.exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x").write_text("x")
    with pytest.raises(PackageError, match="refusing to replace it"):
        sp.remove(str(foreign))
    assert (foreign / "x").exists()


# --------------------------------------------------------------------- hostile / broken corpus


def _valid() -> dict[str, bytes]:
    return files_of()


def _bomb() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("base/bomb.yaml")
        info.size = 64 * 1024 * 1024
        tar.addfile(info, io.BytesIO(b"\0" * info.size))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def _signed_by_other_key(public_pem_of_builder: str) -> bytes:
    other = ed25519.Ed25519PrivateKey.generate()
    files = _valid()
    files[sp.SIGNATURE] = base64.b64encode(other.sign(files[sp.MANIFEST])) + b"\n"
    return tar_gz(entries(files))


def _kustomization_outside() -> bytes:
    files = _valid()
    files["overlays/production/kustomization.yaml"] = b"kind: Kustomization\nresources: [../../../../../etc]\n"
    return tar_gz(entries(remanifest(files)))


def _kustomization_generator() -> bytes:
    files = _valid()
    files["base/kustomization.yaml"] = (
        b"kind: Kustomization\nresources: []\nconfigMapGenerator: [{name: x, files: [/etc/passwd]}]\n"
    )
    return tar_gz(entries(remanifest(files)))


def _kustomization_cycle() -> bytes:
    files = _valid()
    files["base/kustomization.yaml"] = b"kind: Kustomization\nresources: [../overlays/production]\n"
    return tar_gz(entries(remanifest(files)))


def _deep_manifest() -> bytes:
    files = _valid()
    files[sp.MANIFEST] = b"[" * 100000 + b"]" * 100000
    return tar_gz(entries(files))


def _object_other_namespace() -> bytes:
    files = _valid()
    obj = yaml.safe_load(files["base/ml-platform.yaml"])
    obj["metadata"]["namespace"] = "financial-ml"
    files["base/ml-platform.yaml"] = yaml.safe_dump(obj).encode()
    return tar_gz(entries(remanifest(files)))


def _object_without_namespace() -> bytes:
    files = _valid()
    obj = yaml.safe_load(files["base/ml-platform.yaml"])
    del obj["metadata"]["namespace"]
    files["base/ml-platform.yaml"] = yaml.safe_dump(obj).encode()
    return tar_gz(entries(remanifest(files)))


def _other_kind() -> bytes:
    files = _valid()
    files["base/ml-platform.yaml"] = yaml.safe_dump(
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "pwn"}}
    ).encode()
    return tar_gz(entries(remanifest(files)))


def _checksum_mismatch() -> bytes:
    files = _valid()
    files["base/ml-platform.yaml"] = files["base/ml-platform.yaml"].replace(b"Opaque", b"Opaqu3")
    return tar_gz(entries(files))


def _with(extra: list[dict]) -> bytes:
    return tar_gz(entries(_valid()) + extra)


def _without(path: str) -> bytes:
    files = _valid()
    del files[path]
    return tar_gz(entries(files))


CORPUS = {
    "traversal": (lambda: _with([{"name": "../evil.yaml", "data": b"x"}]), "climbs out of the package"),
    "nested-traversal": (lambda: _with([{"name": "base/../../evil.yaml", "data": b"x"}]), "climbs out"),
    "absolute-path": (lambda: _with([{"name": "/tmp/evil.yaml", "data": b"x"}]), "absolute path"),
    "symlink": (
        lambda: _with([{"name": "base/link.yaml", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}]),
        "symbolic link",
    ),
    "hardlink": (
        lambda: _with([{"name": "base/hard.yaml", "type": tarfile.LNKTYPE, "linkname": "base/ml-platform.yaml"}]),
        "hard link",
    ),
    "char-device": (lambda: _with([{"name": "base/null.yaml", "type": tarfile.CHRTYPE}]), "device"),
    "fifo": (lambda: _with([{"name": "base/fifo.yaml", "type": tarfile.FIFOTYPE}]), "device or FIFO"),
    "checksum-mismatch": (_checksum_mismatch, "checksum mismatch for base/ml-platform.yaml"),
    "extra-file": (
        lambda: _with([{"name": "overlays/production/extra.yaml", "data": b"kind: Secret\n"}]),
        "not listed in MANIFEST.json: overlays/production/extra.yaml",
    ),
    "missing-file": (lambda: _without("overlays/staging/mlflow.yaml"), "missing from the archive"),
    "missing-manifest": (lambda: _without(sp.MANIFEST), "MANIFEST.json is missing"),
    # Read as a stream, files are checked against the manifest as they arrive: it must come first.
    "manifest-not-first": (lambda: tar_gz(entries(_valid())[::-1]), "MANIFEST.json is missing or is not the first"),
    "wrong-namespace": (
        lambda: sp.build(spec(namespace="financial-ml"))[0], "package is for namespace 'financial-ml'"
    ),
    "object-in-other-namespace": (_object_other_namespace, "targets namespace 'financial-ml'"),
    "non-secret-object": (_other_kind, "only Secrets and SealedSecrets"),
    "kustomization-outside": (_kustomization_outside, "points outside the package"),
    "kustomization-generator": (_kustomization_generator, "allow only resources"),
    "kustomization-cycle": (_kustomization_cycle, "includes itself"),
    "deeply-nested-manifest": (_deep_manifest, "MANIFEST.json is not valid JSON"),
    "object-without-namespace": (_object_without_namespace, "targets namespace None"),
    # Refused at the member header, before its 64 MiB are inflated (see test_secret_package_memory.py).
    "gzip-bomb": (_bomb, "is 67108864 bytes, above max_file_size"),
    "truncated": (lambda: sp.build(spec())[0][:-40], "truncated"),
    "truncated-tar": (
        lambda: gzip.compress(gzip.decompress(sp.build(spec())[0])[:1500], mtime=0),
        "not a readable tar|truncated",
    ),
    "not-gzip": (lambda: b"PK\x03\x04 this is a zip, not a package", "not valid gzip"),
    "trailing-data": (lambda: sp.build(spec())[0] + gzip.compress(b"more", mtime=0), "trailing data"),
    "duplicate-member": (lambda: _with([{"name": "base/ml-platform.yaml", "data": b"x"}]), "appears twice"),
    # Directories, so the count is reached before any other check refuses the extra members.
    "too-many-members": (
        lambda: _with([{"name": f"overlays/e{i}", "type": tarfile.DIRTYPE} for i in range(300)]), "more than 256 members"
    ),
    "oversized-member": (
        lambda: _with([{"name": "base/big.yaml", "data": os.urandom(2 * 1024 * 1024)}]), "above max_file_size"
    ),
    "unsigned-when-key-required": (lambda: sp.build(spec())[0], "refusing an unsigned package"),
    # With verify_key the signature must follow the manifest, checked before any other file is read.
    "signature-not-second": (None, "MANIFEST.json.sig is missing but verify_key is set"),
    "bad-signature": (None, "signature in MANIFEST.json.sig does not match"),
    "stray-directory": (lambda: _with([{"name": "overlays/qa", "type": tarfile.DIRTYPE}]), "directories not used"),
}
NEEDS_KEY = {"unsigned-when-key-required", "bad-signature", "signature-not-second"}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_hostile_package_is_refused_and_nothing_is_written(tmp_path, ed25519_keys, case):
    make, message = CORPUS[case]
    public = ed25519_keys[1]
    if case == "signature-not-second":
        files = files_of(signing_key=ed25519_keys[0])
        signature = files.pop(sp.SIGNATURE)
        data = tar_gz([*entries(files), {"name": sp.SIGNATURE, "data": signature}])
    else:
        data = _signed_by_other_key(public) if case == "bad-signature" else make()
    workdir = tmp_path / "work"
    workdir.mkdir()
    src = workdir / "hostile.tar.gz"
    src.write_bytes(data)
    dest = workdir / "k8s" / "manifests" / NS
    before = snapshot(tmp_path)
    before_parent_of_tmp = sorted(os.listdir(tmp_path.parent))
    with pytest.raises(PackageError, match=message):
        extract_package(src, dest, verify_key=public if case in NEEDS_KEY else None)
    assert snapshot(tmp_path) == before
    assert sorted(os.listdir(tmp_path.parent)) == before_parent_of_tmp
    assert not dest.exists() and not (workdir / "evil.yaml").exists() and not (tmp_path / "evil.yaml").exists()


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 12
    assert {"traversal", "absolute-path", "symlink", "hardlink", "char-device", "checksum-mismatch", "extra-file",
            "missing-file", "wrong-namespace", "gzip-bomb", "truncated", "bad-signature"} <= set(CORPUS)


def test_valid_forged_archive_passes_the_same_checks(tmp_path):
    """The forging helpers themselves make acceptable packages, so refusals are due to the defect."""
    src = tmp_path / "ok.tar.gz"
    src.write_bytes(tar_gz(entries(_valid())))
    changed = extract_package(src, tmp_path / "dest")[0][0]
    assert changed
    remade = tmp_path / "remade.tar.gz"
    remade.write_bytes(tar_gz(entries(remanifest(_valid()))))
    assert extract_package(remade, tmp_path / "dest2")[0][0]


def test_limits_are_configurable(tmp_path, package):
    with pytest.raises(PackageError, match="more than 3 members"):
        extract_package(package, tmp_path / "d", limits={"max_members": 3})
    with pytest.raises(PackageError, match="above max_total_size"):
        extract_package(package, tmp_path / "d", limits={"max_total_size": 100})
    assert not (tmp_path / "d").exists()


# ------------------------------------------------------------- the module (ansible test pattern)


def run_module(capsys, args: dict, check_mode: bool = False, diff: bool = False) -> tuple[int, dict]:
    from ansible.module_utils.testing import patch_module_args
    from ansible_collections.mlops.platform.plugins.modules import secret_package as module

    full = {**args, "_ansible_check_mode": check_mode, "_ansible_diff": diff}
    with patch_module_args(full), pytest.raises(SystemExit) as exit_info:
        module.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def test_module_argspec_hides_every_value_bearing_option():
    from ansible_collections.mlops.platform.plugins.modules import secret_package as module

    assert module.ARGUMENT_SPEC["signing_key"]["no_log"] is True
    assert module.SECRET_OPTIONS["data"]["no_log"] is True
    assert module.SECRET_OPTIONS["environments"]["no_log"] is True


def test_module_build_check_mode_diff_and_idempotence(tmp_path, capsys):
    args = {"state": "built", "dest": str(tmp_path / "dist"), **spec()}
    rc, out = run_module(capsys, args, check_mode=True, diff=True)
    assert rc == 0 and out["changed"] and not (tmp_path / "dist").exists()
    assert "base/ml-platform.yaml" in out["diff"]["after"] and out["diff"]["before"] == ""
    rc, out = run_module(capsys, args)
    assert rc == 0 and out["changed"] and out["path"].endswith(f"{NS}-ml-secrets-20250704.tar.gz")
    assert "diff" not in out
    rc, again = run_module(capsys, args, diff=True)
    assert rc == 0 and not again["changed"] and again["sha256"] == out["sha256"]
    dumped = json.dumps(out) + json.dumps(again)
    for value in (*SECRET_VALUES.values(), *PROD_ONLY.values(), *STAGING_ONLY.values()):
        if len(value) > 12:
            assert value not in dumped


def test_module_refusal_is_a_clear_failure(tmp_path, capsys):
    src = tmp_path / "evil.tar.gz"
    src.write_bytes(_with([{"name": "../evil.yaml", "data": b"x"}]))
    rc, out = run_module(capsys, {"state": "extracted", "src": str(src), "dest": str(tmp_path / "d"), "namespace": NS})
    assert rc == 1 and out["failed"] and "climbs out of the package" in out["msg"]
    assert sorted(os.listdir(tmp_path)) == ["evil.tar.gz"]


def test_module_requires_options_per_state(tmp_path, capsys):
    rc, out = run_module(capsys, {"state": "extracted", "dest": str(tmp_path)})
    assert rc == 1 and "src" in out["msg"] and "namespace" in out["msg"]


def test_overlay_resources_follow_the_kustomizations(package):
    files, manifest = sp.load_package(str(package), NS)
    assert sp.overlay_resources(files, manifest) == {
        "production": ["base/ghcr.yaml", "base/ml-platform.yaml", "overlays/production/mlflow.yaml"],
        "staging": ["base/ghcr.yaml", "base/ml-platform.yaml", "overlays/staging/mlflow.yaml"],
    }
