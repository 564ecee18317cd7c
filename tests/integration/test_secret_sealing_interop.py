"""Interoperability with the Sealed Secrets controller's own code, not only with the format.

A tiny Go program, built here from the Go module proxy against the upstream module
github.com/bitnami-labs/sealed-secrets, unseals our SealedSecrets with
`(*SealedSecret).Unseal`, the function the controller runs. The binary is cached per version
under the project cache; the first build downloads the module graph (a few minutes), later
runs take seconds. Needs Go (the offline cluster needs it too).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess

import pytest
import yaml
from ansible_collections.mlops.platform.plugins.module_utils import sealing
from ansible_collections.mlops.platform.plugins.module_utils import secret_package as sp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SEALED_SECRETS_VERSION = "v0.27.1"
CACHE = pathlib.Path(os.environ.get("MLOPS_CACHE_DIR", pathlib.Path.home() / ".cache" / "mlops-platform"))

GO_MOD = f"""module mlops.platform/unseal

go 1.22

require github.com/bitnami-labs/sealed-secrets {SEALED_SECRETS_VERSION}
"""

# Reads a PKCS#8 RSA key and a SealedSecret (JSON), prints the unsealed Secret as JSON.
GO_MAIN = """package main

import (
    "crypto/rsa"
    "crypto/x509"
    "encoding/json"
    "encoding/pem"
    "fmt"
    "os"

    ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
    "k8s.io/apimachinery/pkg/runtime/serializer"
    "k8s.io/client-go/kubernetes/scheme"
)

func main() {
    keyPEM, err := os.ReadFile(os.Args[1])
    if err != nil {
        panic(err)
    }
    block, _ := pem.Decode(keyPEM)
    key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
    if err != nil {
        panic(err)
    }
    raw, err := os.ReadFile(os.Args[2])
    if err != nil {
        panic(err)
    }
    var sealed ssv1alpha1.SealedSecret
    if err := json.Unmarshal(raw, &sealed); err != nil {
        panic(err)
    }
    keys := map[string]*rsa.PrivateKey{"test": key.(*rsa.PrivateKey)}
    secret, err := sealed.Unseal(serializer.NewCodecFactory(scheme.Scheme), keys)
    if err != nil {
        fmt.Fprintln(os.Stderr, "unseal:", err)
        os.Exit(3)
    }
    data := map[string]string{}
    for k, v := range secret.Data {
        data[k] = string(v)
    }
    out, _ := json.Marshal(map[string]any{
        "name": secret.Name, "namespace": secret.Namespace, "type": string(secret.Type),
        "labels": secret.Labels, "data": data,
    })
    fmt.Println(string(out))
}
"""


@pytest.fixture(scope="module")
def unseal_binary() -> pathlib.Path:
    binary = CACHE / "bin" / f"sealed-secrets-unseal-{SEALED_SECRETS_VERSION}"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is not on PATH; it is needed to build the Sealed Secrets interop helper (and the offline cluster)")
    src = CACHE / "src" / f"sealed-secrets-unseal-{SEALED_SECRETS_VERSION}"
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text(GO_MOD)
    (src / "main.go").write_text(GO_MAIN)
    env = {**os.environ, "GOFLAGS": "-mod=mod"}
    for cmd in ([go, "mod", "tidy"], [go, "build", "-o", str(binary), "."]):
        result = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True, check=False, timeout=1800)
        assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}"
    return binary


@pytest.fixture(scope="module")
def controller_key(tmp_path_factory):
    key = rsa.generate_private_key(public_exponent=65537, key_size=4096)  # the controller's default size
    path = tmp_path_factory.mktemp("controller") / "key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return key, path


def unseal(binary: pathlib.Path, key_path: pathlib.Path, obj: dict, tmp_path: pathlib.Path):
    path = tmp_path / "sealed.json"
    path.write_text(json.dumps(obj))
    return subprocess.run([str(binary), str(key_path), str(path)], capture_output=True, text=True, check=False,
                          timeout=60)


VALUES = {"AWS_SECRET_ACCESS_KEY": "s3cr3t+/=", "UNICODE": "pässwörd ✓", "EMPTY": ""}


@pytest.mark.parametrize("deterministic", [False, True], ids=["random", "deterministic"])
@pytest.mark.parametrize("scope", ["strict", "namespace-wide", "cluster-wide"])
def test_controller_code_unseals_our_sealed_secrets(unseal_binary, controller_key, tmp_path, scope, deterministic):
    key, key_path = controller_key
    obj = sealing.sealed_secret(
        key.public_key(), "ml-platform", "financial-ml", VALUES, scope=scope, secret_type="Opaque",
        labels={"mlops.platform/team": "financial-ml"}, seed_key=b"seed" if deterministic else None,
    )
    result = unseal(unseal_binary, key_path, obj, tmp_path)
    assert result.returncode == 0, result.stderr
    secret = json.loads(result.stdout)
    assert secret["data"] == VALUES
    assert (secret["name"], secret["namespace"], secret["type"]) == ("ml-platform", "financial-ml", "Opaque")
    assert secret["labels"] == {"mlops.platform/team": "financial-ml"}

    moved = json.loads(json.dumps(obj))
    moved["metadata"]["namespace"] = "other-team"
    result = unseal(unseal_binary, key_path, moved, tmp_path)
    if scope == "cluster-wide":
        assert result.returncode == 0 and json.loads(result.stdout)["data"] == VALUES
    else:
        assert result.returncode == 3 and "no key could decrypt secret" in result.stderr
    renamed = json.loads(json.dumps(obj))
    renamed["metadata"]["name"] = "other-name"
    result = unseal(unseal_binary, key_path, renamed, tmp_path)
    assert (result.returncode == 0) == (scope != "strict"), result.stderr


def test_controller_code_unseals_a_built_package(unseal_binary, controller_key, tmp_path, ed25519_pem):
    key, key_path = controller_key
    cert = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    files = sp.render_files(
        "financial-mlops-pytorch", "ml", "financial-mlops-pytorch", ["production"],
        [{"name": "ghcr", "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": '{"auths":{}}'}}],
        "20250704", team="financial-mlops-pytorch", certificate=cert.decode(), signing_key=ed25519_pem,
    )
    obj = yaml.safe_load(files["base/ghcr.yaml"])
    result = unseal(unseal_binary, key_path, obj, tmp_path)
    assert result.returncode == 0, result.stderr
    secret = json.loads(result.stdout)
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["data"] == {".dockerconfigjson": '{"auths":{}}'}
    assert secret["labels"]["app.kubernetes.io/managed-by"] == "mlops.platform"


@pytest.fixture(scope="module")
def ed25519_pem() -> str:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
