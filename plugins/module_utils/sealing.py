# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Offline sealing compatible with Bitnami Sealed Secrets (kubeseal).

Each value of a Secret is sealed on its own with the controller's public key (hybrid
encryption, as documented by the sealed-secrets project in docs/developer/crypto.md):

* a single-use 32-byte session key encrypts the value with AES-256-GCM; because the key
  is never reused the nonce is 12 zero bytes and there is no associated data;
* the session key is encrypted with RSA-OAEP, SHA-256 for both the hash and MGF1, and an
  OAEP label that binds the scope: ``<namespace>/<name>`` (strict), ``<namespace>``
  (namespace-wide) or empty (cluster-wide);
* the result is ``len(rsa_ciphertext)`` as 2 big-endian bytes, the RSA ciphertext, then the
  AES-GCM ciphertext with its 16-byte tag, base64-encoded (standard alphabet).

Sealing is randomised by default. With a ``seed_key`` (a secret the builder holds, never
shipped), the session key and the OAEP seed are derived with HMAC-SHA256 from the key, the
scope label, the data key, the value and the certificate, so the same inputs give the same
ciphertext: packages can then be rebuilt byte-identically and ``changed`` stays honest.
Without knowing ``seed_key`` nobody can reproduce a ciphertext to confirm a guessed value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
import traceback

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

SCOPES = ("strict", "namespace-wide", "cluster-wide")
ANNOTATION_NAMESPACE_WIDE = "sealedsecrets.bitnami.com/namespace-wide"
ANNOTATION_CLUSTER_WIDE = "sealedsecrets.bitnami.com/cluster-wide"
SESSION_KEY_BYTES = 32
GCM_NONCE = b"\x00" * 12
_SHA256_LEN = 32
# Smallest key the controller would ever generate is far above this; refuse toys.
MIN_RSA_BITS = 2048


class SealingError(Exception):
    """A certificate, scope or value that cannot be sealed; the message says why."""


def require_cryptography() -> None:
    """Raise a clear error when the optional `cryptography` library is missing."""
    if not HAS_CRYPTOGRAPHY:
        raise SealingError(
            "the Python library 'cryptography' is required to seal secrets or sign packages "
            "(pip install cryptography on the host running the module)"
        )


def encryption_label(namespace: str, name: str, scope: str = "strict") -> bytes:
    """The OAEP label that binds a sealed value to its scope."""
    if scope == "cluster-wide":
        return b""
    if not namespace:
        raise SealingError(f"a {scope} SealedSecret needs a namespace")
    if scope == "namespace-wide":
        return namespace.encode()
    if scope == "strict":
        if not name:
            raise SealingError("a strict SealedSecret needs a name")
        return f"{namespace}/{name}".encode()
    raise SealingError(f"unknown sealing scope {scope!r}: use one of {', '.join(SCOPES)}")


def scope_annotations(scope: str) -> dict[str, str]:
    """Annotations the controller reads to pick the label when unsealing."""
    if scope == "namespace-wide":
        return {ANNOTATION_NAMESPACE_WIDE: "true"}
    if scope == "cluster-wide":
        return {ANNOTATION_CLUSTER_WIDE: "true"}
    if scope == "strict":
        return {}
    raise SealingError(f"unknown sealing scope {scope!r}: use one of {', '.join(SCOPES)}")


def load_public_key(certificate_pem: str | bytes):
    """The RSA public key of a controller certificate (PEM) or of a PEM public key."""
    require_cryptography()
    data = certificate_pem.encode() if isinstance(certificate_pem, str) else certificate_pem
    try:
        if b"BEGIN CERTIFICATE" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise SealingError(
            f"the sealing certificate is not a valid PEM certificate or public key ({exc}); "
            "fetch it with `kubeseal --fetch-cert` or from the controller's /v1/cert.pem"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise SealingError("the sealing certificate must hold an RSA public key (Sealed Secrets uses RSA)")
    if key.key_size < MIN_RSA_BITS:
        raise SealingError(f"the sealing key has {key.key_size} bits; at least {MIN_RSA_BITS} are required")
    return key


def _mgf1_sha256(seed: bytes, length: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(seed + struct.pack(">I", counter)).digest()
        counter += 1
    return out[:length]


def _oaep_encrypt_with_seed(public_key, message: bytes, label: bytes, seed: bytes) -> bytes:
    """RSAES-OAEP-ENCRYPT (RFC 8017, 7.1.1) with SHA-256/MGF1-SHA-256 and a caller-given seed.

    `cryptography` always draws the OAEP seed from the system RNG; deterministic sealing needs
    it from the HMAC derivation instead. Only the public operation is done here.
    """
    numbers = public_key.public_numbers()
    k = (numbers.n.bit_length() + 7) // 8
    if len(message) > k - 2 * _SHA256_LEN - 2:
        raise SealingError("message too long for RSA-OAEP")
    db = (
        hashlib.sha256(label).digest()
        + b"\x00" * (k - len(message) - 2 * _SHA256_LEN - 2)
        + b"\x01"
        + message
    )
    masked_db = bytes(a ^ b for a, b in zip(db, _mgf1_sha256(seed, k - _SHA256_LEN - 1), strict=True))
    masked_seed = bytes(a ^ b for a, b in zip(seed, _mgf1_sha256(masked_db, _SHA256_LEN), strict=True))
    encoded = int.from_bytes(b"\x00" + masked_seed + masked_db, "big")
    return pow(encoded, numbers.e, numbers.n).to_bytes(k, "big")


def _derive(seed_key: bytes, purpose: bytes, parts: list[bytes]) -> bytes:
    # Length-prefix every part so distinct inputs can never concatenate to the same message.
    msg = purpose + b"".join(struct.pack(">Q", len(p)) + p for p in parts)
    return hmac.new(seed_key, msg, hashlib.sha256).digest()


def hybrid_encrypt(
    public_key, plaintext: bytes, label: bytes, seed_key: bytes | None = None, context: bytes = b""
) -> bytes:
    """Seal one value: 2-byte RSA length ‖ RSA-OAEP(session key) ‖ AES-256-GCM(value).

    `context` (the data key) only enters the deterministic derivation, so equal values under
    different keys still get different ciphertexts.
    """
    require_cryptography()
    if seed_key:
        spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        parts = [hashlib.sha256(spki).digest(), label, context, plaintext]
        session_key = _derive(seed_key, b"mlops.platform/seal/session-key/v1", parts)
        oaep_seed = _derive(seed_key, b"mlops.platform/seal/oaep-seed/v1", parts)
        rsa_ciphertext = _oaep_encrypt_with_seed(public_key, session_key, label, oaep_seed)
    else:
        session_key = os.urandom(SESSION_KEY_BYTES)
        rsa_ciphertext = public_key.encrypt(
            session_key,
            padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=label or None),
        )
    aes_ciphertext = AESGCM(session_key).encrypt(GCM_NONCE, plaintext, None)
    return struct.pack(">H", len(rsa_ciphertext)) + rsa_ciphertext + aes_ciphertext


def seal_value(
    public_key,
    value: str | bytes,
    namespace: str,
    name: str,
    scope: str = "strict",
    seed_key: bytes | None = None,
    key: str = "",
) -> str:
    """The base64 `encryptedData` entry for value `key` of Secret `namespace/name`."""
    data = value.encode() if isinstance(value, str) else value
    label = encryption_label(namespace, name, scope)
    return base64.b64encode(hybrid_encrypt(public_key, data, label, seed_key, key.encode())).decode()


def sealed_secret(
    public_key,
    name: str,
    namespace: str,
    data: dict[str, str | bytes],
    scope: str = "strict",
    secret_type: str = "Opaque",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    seed_key: bytes | None = None,
) -> dict:
    """A SealedSecret manifest (bitnami.com/v1alpha1) the controller unseals into the Secret.

    The scope annotation goes on the SealedSecret (read by the controller when unsealing)
    and on the template (so the resulting Secret says how it was sealed, as kubeseal does).
    """
    scope_anno = scope_annotations(scope)
    meta: dict = {"name": name, "namespace": namespace}
    template_meta: dict = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = dict(labels)
        template_meta["labels"] = dict(labels)
    merged_anno = {**(annotations or {}), **scope_anno}
    if merged_anno:
        template_meta["annotations"] = dict(merged_anno)
    if scope_anno:
        meta["annotations"] = dict(scope_anno)
    encrypted = {key: seal_value(public_key, data[key], namespace, name, scope, seed_key, key) for key in sorted(data)}
    return {
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": meta,
        "spec": {
            "encryptedData": encrypted,
            "template": {"metadata": template_meta, "type": secret_type},
        },
    }
