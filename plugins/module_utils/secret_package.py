# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Secret packages: the tar.gz the infrastructure team ships and each team extracts.

Layout of a package (format 1), every path relative to the package root::

    MANIFEST.json               format, project, scope, namespace, team, environments,
                                sealing, and the SHA-256 of every other file
    MANIFEST.json.sig           optional Ed25519 signature of MANIFEST.json (base64)
    base/kustomization.yaml     secrets that are the same in every environment
    base/<secret>.yaml
    overlays/<env>/kustomization.yaml   resources: ../../base + the environment's secrets
    overlays/<env>/<secret>.yaml

Secrets are SealedSecrets when a controller certificate is given, plain labelled Secrets
otherwise. Archives are deterministic (sorted members, mtime 0, uid/gid 0, no owner names,
gzip mtime 0), so the same inputs give the same bytes; with a certificate this needs a
signing key, from which the sealing randomness is derived (see sealing.py).

Reading a package never trusts it: the compressed and decompressed sizes, the member count
and sizes are capped, only regular files and their parent directories under canonical
relative paths are accepted, every file must be listed in the manifest with a matching
checksum, the signature must verify when a key is configured, and every object must target
the expected namespace. The archive is read as a stream and each file is checked as it
arrives (MANIFEST.json first, as the builder sorts it), so memory holds the files that passed
and the one being read, never max_total_size; only a package that passes is written, to a
temporary directory next to the destination that is then renamed into place.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import zlib

from ansible.module_utils.common.yaml import HAS_YAML, yaml_dump, yaml_load_all
from ansible_collections.mlops.platform.plugins.module_utils import sealing
from ansible_collections.mlops.platform.plugins.module_utils.teams import (
    LABEL_MANAGED_BY,
    LABEL_PART_OF,
    LABEL_TEAM,
    MANAGED_BY,
    PART_OF,
)

FORMAT_VERSION = 1
MANIFEST = "MANIFEST.json"
SIGNATURE = "MANIFEST.json.sig"
KUSTOMIZATION = "kustomization.yaml"
FILE_MODE = 0o600
DIR_MODE = 0o700
DEFAULT_LIMITS = {
    "max_members": 256,
    "max_file_size": 1024 * 1024,
    "max_total_size": 16 * 1024 * 1024,
}

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_DNS_LABEL_RE = re.compile(rf"^{_DNS_LABEL}$")
_DNS_SUBDOMAIN_RE = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_DATA_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")
_DATE_RE = re.compile(r"^\d{8}$")
# The only file paths a package may hold besides the manifest and its signature.
_CONTENT_PATH_RE = re.compile(rf"^(base|overlays/{_DNS_LABEL})/[a-z0-9][-a-z0-9.]*\.yaml$")
_KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources"}
_SECRET_KINDS = {("v1", "Secret"), ("bitnami.com/v1alpha1", "SealedSecret")}


class PackageError(Exception):
    """A spec that cannot be built or a package that is refused; the message says why."""


def _require_yaml() -> None:
    if not HAS_YAML:
        raise PackageError("the Python library 'PyYAML' is required (it ships with ansible-core)")


def package_filename(project: str, scope: str, date: str) -> str:
    """`<project>-<scope>-secrets-<date>.tar.gz`, the name the seeds use."""
    return f"{project}-{scope}-secrets-{date}.tar.gz"


def today() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%d")


def platform_labels(team: str | None) -> dict[str, str]:
    labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_PART_OF: PART_OF}
    if team:
        labels[LABEL_TEAM] = team
    return labels


def _str_values(where: str, values, errors: list[str]) -> dict[str, str]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        errors.append(f"{where} must be a mapping of key to value")
        return {}
    out = {}
    for key, value in values.items():
        if not isinstance(key, str) or not _DATA_KEY_RE.match(key):
            errors.append(f"{where}: key {key!r} is not a valid Secret key (letters, digits, '-', '_', '.')")
            continue
        if isinstance(value, bool) or isinstance(value, (dict, list)) or value is None:
            # Never echo the value: it is a secret.
            errors.append(f"{where}.{key} must be a string or a number")
            continue
        out[key] = str(value)
    return out


def normalize_spec(
    project: str, scope: str, namespace: str, environments: list[str], secrets: list[dict], date: str
) -> list[dict]:
    """Validate the declarative spec; return secrets as {name, type, labels, annotations, values: {env: data}}."""
    errors: list[str] = []
    for field, value in (("project", project), ("scope", scope), ("namespace", namespace)):
        if not isinstance(value, str) or not _DNS_LABEL_RE.match(value):
            errors.append(f"{field} {value!r} must be a DNS-1123 label (lowercase letters, digits, '-')")
    if not _DATE_RE.match(str(date)):
        errors.append(f"date {date!r} must be YYYYMMDD")
    if not environments:
        errors.append("environments must name at least one environment (e.g. production)")
    for env in environments or []:
        if not isinstance(env, str) or not _DNS_LABEL_RE.match(env):
            errors.append(f"environment {env!r} must be a DNS-1123 label")
    if len(set(environments or [])) != len(environments or []):
        errors.append("environments must not repeat")
    if not secrets:
        errors.append("secrets must define at least one secret")
    seen: set[str] = set()
    result = []
    for index, secret in enumerate(secrets or []):
        where = f"secrets[{index}]"
        if not isinstance(secret, dict):
            errors.append(f"{where} must be a mapping")
            continue
        name = secret.get("name")
        if not isinstance(name, str) or not _DNS_SUBDOMAIN_RE.match(name) or len(name) > 253:
            errors.append(f"{where}.name {name!r} must be a DNS-1123 subdomain")
            continue
        where = f"secrets[{index}] ({name})"
        if name in seen:
            errors.append(f"{where}: the name is defined twice")
        seen.add(name)
        common = _str_values(f"{where}.data", secret.get("data"), errors)
        per_env_raw = secret.get("environments") or {}
        if not isinstance(per_env_raw, dict):
            errors.append(f"{where}.environments must map an environment to its values")
            per_env_raw = {}
        unknown = sorted(set(per_env_raw) - set(environments or []))
        if unknown:
            errors.append(f"{where}.environments names {', '.join(map(str, unknown))}, not in environments")
        per_env = {
            env: _str_values(f"{where}.environments.{env}", per_env_raw.get(env), errors) for env in environments or []
        }
        values = {env: {**common, **per_env[env]} for env in environments or []}
        for env, data in values.items():
            if not data:
                errors.append(f"{where} has no keys for environment {env}: set data or environments.{env}")
        result.append(
            {
                "name": name,
                "type": secret.get("type") or "Opaque",
                "labels": dict(secret.get("labels") or {}),
                "annotations": dict(secret.get("annotations") or {}),
                # Identical in every environment (no per-environment values): lives in base/.
                "shared": not any(per_env_raw.get(env) for env in environments or []),
                "values": values,
            }
        )
    if errors:
        raise PackageError("invalid secret package spec: " + "; ".join(errors))
    return sorted(result, key=lambda s: s["name"])


def _dump(obj: dict) -> bytes:
    return yaml_dump(obj, default_flow_style=False, sort_keys=True, width=1 << 20, allow_unicode=False).encode()


def _plain_secret(secret: dict, namespace: str, data: dict[str, str], labels: dict[str, str]) -> dict:
    meta: dict = {"name": secret["name"], "namespace": namespace, "labels": labels}
    if secret["annotations"]:
        meta["annotations"] = secret["annotations"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": secret["type"],
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(data.items())},
    }


def load_signing_key(pem: str):
    """An Ed25519 private key (PEM, PKCS#8) for signing MANIFEST.json."""
    sealing.require_cryptography()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        # Never include the key text in the message.
        raise PackageError(f"signing_key is not an unencrypted PEM private key ({type(exc).__name__})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise PackageError("signing_key must be an Ed25519 private key (openssl genpkey -algorithm ed25519)")
    return key


def load_verify_key(pem: str):
    """The Ed25519 public key matching the builders' signing key."""
    sealing.require_cryptography()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise PackageError(f"verify_key is not a PEM public key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise PackageError("verify_key must be an Ed25519 public key (openssl pkey -pubout)")
    return key


def _seed_key(signing_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    raw = signing_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
    return hashlib.sha256(b"mlops.platform/secret-package/seal-seed/v1" + raw).digest()


def render_files(
    project: str,
    scope: str,
    namespace: str,
    environments: list[str],
    secrets: list[dict],
    date: str,
    team: str | None = None,
    certificate: str | None = None,
    sealing_scope: str = "strict",
    signing_key: str | None = None,
) -> dict[str, bytes]:
    """Every file of the package, path → bytes, MANIFEST.json (and its signature) included."""
    _require_yaml()
    spec = normalize_spec(project, scope, namespace, environments, secrets, date)
    try:
        public_key = sealing.load_public_key(certificate) if certificate else None
        key = load_signing_key(signing_key) if signing_key else None
        seed = _seed_key(key) if key is not None and public_key is not None else None
        files: dict[str, bytes] = {}
        base: list[str] = []
        overlays: dict[str, list[str]] = {env: [] for env in environments}
        for secret in spec:
            labels = {**secret["labels"], **platform_labels(team)}
            targets = [("base", environments[0])] if secret["shared"] else [(f"overlays/{e}", e) for e in environments]
            for directory, env in targets:
                data = secret["values"][env]
                if public_key is not None:
                    obj = sealing.sealed_secret(
                        public_key, secret["name"], namespace, data, scope=sealing_scope,
                        secret_type=secret["type"], labels=labels, annotations=secret["annotations"], seed_key=seed,
                    )
                else:
                    obj = _plain_secret(secret, namespace, data, labels)
                filename = f"{secret['name']}.yaml"
                files[f"{directory}/{filename}"] = _dump(obj)
                (base if directory == "base" else overlays[env]).append(filename)
    except sealing.SealingError as exc:
        raise PackageError(str(exc)) from None
    files[f"base/{KUSTOMIZATION}"] = _dump(_kustomization(sorted(base)))
    for env in environments:
        files[f"overlays/{env}/{KUSTOMIZATION}"] = _dump(_kustomization(["../../base", *sorted(overlays[env])]))
    manifest = {
        "format": FORMAT_VERSION,
        "project": project,
        "scope": scope,
        "date": date,
        "namespace": namespace,
        "team": team or "",
        "environments": list(environments),
        "sealed": public_key is not None,
        "sealing_scope": sealing_scope if public_key is not None else "",
        "files": {path: hashlib.sha256(content).hexdigest() for path, content in sorted(files.items())},
    }
    files[MANIFEST] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    if key is not None:
        files[SIGNATURE] = base64.b64encode(key.sign(files[MANIFEST])) + b"\n"
    return files


def _kustomization(resources: list[str]) -> dict:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": resources}


def write_archive(files: dict[str, bytes]) -> bytes:
    """A byte-reproducible tar.gz of `files`: sorted, fixed metadata, gzip mtime 0."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(_ancestor_dirs(files) | set(files)):
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if name in files:
                info.type, info.mode, info.size = tarfile.REGTYPE, FILE_MODE, len(files[name])
                tar.addfile(info, io.BytesIO(files[name]))
            else:
                info.type, info.mode = tarfile.DIRTYPE, DIR_MODE
                tar.addfile(info)
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def _ancestor_dirs(paths) -> set[str]:
    """Every directory above the given file paths ('a/b/c.yaml' → 'a', 'a/b')."""
    out: set[str] = set()
    for path in paths:
        parent = posixpath.dirname(path)
        while parent:
            out.add(parent)
            parent = posixpath.dirname(parent)
    return out


def build(spec: dict) -> tuple[bytes, list[str]]:
    """The archive bytes and its sorted file list for a build spec (the module's options)."""
    files = render_files(
        spec["project"], spec["scope"], spec["namespace"], spec["environments"], spec["secrets"],
        spec["date"], team=spec.get("team"), certificate=spec.get("certificate"),
        sealing_scope=spec.get("sealing_scope") or "strict", signing_key=spec.get("signing_key"),
    )
    return write_archive(files), sorted(files)


# ---------------------------------------------------------------------------------------
# Reading: every check runs as the archive streams in, before anything touches the filesystem.
# Memory holds the files that passed every check, the one being read (at most max_file_size)
# and one chunk of the stream, never max_total_size: a gzip bomb is refused at the member
# header that claims too much or is not listed, at the first byte that cannot be in a YAML or
# JSON file, at its first file that is not a valid one, or at max_total_size.

_CHUNK = 64 * 1024
# tar pads its end to a record (10 KiB for tarfile and GNU tar's default, up to 1 MiB with a
# large blocking factor); anything longer after the end-of-archive blocks is not a package.
_TAR_TAIL_LIMIT = 1024 * 1024
# Bytes that neither YAML (PyYAML's printable set) nor JSON allows in a file: C0 controls other
# than tab, LF and CR, and DEL. Package files are YAML and JSON text only.
_NOT_TEXT_RE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class _GzipStream:
    """The decompressed bytes of a gzip file object, `_CHUNK` at a time, refusing more than `limit`."""

    def __init__(self, source, limit: int) -> None:
        self._source = source
        self._limit = limit
        self._inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._pending = b""
        self.compressed = 0
        self.total = 0

    def read(self, size: int = -1) -> bytes:
        if size == 0:  # zlib reads max_length 0 as "no limit"
            return b""
        size = _CHUNK if size is None or size < 0 else min(size, _CHUNK)
        while not self._inflater.eof:
            if not self._pending:
                self._pending = self._source.read(_CHUNK)
                if not self._pending:
                    if self.compressed == 0:
                        raise PackageError("the archive is empty (0 bytes): it is not a package")
                    raise PackageError("the archive is truncated (the gzip stream ends early)")
                self.compressed += len(self._pending)
                if self.compressed > self._limit:
                    raise PackageError(f"the archive is above max_total_size ({self._limit} bytes)")
            try:
                out = self._inflater.decompress(self._pending, size)
            except zlib.error as exc:
                raise PackageError(f"the archive is not valid gzip data ({exc})") from None
            self._pending = self._inflater.unconsumed_tail
            self.total += len(out)
            if self.total > self._limit:
                raise PackageError(
                    f"the archive expands beyond {self._limit} bytes (max_total_size): refusing a possible gzip bomb"
                )
            if out:
                return out
        return b""

    def finish(self) -> None:
        """After the tar's end: allow its padding only, then the end of the gzip stream and of the file."""
        tail = 0
        while chunk := self.read():
            tail += len(chunk)
            if tail > _TAR_TAIL_LIMIT:
                raise PackageError(
                    f"the archive goes on for more than {_TAR_TAIL_LIMIT} bytes after the end of the tar: "
                    "it is not a package (a possible gzip bomb)"
                )
        if self._inflater.unused_data or self._source.read(1):
            raise PackageError("the archive has trailing data after the gzip stream")


def _check_member_name(name: str) -> str:
    clean = name[:-1] if name.endswith("/") else name
    if clean.startswith("/") or re.match(r"^[A-Za-z]:", clean) or "\\" in clean:
        raise PackageError(f"member {name!r} has an absolute path")
    parts = clean.split("/")
    if ".." in parts:
        raise PackageError(f"member {name!r} climbs out of the package with '..'")
    if any(part in ("", ".") for part in parts) or "\x00" in clean:
        raise PackageError(f"member {name!r} is not a canonical relative path")
    return clean


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, name: str) -> bytes:
    """A regular member's content, checked chunk by chunk as it streams in."""
    handle = tar.extractfile(member)
    parts: list[bytes] = []
    got = 0
    while handle is not None and got < member.size:
        chunk = handle.read(min(_CHUNK, member.size - got))
        if not chunk:
            break
        bad = _NOT_TEXT_RE.search(chunk)
        if bad:
            raise PackageError(
                f"member {name!r} holds the byte {bad.group()!r} at offset {got + bad.start()}: package files are "
                "YAML or JSON text; refusing a binary file (or a possible gzip bomb)"
            )
        parts.append(chunk)
        got += len(chunk)
    if got != member.size:
        raise PackageError(f"member {name!r} is truncated")
    return b"".join(parts)


def read_archive(source, limits: dict | None = None, check=None) -> tuple[dict[str, bytes], set[str]]:
    """Files and directories of a package archive (bytes or a binary file object), refusing anything unsafe.

    `check` (a StreamCheck) sees each file's name before its content is read and its content
    right after, before the next member.
    """
    lim = {**DEFAULT_LIMITS, **(limits or {})}
    stream = _GzipStream(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source,
                         lim["max_total_size"])
    files: dict[str, bytes] = {}
    dirs: set[str] = set()
    count = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            while True:
                member = tar.next()
                if member is None:
                    break
                count += 1
                if count > lim["max_members"]:
                    raise PackageError(f"the archive has more than {lim['max_members']} members (max_members)")
                name = _check_member_name(member.name)
                if member.issym():
                    raise PackageError(f"member {name!r} is a symbolic link; packages hold regular files only")
                if member.islnk():
                    raise PackageError(f"member {name!r} is a hard link; packages hold regular files only")
                if member.ischr() or member.isblk() or member.isfifo():
                    raise PackageError(f"member {name!r} is a device or FIFO; packages hold regular files only")
                if name in files or name in dirs:
                    raise PackageError(f"member {name!r} appears twice")
                if member.isdir():
                    dirs.add(name)
                    continue
                if not member.isreg():
                    raise PackageError(f"member {name!r} has unsupported type {member.type!r}")
                if member.size > lim["max_file_size"]:
                    raise PackageError(
                        f"member {name!r} is {member.size} bytes, above max_file_size ({lim['max_file_size']})"
                    )
                if check is not None:
                    check.header(name)
                files[name] = _read_member(tar, member, name)
                if check is not None:
                    check.content(name, files[name])
        stream.finish()
    except (tarfile.TarError, EOFError) as exc:
        raise PackageError(f"the archive is not a readable tar ({exc}); it may be truncated or corrupt") from None
    if not files:
        raise PackageError("the archive holds no files")
    return files, dirs


def _load_yaml_docs(path: str, content: bytes) -> list:
    try:
        return [doc for doc in yaml_load_all(content.decode("utf-8")) if doc is not None]
    except (UnicodeDecodeError, ValueError) as exc:
        raise PackageError(f"{path} is not valid UTF-8 YAML ({type(exc).__name__})") from None
    except Exception as exc:  # yaml.YAMLError without importing yaml here
        raise PackageError(f"{path} is not valid YAML ({type(exc).__name__})") from None


def _check_kustomization(path: str, doc, listed: set[str]) -> None:
    if not isinstance(doc, dict) or doc.get("kind") != "Kustomization":
        raise PackageError(f"{path} must be a single Kustomization")
    extra = sorted(set(doc) - _KUSTOMIZATION_KEYS)
    if extra:
        raise PackageError(f"{path} uses {', '.join(extra)}; packages allow only resources")
    resources = doc.get("resources") or []
    if not isinstance(resources, list):
        raise PackageError(f"{path}: resources must be a list")
    here = posixpath.dirname(path)
    for res in resources:
        if not isinstance(res, str) or res.startswith("/") or "://" in res or res.startswith("git@"):
            raise PackageError(f"{path}: resource {res!r} must be a relative path inside the package")
        target = posixpath.normpath(posixpath.join(here, res))
        if target.startswith("../") or target == "..":
            raise PackageError(f"{path}: resource {res!r} points outside the package")
        if target not in listed and f"{target}/{KUSTOMIZATION}" not in listed:
            raise PackageError(f"{path}: resource {res!r} is not a file of the package")


def _check_object(path: str, doc, namespace: str) -> None:
    if not isinstance(doc, dict) or (doc.get("apiVersion"), doc.get("kind")) not in _SECRET_KINDS:
        kind = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
        raise PackageError(f"{path} holds a {kind!r}; packages hold only Secrets and SealedSecrets")
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    name = meta.get("name")
    targets = [meta.get("namespace")]
    if doc["kind"] == "SealedSecret":
        template = ((doc.get("spec") or {}).get("template") or {}).get("metadata") or {}
        if "namespace" in template:
            targets.append(template.get("namespace"))
    for target in targets:
        if target != namespace:
            raise PackageError(
                f"{path}: {doc['kind']} {name!r} targets namespace {target!r}, not {namespace!r}; "
                "this package is not for this namespace"
            )


def _verify_signature(key, manifest: bytes, signature: bytes) -> None:
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(base64.b64decode(signature.strip(), validate=True), manifest)
    except (InvalidSignature, ValueError):
        raise PackageError(f"the signature in {SIGNATURE} does not match {MANIFEST} and verify_key") from None


def _parse_manifest(content: bytes, namespace: str) -> dict:
    """MANIFEST.json checked on its own: format, listed paths, namespace and environments."""
    try:
        manifest = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PackageError(f"{MANIFEST} is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        raise PackageError(f"{MANIFEST} has format {manifest.get('format') if isinstance(manifest, dict) else None!r};"
                           f" this module reads format {FORMAT_VERSION}")
    listed_sums = manifest.get("files")
    if not isinstance(listed_sums, dict) or not listed_sums:
        raise PackageError(f"{MANIFEST} lists no files")
    for path in sorted(listed_sums):
        if not isinstance(path, str) or not _CONTENT_PATH_RE.match(path):
            raise PackageError(f"{MANIFEST} lists {path!r}, which is not a valid package path")
    if manifest.get("namespace") != namespace:
        raise PackageError(f"the package is for namespace {manifest.get('namespace')!r}, not {namespace!r}")
    envs = manifest.get("environments")
    if not isinstance(envs, list) or not envs:
        raise PackageError(f"{MANIFEST} names no environments")
    for env in envs:
        if f"overlays/{env}/{KUSTOMIZATION}" not in listed_sums:
            raise PackageError(f"the overlay for environment {env!r} has no {KUSTOMIZATION}")
    return manifest


def _check_file(path: str, content: bytes, listed_sums: dict, namespace: str) -> None:
    """One listed file: its checksum, then its content (a Kustomization or Secrets for `namespace`)."""
    if hashlib.sha256(content).hexdigest() != listed_sums[path]:
        raise PackageError(f"checksum mismatch for {path}: the package was altered or corrupted")
    docs = _load_yaml_docs(path, content)
    if posixpath.basename(path) == KUSTOMIZATION:
        if len(docs) != 1:
            raise PackageError(f"{path} must be a single Kustomization")
        _check_kustomization(path, docs[0], set(listed_sums))
    else:
        if not docs:
            raise PackageError(f"{path} is empty")
        for doc in docs:
            _check_object(path, doc, namespace)


class StreamCheck:
    """Checks each file of a package as it streams in (read_archive's `check`), so that a package
    is refused at its first bad file and memory never holds more than the files that passed.

    The manifest must be the first file (the builder sorts it there) and, when `verify_key` is
    set, its signature the second, verified before anything else is read; then every file must
    be listed, match its checksum and hold valid content before the next one is read.
    verify_package still checks the whole package at the end (missing files, directories,
    kustomizations that include each other).
    """

    def __init__(self, namespace: str, verify_key: str | None = None) -> None:
        _require_yaml()
        self.namespace = namespace
        self.key = load_verify_key(verify_key) if verify_key else None
        self.manifest: bytes | None = None
        self.sums: dict | None = None

    def header(self, name: str) -> None:
        """Before a file's content is read."""
        if self.manifest is None:
            if name != MANIFEST:
                raise PackageError(f"{MANIFEST} is missing or is not the first file of the archive (the first is "
                                   f"{name!r}): this is not an mlops.platform secret package")
        elif name == SIGNATURE:
            return
        elif self.sums is None:  # verify_key is set and the signature did not follow the manifest
            raise PackageError(f"{SIGNATURE} is missing but verify_key is set: refusing an unsigned package")
        elif name not in self.sums:
            raise PackageError(f"files not listed in {MANIFEST}: {name}")

    def content(self, name: str, data: bytes) -> None:
        if self.manifest is None:
            self.manifest = data
            if self.key is None:
                self.sums = _parse_manifest(data, self.namespace)["files"]
        elif name == SIGNATURE:
            if self.key is not None:
                _verify_signature(self.key, self.manifest, data)
                self.sums = _parse_manifest(self.manifest, self.namespace)["files"]
        else:
            _check_file(name, data, self.sums, self.namespace)


def verify_package(
    files: dict[str, bytes], dirs: set[str], namespace: str, verify_key: str | None = None
) -> dict:
    """Check manifest, signature, checksums and content; return the manifest."""
    _require_yaml()
    if MANIFEST not in files:
        raise PackageError(f"{MANIFEST} is missing: this is not an mlops.platform secret package")
    if verify_key:
        key = load_verify_key(verify_key)
        if SIGNATURE not in files:
            raise PackageError(f"{SIGNATURE} is missing but verify_key is set: refusing an unsigned package")
        _verify_signature(key, files[MANIFEST], files[SIGNATURE])
    manifest = _parse_manifest(files[MANIFEST], namespace)
    listed_sums = manifest["files"]
    listed = set(listed_sums)
    present = set(files) - {MANIFEST, SIGNATURE}
    extra = sorted(present - listed)
    if extra:
        raise PackageError(f"files not listed in {MANIFEST}: {', '.join(extra)}")
    missing = sorted(listed - present)
    if missing:
        raise PackageError(f"files listed in {MANIFEST} but missing from the archive: {', '.join(missing)}")
    stray = sorted(dirs - _ancestor_dirs(listed))
    if stray:
        raise PackageError(f"directories not used by any listed file: {', '.join(stray)}")
    for path in sorted(listed):
        _check_file(path, files[path], listed_sums, namespace)
    overlay_resources(files, manifest)  # refuses kustomizations that include each other
    return manifest


def overlay_resources(files: dict[str, bytes], manifest: dict) -> dict[str, list[str]]:
    """Environment → the manifest files its overlay applies, in kustomize order (base first).

    Only for a verified package: its kustomizations hold nothing but in-package resources.
    """

    def resolve(directory: str, seen: frozenset) -> list[str]:
        if directory in seen:
            raise PackageError(f"{directory}/{KUSTOMIZATION} includes itself")
        doc = _load_yaml_docs(f"{directory}/{KUSTOMIZATION}", files[f"{directory}/{KUSTOMIZATION}"])[0]
        out: list[str] = []
        for res in doc.get("resources") or []:
            target = posixpath.normpath(posixpath.join(directory, res))
            out += resolve(target, seen | {directory}) if target not in files else [target]
        return out

    return {env: resolve(f"overlays/{env}", frozenset()) for env in manifest["environments"]}


def read_package_file(path: str, limits: dict | None = None, check=None) -> tuple[dict[str, bytes], set[str]]:
    """Files and directories of the package file at `path`, read as a stream (see read_archive)."""
    lim = {**DEFAULT_LIMITS, **(limits or {})}
    try:
        # O_NONBLOCK: opening a FIFO must not hang; fstat then refuses anything but a regular file.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb", buffering=0) as handle:
            st = os.fstat(handle.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise PackageError(f"{path} is not a regular file")
            if st.st_size == 0:
                raise PackageError(f"{path} is empty (0 bytes): it is not a package")
            if st.st_size > lim["max_total_size"]:
                raise PackageError(f"{path} is {st.st_size} bytes, above max_total_size ({lim['max_total_size']})")
            return read_archive(handle, lim, check)
    except OSError as exc:
        raise PackageError(f"cannot read the package {path}: {exc.strerror}") from None


def load_package(path: str, namespace: str, verify_key: str | None = None,
                 limits: dict | None = None) -> tuple[dict[str, bytes], dict]:
    """Read, check and verify a package file: (files to extract, manifest)."""
    files, dirs = read_package_file(path, limits, StreamCheck(namespace, verify_key))
    manifest = verify_package(files, dirs, namespace, verify_key)
    return files, manifest


# ---------------------------------------------------------------------------------------
# Writing an extracted package: compare first, then write to a temp dir and rename.


def read_tree(dest: str) -> dict[str, tuple[bytes | None, int]] | None:
    """The files under `dest` as path → (content, mode); None when `dest` does not exist.

    Symlinks and other special files are reported with content None so they never compare
    equal; `dest` itself must be a real directory that holds a previously extracted package.
    """
    if not os.path.lexists(dest):
        return None
    if os.path.islink(dest) or not os.path.isdir(dest):
        raise PackageError(f"dest {dest} exists and is not a directory; refusing to replace it")
    tree: dict[str, tuple[bytes | None, int]] = {}
    for root, dirnames, filenames in os.walk(dest):
        rel_root = os.path.relpath(root, dest)
        for name in sorted(dirnames):
            full = os.path.join(root, name)
            rel = os.path.normpath(os.path.join(rel_root, name)).replace(os.sep, "/")
            st = os.lstat(full)
            tree[rel + "/"] = (None if stat.S_ISLNK(st.st_mode) else b"", stat.S_IMODE(st.st_mode))
        for name in filenames:
            full = os.path.join(root, name)
            rel = os.path.normpath(os.path.join(rel_root, name)).replace(os.sep, "/")
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as handle:
                    tree[rel] = (handle.read(), stat.S_IMODE(st.st_mode))
            else:
                tree[rel] = (None, stat.S_IMODE(st.st_mode))
    if tree and MANIFEST not in tree:
        raise PackageError(
            f"dest {dest} is not empty and holds no {MANIFEST}: it is not an extracted package; refusing to replace it"
        )
    return tree


def _desired_tree(files: dict[str, bytes]) -> dict[str, tuple[bytes | None, int]]:
    tree: dict[str, tuple[bytes | None, int]] = {p: (c, FILE_MODE) for p, c in files.items()}
    tree.update({d + "/": (b"", DIR_MODE) for d in _ancestor_dirs(files)})
    return tree


def tree_files(tree: dict | None) -> list[str]:
    return sorted(p for p in (tree or {}) if not p.endswith("/"))


def extract(files: dict[str, bytes], dest: str, check_mode: bool = False) -> tuple[bool, list[str], list[str]]:
    """Make `dest` hold exactly `files` (0600) in directories 0700; (changed, before, after)."""
    dest = os.path.abspath(dest)
    current = read_tree(dest)
    desired = _desired_tree(files)
    dest_mode_ok = current is None or stat.S_IMODE(os.stat(dest).st_mode) == DIR_MODE
    before, after = tree_files(current), sorted(files)
    if current == desired and dest_mode_ok:
        return False, before, after
    if check_mode:
        return True, before, after
    parent = os.path.dirname(dest)
    os.makedirs(parent, mode=DIR_MODE, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(dest)}.", suffix=".tmp", dir=parent)
    old = None
    try:
        os.chmod(tmp, DIR_MODE)
        for path in sorted(files):
            target = os.path.join(tmp, *path.split("/"))
            directory = os.path.dirname(target)
            if not os.path.isdir(directory):
                os.makedirs(directory, mode=DIR_MODE)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), FILE_MODE)
                handle.write(files[path])
                handle.flush()
                os.fsync(handle.fileno())
        for root, dirnames, _files in os.walk(tmp):
            for name in dirnames:
                os.chmod(os.path.join(root, name), DIR_MODE)
        if current is not None:
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(dest)}.", suffix=".old", dir=parent)
            os.rename(dest, os.path.join(old, "previous"))
        os.rename(tmp, dest)
        tmp = None
    except BaseException:
        if old is not None and not os.path.exists(dest) and os.path.exists(os.path.join(old, "previous")):
            os.rename(os.path.join(old, "previous"), dest)
        raise
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return True, before, after


def write_package(path: str, data: bytes, check_mode: bool = False) -> tuple[bool, list[str]]:
    """Write `data` to `path` (0600) unless it already holds those bytes; (changed, files before)."""
    before: list[str] = []
    if os.path.lexists(path):
        if os.path.islink(path) or not os.path.isfile(path):
            raise PackageError(f"{path} exists and is not a regular file; refusing to replace it")
        with open(path, "rb") as handle:
            existing = handle.read()
        if existing == data and stat.S_IMODE(os.stat(path).st_mode) == FILE_MODE:
            return False, archive_names(existing)
        before = archive_names(existing)
    if check_mode:
        return True, before
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=DIR_MODE, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True, before


def archive_names(source) -> list[str]:
    """File names of an existing archive (bytes or a binary file object) for the diff, or [] when it cannot be read."""
    try:
        files = read_archive(source)[0]
    except PackageError:
        return []
    return sorted(files)


def remove(path: str, check_mode: bool = False) -> tuple[bool, list[str]]:
    """Remove a package file or an extracted package directory; (changed, files removed)."""
    if not os.path.lexists(path):
        return False, []
    if os.path.isdir(path) and not os.path.islink(path):
        tree = read_tree(path)
        if not tree:
            raise PackageError(f"{path} is an empty directory, not an extracted package; refusing to remove it")
        removed = tree_files(tree)
        if not check_mode:
            shutil.rmtree(path)
        return True, removed
    if os.path.isfile(path) and not os.path.islink(path) and path.endswith(".tar.gz"):
        with open(path, "rb") as handle:
            removed = archive_names(handle)
        if not check_mode:
            os.unlink(path)
        return True, removed
    raise PackageError(
        f"{path} is neither a package (.tar.gz) nor an extracted package directory; refusing to remove it"
    )
