"""Sealing must produce what a Sealed Secrets controller can unseal.

The decryptor (conftest `controller_decrypt`) is written from the documented format only (sealed-secrets
docs/developer/crypto.md), not from the code under test: split the 2-byte big-endian length,
RSA-OAEP(SHA-256, MGF1-SHA-256, label) decrypt the session key with the private key, then
AES-256-GCM decrypt with a zero 12-byte nonce.
"""

from __future__ import annotations

import base64

import pytest
from ansible_collections.mlops.platform.plugins.module_utils import sealing
from ansible_collections.mlops.platform.plugins.module_utils.sealing import (
    SealingError,
    load_public_key,
    seal_value,
    sealed_secret,
)
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

VALUES = {
    "AWS_ACCESS_KEY_ID": "minio-access-key-for-tests",
    "AWS_SECRET_ACCESS_KEY": "s3cr3t/with+base64=chars",
    "EMPTY": "",
    "UNICODE": "pässwörd-✓",
}


def label_for(scope: str, namespace: str, name: str) -> bytes:
    return {"strict": f"{namespace}/{name}".encode(), "namespace-wide": namespace.encode(), "cluster-wide": b""}[scope]


@pytest.fixture(scope="module")
def public_key(sealing_cert_pem):
    return load_public_key(sealing_cert_pem)


@pytest.mark.parametrize("seed_key", [None, b"builder-held-seed-key"], ids=["random", "deterministic"])
@pytest.mark.parametrize("scope", ["strict", "namespace-wide", "cluster-wide"])
def test_sealed_secret_unseals_with_the_controller_key(
    controller_decrypt, rsa_private_key, public_key, scope, seed_key
):
    obj = sealed_secret(
        public_key, "ml-platform", "financial-ml", VALUES, scope=scope,
        labels={"app.kubernetes.io/managed-by": "mlops.platform"}, seed_key=seed_key,
    )
    assert obj["apiVersion"] == "bitnami.com/v1alpha1"
    assert obj["kind"] == "SealedSecret"
    assert obj["metadata"]["name"] == "ml-platform"
    assert obj["metadata"]["namespace"] == "financial-ml"
    assert obj["spec"]["template"]["type"] == "Opaque"
    assert obj["spec"]["template"]["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "mlops.platform"}
    assert sorted(obj["spec"]["encryptedData"]) == sorted(VALUES)
    label = label_for(scope, "financial-ml", "ml-platform")
    for key, value in VALUES.items():
        assert controller_decrypt(rsa_private_key, obj["spec"]["encryptedData"][key], label) == value.encode()


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("strict", {}),
        ("namespace-wide", {"sealedsecrets.bitnami.com/namespace-wide": "true"}),
        ("cluster-wide", {"sealedsecrets.bitnami.com/cluster-wide": "true"}),
    ],
)
def test_scope_annotations_on_object_and_template(public_key, scope, expected):
    obj = sealed_secret(public_key, "s", "ns", {"k": "v"}, scope=scope)
    assert obj["metadata"].get("annotations", {}) == expected
    assert obj["spec"]["template"]["metadata"].get("annotations", {}) == expected


def test_wire_format_lengths(rsa_private_key, public_key):
    blob = base64.b64decode(seal_value(public_key, "abc", "ns", "name"))
    rsa_len = int.from_bytes(blob[:2], "big")
    assert rsa_len == rsa_private_key.key_size // 8 == 256
    # value + 16-byte GCM tag after the RSA part
    assert len(blob) == 2 + rsa_len + 3 + 16


@pytest.mark.parametrize(
    ("namespace", "name"),
    [("other-team", "ml-platform"), ("financial-ml", "other-name"), ("financial-ml-", "ml-platform")],
)
def test_strict_scope_refuses_other_namespace_or_name(controller_decrypt, rsa_private_key, public_key, namespace, name):
    b64 = seal_value(public_key, "secret", "financial-ml", "ml-platform", "strict")
    with pytest.raises(ValueError):
        controller_decrypt(rsa_private_key, b64, f"{namespace}/{name}".encode())


def test_namespace_wide_binds_namespace_not_name(controller_decrypt, rsa_private_key, public_key):
    b64 = seal_value(public_key, "secret", "financial-ml", "ml-platform", "namespace-wide")
    assert controller_decrypt(rsa_private_key, b64, b"financial-ml") == b"secret"
    for wrong in (b"other-team", b"financial-ml/ml-platform", b""):
        with pytest.raises(ValueError):
            controller_decrypt(rsa_private_key, b64, wrong)


def test_cluster_wide_has_empty_label(controller_decrypt, rsa_private_key, public_key):
    b64 = seal_value(public_key, "secret", "financial-ml", "ml-platform", "cluster-wide")
    assert controller_decrypt(rsa_private_key, b64, b"") == b"secret"
    with pytest.raises(ValueError):
        controller_decrypt(rsa_private_key, b64, b"financial-ml")


def test_wrong_private_key_cannot_unseal(controller_decrypt, public_key):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    b64 = seal_value(public_key, "secret", "ns", "n")
    with pytest.raises(ValueError):
        controller_decrypt(other, b64, b"ns/n")


def test_tampered_value_fails_authentication(controller_decrypt, rsa_private_key, public_key):
    blob = bytearray(base64.b64decode(seal_value(public_key, "secret", "ns", "n")))
    blob[-1] ^= 0x01
    with pytest.raises(InvalidTag):
        controller_decrypt(rsa_private_key, base64.b64encode(bytes(blob)).decode(), b"ns/n")


def test_random_sealing_differs_each_time(public_key):
    assert seal_value(public_key, "v", "ns", "n") != seal_value(public_key, "v", "ns", "n")


def test_deterministic_sealing_depends_on_every_input(public_key):
    seed = b"k1"
    base = seal_value(public_key, "v", "ns", "n", seed_key=seed)
    assert base == seal_value(public_key, "v", "ns", "n", seed_key=seed)
    assert base != seal_value(public_key, "w", "ns", "n", seed_key=seed)
    assert base != seal_value(public_key, "v", "ns2", "n", seed_key=seed)
    assert base != seal_value(public_key, "v", "ns", "n2", seed_key=seed)
    assert base != seal_value(public_key, "v", "ns", "n", seed_key=b"k2")
    other_cert_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    assert base != seal_value(other_cert_key, "v", "ns", "n", seed_key=seed)
    # equal values under different keys do not reveal that they are equal
    assert seal_value(public_key, "v", "ns", "n", seed_key=seed, key="A") != seal_value(
        public_key, "v", "ns", "n", seed_key=seed, key="B"
    )
    obj = sealed_secret(public_key, "n", "ns", {"A": "same", "B": "same"}, seed_key=seed)
    assert obj["spec"]["encryptedData"]["A"] != obj["spec"]["encryptedData"]["B"]


def test_load_public_key_accepts_pem_public_key(rsa_private_key):
    pem = rsa_private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert load_public_key(pem).public_numbers() == rsa_private_key.public_key().public_numbers()


def test_load_public_key_refusals():
    with pytest.raises(SealingError, match="not a valid PEM"):
        load_public_key("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    with pytest.raises(SealingError, match="at least 2048"):
        load_public_key(small.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    ec_pem = ec_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(SealingError, match="RSA"):
        load_public_key(ec_pem)


def test_scope_and_identity_validation(public_key):
    with pytest.raises(SealingError, match="unknown sealing scope"):
        seal_value(public_key, "v", "ns", "n", scope="global")
    with pytest.raises(SealingError, match="needs a namespace"):
        seal_value(public_key, "v", "", "n")
    # cluster-wide needs no namespace in the label
    assert seal_value(public_key, "v", "", "n", scope="cluster-wide")


def test_missing_cryptography_is_a_clear_error(monkeypatch, public_key):
    monkeypatch.setattr(sealing, "HAS_CRYPTOGRAPHY", False)
    with pytest.raises(SealingError, match="'cryptography' is required"):
        seal_value(public_key, "v", "ns", "n")
