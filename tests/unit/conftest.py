"""Shared fixtures for unit tests: throw-away key material made with `cryptography`."""

from __future__ import annotations

import base64
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID


@pytest.fixture(scope="session")
def rsa_private_key():
    """A 2048-bit RSA key (the controller's default is 4096; 2048 keeps tests fast)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def sealing_cert_pem(rsa_private_key) -> str:
    """A self-signed certificate for the key, like the one a Sealed Secrets controller publishes."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "sealed-secret"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sealed-secret"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(rsa_private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(rsa_private_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="session")
def ed25519_keys() -> tuple[str, str]:
    """(private PEM, public PEM) of a package signing key."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private.decode(), public.decode()


def _controller_decrypt(private_key, b64: str, label: bytes) -> bytes:
    """Unseal one `encryptedData` value the way the Sealed Secrets controller documents it.

    Written from the format description only (sealed-secrets docs/developer/crypto.md): 2-byte
    big-endian length of the RSA part, RSA-OAEP (SHA-256, MGF1-SHA-256, scope label) around a
    32-byte session key, then AES-256-GCM with a zero 12-byte nonce and no associated data.
    """
    blob = base64.b64decode(b64, validate=True)
    rsa_len = int.from_bytes(blob[:2], "big")
    rsa_part, aes_part = blob[2 : 2 + rsa_len], blob[2 + rsa_len :]
    session_key = private_key.decrypt(
        rsa_part,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=label or None),
    )
    assert len(session_key) == 32
    return AESGCM(session_key).decrypt(b"\x00" * 12, aes_part, None)


@pytest.fixture(scope="session")
def controller_decrypt():
    return _controller_decrypt
