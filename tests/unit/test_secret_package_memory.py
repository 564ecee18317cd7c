"""secret_package reads a package as a stream: memory stays small whatever max_total_size says.

Each bomb is a real ~2 MB gzip file that inflates to 2 GiB. The module runs in a child
process (the real module code; arguments passed the way Ansible's unit tests pass them) with
`max_total_size` raised to 4 GiB, and must end in its own clear refusal while its peak RSS
(resource.getrusage) and its peak Python allocations (tracemalloc) grow by at most a few MiB.
Before streaming, the module read `max_total_size + 1` bytes at once and inflated the whole
archive into memory: these bombs took 2 GiB or died with a bare MemoryError.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import textwrap
import zlib
from pathlib import Path

import pytest
from ansible_collections.mlops.platform.plugins.module_utils import secret_package as sp

ROOT = Path(__file__).resolve().parents[2]
GIB = 1024 * 1024 * 1024
BLOCK = 1024 * 1024
BOMB_BLOCKS = 2048  # 2 GiB inflated from about 2 MB
MEMORY_BUDGET_KIB = 32 * 1024  # "a few tens of MiB"; measured figures are in README.md (Reliability)
NS = "financial-ml"
SPEC = {
    "project": NS, "scope": "ml", "namespace": NS, "environments": ["production"], "date": "20250704",
    "secrets": [{"name": "ml-platform", "data": {"AWS_ACCESS_KEY_ID": "memory-test-key"}}],
}

# Runs the module in a fresh interpreter and reports its memory after the module has exited.
CHILD = textwrap.dedent(
    """
    import json, resource, sys, tracemalloc
    from ansible.module_utils.testing import patch_module_args
    from ansible_collections.mlops.platform.plugins.modules import secret_package as module

    args = json.loads(sys.argv[1])
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    try:
        with patch_module_args(args):
            module.main()
    except SystemExit:
        pass
    finally:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        sys.stderr.write(json.dumps({"rss_growth_kib": peak - baseline, "peak_rss_kib": peak,
                                     "traced_peak_kib": tracemalloc.get_traced_memory()[1] // 1024}))
    """
)


def gzip_segments(segments: list[tuple[bytes, int]]) -> bytes:
    """A valid gzip file of each (data, times) segment repeated, built without compressing it all.

    After a full flush deflate starts afresh, so the compressed form of a segment is the same
    every time: compress it once and repeat those bytes. CRC-32 and length make the trailer valid.
    """
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    compressed: dict[bytes, bytes] = {}
    body, crc, size = [], 0, 0
    for data, times in segments:
        if data not in compressed:
            compressed[data] = deflate.compress(data) + deflate.flush(zlib.Z_FULL_FLUSH)
        body.append(compressed[data] * times)
        for _time in range(times):
            crc = zlib.crc32(data, crc)
        size += len(data) * times
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = deflate.flush() + crc.to_bytes(4, "little") + (size % 2**32).to_bytes(4, "little")
    return header + b"".join(body) + trailer


def gzip_bomb(prefix: bytes, fill: bytes = b"\0" * BLOCK, blocks: int = BOMB_BLOCKS) -> bytes:
    """`prefix`, then `blocks` copies of `fill` (2 GiB of zeros by default), gzipped."""
    return gzip_segments([(prefix, 1), (fill, blocks)])


def tar_member(name: str, content: bytes = b"", size: int | None = None) -> bytes:
    """A tar header (claiming `size`, by default the content's) and the content padded to 512 bytes."""
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(content) if size is None else size, 0o600
    return info.tobuf(format=tarfile.USTAR_FORMAT) + content + b"\0" * (-len(content) % 512)


def tar_header(name: str, size: int) -> bytes:
    return tar_member(name, size=size)


def manifest_member(files: dict[str, str]) -> bytes:
    """A well-formed MANIFEST.json for NS listing `files` (path → sha256), as a forger would write it."""
    listed = {"overlays/production/kustomization.yaml": "0" * 64, **files}
    manifest = {"format": 1, "namespace": NS, "environments": ["production"], "files": listed}
    return tar_member("MANIFEST.json", json.dumps(manifest).encode())


def run_module(args: dict) -> tuple[dict, dict]:
    """(module result, memory figures) of one run in a child process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / ".collections")}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    memory = json.loads(proc.stderr.strip().splitlines()[-1])
    return json.loads(proc.stdout), memory


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, Path]:
    """The bombs, each under 2.5 MB on disk and at least 255 MiB (most 2 GiB) inflated."""
    where = tmp_path_factory.mktemp("bombs")
    blank = b" " * BLOCK  # valid text, a valid (empty) YAML document
    blank_sum = hashlib.sha256(blank).hexdigest()
    blank_files = [f"base/f{i:03d}.yaml" for i in range(255)]
    made = {
        # One member that claims its 2 GiB in the tar header.
        "member-claims-2GiB": gzip_bomb(tar_header("base/bomb.yaml", BOMB_BLOCKS * BLOCK)),
        # A forged manifest that lists it first, so it is read: 2 GiB of zeros.
        "manifest-then-2GiB-of-zeros": gzip_bomb(
            manifest_member({"base/bomb.yaml": "0" * 64}) + tar_header("base/bomb.yaml", BOMB_BLOCKS * BLOCK)
        ),
        # 255 listed files of 1 MiB of spaces, their checksums right: text all the way, within
        # the default max_members and max_file_size.
        "255-blank-files-of-1MiB": gzip_segments(
            [(manifest_member(dict.fromkeys(blank_files, blank_sum)), 1)]
            + [segment for name in blank_files for segment in ((tar_header(name, BLOCK), 1), (blank, 1))]
        ),
        # Only zeros: tar reads them as the end of an empty archive followed by 2 GiB of "padding".
        "zeros-not-a-tar": gzip_bomb(b""),
    }
    paths = {}
    for name, data in made.items():
        assert len(data) < 2_500_000, (name, len(data))
        paths[name] = where / f"{name}.tar.gz"
        paths[name].write_bytes(data)
    return paths


def test_bomb_helper_makes_a_valid_gzip(bombs):
    """The helper makes what it claims: a well-formed gzip stream (checked on a 16 MiB one) of that size."""
    prefix = tar_header("base/bomb.yaml", 16 * BLOCK)
    assert gzip.decompress(gzip_bomb(prefix, blocks=16)) == prefix + b"\0" * 16 * BLOCK
    assert gzip.decompress(gzip_bomb(b"", fill=b" " * BLOCK, blocks=3)) == b" " * 3 * BLOCK
    data = bombs["member-claims-2GiB"].read_bytes()
    assert data[:2] == b"\x1f\x8b" and int.from_bytes(data[-4:], "little") == (512 + BOMB_BLOCKS * BLOCK) % 2**32


ALL_4GIB = {"max_total_size": 4 * GIB, "max_file_size": 4 * GIB, "max_members": 1_000_000}


@pytest.mark.parametrize(
    ("bomb", "limits", "message"),
    [
        ("member-claims-2GiB", {"max_total_size": 4 * GIB}, "is 2147483648 bytes, above max_file_size"),
        # Every limit raised: refused at the header, before any of it is read.
        ("member-claims-2GiB", ALL_4GIB, "MANIFEST.json is missing or is not the first file"),
        # Read, and refused at its first chunk: package files are text.
        ("manifest-then-2GiB-of-zeros", ALL_4GIB, r"'base/bomb.yaml' holds the byte b'\\x00' at offset 0"),
        # Refused at the first file, whose content is no Secret, before the next is read.
        ("255-blank-files-of-1MiB", {"max_total_size": 4 * GIB}, "base/f000.yaml is empty"),
        ("zeros-not-a-tar", {"max_total_size": 4 * GIB}, "after the end of the tar"),
    ],
    ids=["default-file-limit", "all-limits-raised", "manifest-then-zeros", "many-blank-files", "not-a-tar"],
)
def test_gzip_bomb_is_refused_within_a_few_mib(tmp_path, bombs, bomb, limits, message):
    dest = tmp_path / "dest"
    result, memory = run_module(
        {"state": "extracted", "src": str(bombs[bomb]), "dest": str(dest), "namespace": NS, **limits}
    )
    assert result.get("failed") is True, result
    assert re.search(message, result["msg"]), result["msg"]
    assert "MemoryError" not in json.dumps(result)
    assert memory["rss_growth_kib"] < MEMORY_BUDGET_KIB, memory
    assert memory["traced_peak_kib"] < MEMORY_BUDGET_KIB, memory
    assert not dest.exists()


def test_valid_package_still_extracts_with_4_gib_limit(tmp_path):
    """The same child and limits accept a real package, so the refusals above are the bombs'."""
    src = tmp_path / "ok.tar.gz"
    src.write_bytes(sp.build(SPEC)[0])
    result, memory = run_module({"state": "extracted", "src": str(src), "dest": str(tmp_path / "dest"),
                                 "namespace": NS, "max_total_size": 4 * GIB, "max_file_size": 4 * GIB})
    assert result.get("changed") is True and not result.get("failed"), result
    assert (tmp_path / "dest" / "MANIFEST.json").is_file()
    assert memory["rss_growth_kib"] < MEMORY_BUDGET_KIB, memory


def test_empty_file_is_reported_as_empty_not_truncated(tmp_path):
    src = tmp_path / "empty.tar.gz"
    src.write_bytes(b"")
    result, _memory = run_module({"state": "extracted", "src": str(src), "dest": str(tmp_path / "d"), "namespace": NS})
    assert result.get("failed") is True
    assert result["msg"] == f"{src} is empty (0 bytes): it is not a package"
    assert "truncated" not in result["msg"]
    assert not (tmp_path / "d").exists()


def test_empty_bytes_and_empty_gzip_are_told_apart():
    """0 bytes is empty; a gzip stream of nothing is a gzip without a tar; a cut stream is truncated."""
    with pytest.raises(sp.PackageError, match=r"^the archive is empty \(0 bytes\)"):
        sp.read_archive(b"")
    with pytest.raises(sp.PackageError, match=r"not a readable tar \(empty file\)"):
        sp.read_archive(gzip.compress(b"", mtime=0))
    with pytest.raises(sp.PackageError, match="truncated"):
        sp.read_archive(gzip.compress(b"x" * 100, mtime=0)[:5])


def test_stream_reads_the_file_in_bounded_chunks():
    """read_archive never asks its source for more than one chunk at a time."""
    asked: list[int] = []

    class Recorder(io.BytesIO):
        def read(self, size=-1):
            asked.append(size)
            return super().read(size)

    files, _dirs = sp.read_archive(Recorder(sp.build(SPEC)[0]))
    assert "MANIFEST.json" in files
    assert asked and all(0 < size <= 64 * 1024 for size in asked)


def test_stream_returns_at_most_one_chunk_and_nothing_for_zero():
    """zlib takes max_length 0 as "no limit": a read of 0 bytes must not inflate anything."""
    bomb = io.BytesIO(gzip_bomb(b"", blocks=4))
    stream = sp._GzipStream(bomb, 4 * GIB)
    assert stream.read(0) == b"" and stream.total == 0
    assert len(stream.read()) == 64 * 1024 and len(stream.read(10**9)) == 64 * 1024
    assert stream.total == 128 * 1024
