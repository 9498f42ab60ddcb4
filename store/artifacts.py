"""Artifact files: written atomically, then sealed by a manifest written last.

Each file goes to a temporary file in its own directory, is fsynced and
renamed over its final name, and the directory is fsynced. Only then is
``manifest.json`` written the same way, listing the sha256 and size of
every file. A reader trusts a directory only through ``verify_manifest``:
no manifest, a missing file, a different size or a different hash all
raise ``ArtifactError``, so a file cut short by a crash is never loaded.

Nothing here imports torch: the agent's control process verifies
artifacts, and only the process that loads the tensors needs torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from store.errors import StoreError

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
_CHUNK_BYTES = 1 << 20


class ArtifactError(StoreError):
    """An artifact directory that is incomplete, altered or unreadable."""


@dataclass(frozen=True)
class ArtifactFile:
    name: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class Manifest:
    """The sealed contents of an artifact directory."""

    directory: Path
    files: dict[str, ArtifactFile]
    created_at: float

    def sha256(self, name: str) -> str:
        return self.files[name].sha256


def write_atomic(path: str | Path, data: bytes) -> ArtifactFile:
    """Write ``data`` to ``path`` so a reader sees the old file or the new one.

    Returns:
        The file's name, sha256 and size.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return ArtifactFile(path.name, hashlib.sha256(data).hexdigest(), len(data))


def write_manifest(directory: str | Path, names: list[str]) -> Manifest:
    """Hash the named files and write ``manifest.json`` last; return the manifest.

    Call it after every file is written: the manifest is what marks the
    directory complete.
    """
    directory = Path(directory)
    if MANIFEST_NAME in names:
        raise ValueError(f"{MANIFEST_NAME} cannot list itself.")
    files = {}
    for name in names:
        _check_name(name)
        path = directory / name
        files[name] = ArtifactFile(name, sha256_file(path), path.stat().st_size)
    created_at = time.time()
    body = {
        "format": MANIFEST_FORMAT,
        "created_at": created_at,
        "files": {
            name: {"sha256": entry.sha256, "size_bytes": entry.size_bytes}
            for name, entry in sorted(files.items())
        },
    }
    write_atomic(directory / MANIFEST_NAME, json.dumps(body, indent=2).encode())
    return Manifest(directory, files, created_at)


def verify_manifest(directory: str | Path) -> Manifest:
    """Check every file against the manifest; raise ArtifactError on any mismatch."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST_NAME
    try:
        body = json.loads(manifest_path.read_bytes())
    except FileNotFoundError:
        raise ArtifactError(
            f"The artifact directory {directory} has no {MANIFEST_NAME}, so it was "
            "never completed (the writer stopped before sealing it)."
        ) from None
    except (OSError, ValueError) as error:
        raise ArtifactError(
            f"The manifest {manifest_path} cannot be read: {error}."
        ) from error
    if not isinstance(body, dict) or body.get("format") != MANIFEST_FORMAT:
        raise ArtifactError(
            f"The manifest {manifest_path} is not format {MANIFEST_FORMAT}; it may "
            "come "
            "from another rigdeck version."
        )
    files = {}
    for name, entry in body.get("files", {}).items():
        _check_name(name)
        files[name] = _verify_file(directory, name, entry)
    return Manifest(directory, files, float(body.get("created_at", 0.0)))


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_file(directory: Path, name: str, entry: dict) -> ArtifactFile:
    path = directory / name
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ArtifactError(
            f"The artifact file {path} listed in the manifest is missing."
        ) from None
    if size != entry["size_bytes"]:
        raise ArtifactError(
            f"The artifact file {path} has {size} bytes; the manifest records "
            f"{entry['size_bytes']}. It was truncated or replaced."
        )
    actual = sha256_file(path)
    if actual != entry["sha256"]:
        raise ArtifactError(
            f"The artifact file {path} has sha256 {actual}; the manifest records "
            f"{entry['sha256']}. It was modified after it was sealed."
        )
    return ArtifactFile(name, actual, size)


def _check_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ArtifactError(
            f"Invalid artifact file name {name!r}: use a plain file name."
        )


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
