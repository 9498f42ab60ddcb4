"""Atomic artifact files sealed by a manifest written last."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from store.artifacts import (
    MANIFEST_NAME,
    ArtifactError,
    verify_manifest,
    write_atomic,
    write_manifest,
)


def _sealed(tmp_path: Path) -> Path:
    directory = tmp_path / "artifact"
    write_atomic(directory / "model.pt", b"weights" * 100)
    write_atomic(directory / "model.json", b'{"layers": [1]}')
    write_manifest(directory, ["model.pt", "model.json"])
    return directory


def test_manifest_records_sha256_and_size(tmp_path: Path):
    directory = _sealed(tmp_path)
    body = json.loads((directory / MANIFEST_NAME).read_text())
    assert body["format"] == 1
    assert body["files"]["model.pt"] == {
        "sha256": hashlib.sha256(b"weights" * 100).hexdigest(),
        "size_bytes": 700,
    }
    manifest = verify_manifest(directory)
    assert sorted(manifest.files) == ["model.json", "model.pt"]


def test_manifest_is_written_after_the_files(tmp_path: Path):
    directory = _sealed(tmp_path)
    manifest_written = (directory / MANIFEST_NAME).stat().st_mtime_ns
    for name in ("model.pt", "model.json"):
        assert (directory / name).stat().st_mtime_ns <= manifest_written


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path):
    path = tmp_path / "out" / "file.bin"
    first = write_atomic(path, b"one")
    second = write_atomic(path, b"two!")
    assert path.read_bytes() == b"two!"
    assert (first.size_bytes, second.size_bytes) == (3, 4)
    assert second.sha256 == hashlib.sha256(b"two!").hexdigest()
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.bin"]


def test_unsealed_directory_is_rejected(tmp_path: Path):
    directory = tmp_path / "artifact"
    write_atomic(directory / "model.pt", b"weights")
    with pytest.raises(
        ArtifactError, match="has no manifest.json, so it was never completed"
    ):
        verify_manifest(directory)


def test_truncated_file_is_rejected(tmp_path: Path):
    directory = _sealed(tmp_path)
    with open(directory / "model.pt", "r+b") as handle:
        handle.truncate(350)
    with pytest.raises(
        ArtifactError, match="has 350 bytes; the manifest records 700. It was truncated"
    ):
        verify_manifest(directory)


def test_modified_file_is_rejected(tmp_path: Path):
    directory = _sealed(tmp_path)
    (directory / "model.pt").write_bytes(b"WEIGHTS" * 100)
    with pytest.raises(ArtifactError, match="modified after it was sealed"):
        verify_manifest(directory)


def test_missing_file_is_rejected(tmp_path: Path):
    directory = _sealed(tmp_path)
    (directory / "model.json").unlink()
    with pytest.raises(
        ArtifactError, match="model.json listed in the manifest is missing"
    ):
        verify_manifest(directory)


def test_manifest_of_other_format_is_rejected(tmp_path: Path):
    directory = _sealed(tmp_path)
    (directory / MANIFEST_NAME).write_text('{"format": 9, "files": {}}')
    with pytest.raises(ArtifactError, match="is not format 1"):
        verify_manifest(directory)


def test_paths_in_manifest_are_rejected(tmp_path: Path):
    directory = _sealed(tmp_path)
    (directory / MANIFEST_NAME).write_text(
        json.dumps(
            {"format": 1, "files": {"../model.pt": {"sha256": "0", "size_bytes": 1}}}
        )
    )
    with pytest.raises(ArtifactError, match="Invalid artifact file name '../model.pt'"):
        verify_manifest(directory)
