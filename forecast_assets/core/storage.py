"""Where artifacts live, and writes that a reader sees whole or not at all.

An artifact location is a local folder or an fsspec URL (``s3://bucket/prefix``,
``gs://...``, ``memory://...``), held as a path object: ``pathlib.Path`` for local folders,
a ``upath.UPath`` for object stores. Both offer the same ``/``, ``open``, ``exists``,
``glob`` and ``unlink``, so code that stores artifacts need not know which it has.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import fsspec
from upath import UPath

ArtifactPath = Path | UPath

LOCAL_PROTOCOLS = ("", "file", "local")


class UnknownStorageError(ValueError):
    """A location names a protocol no installed fsspec filesystem serves."""


def artifact_path(
    location: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
) -> ArtifactPath:
    """``location`` as a path object: a ``Path`` for a local folder or ``file://`` URL,
    else a ``UPath`` carrying ``storage_options`` (endpoint, credentials...)."""
    if isinstance(location, UPath) and not is_local(location):
        return location
    text = os.fspath(location)
    protocol, _, rest = text.partition("://") if "://" in text else ("", "", text)
    if protocol in LOCAL_PROTOCOLS:
        return Path(rest if protocol else text)
    try:
        fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as error:
        raise UnknownStorageError(
            f"no filesystem for {protocol}:// in {text!r} ({error}); install the fsspec "
            "package for it (s3fs for s3://, gcsfs for gs://, adlfs for az://)"
        ) from None
    return UPath(text, **dict(storage_options or {}))


def is_local(path: str | os.PathLike[str]) -> bool:
    """True for a path on this machine's filesystem (where rename and fsync exist)."""
    if isinstance(path, UPath):
        return path.protocol in LOCAL_PROTOCOLS
    return "://" not in os.fspath(path) or os.fspath(path).startswith("file://")


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> ArtifactPath:
    """Call ``write(tmp_path)`` on a local temporary file, then put it at ``path`` whole.

    Locally the file is renamed into place beside its target. On an object store the file
    is uploaded as one object, which the store publishes whole (a reader gets the old object
    or the new one). ``write`` always receives a local path, so any library that writes
    files (torch, joblib, pyarrow, the ONNX exporter) can write an artifact anywhere.
    """
    target = artifact_path(path)
    if is_local(target):
        return _replace_local(Path(target), write)
    with tempfile.TemporaryDirectory(prefix="forecast-upload-") as folder:
        tmp = Path(folder) / target.name
        write(tmp)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.fs.put_file(str(tmp), target.path)
    return target


def _replace_local(target: Path, write: Callable[[Path], None]) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> ArtifactPath:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> ArtifactPath:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def append_line(path: str | os.PathLike[str], line: str) -> ArtifactPath:
    """Add ``line`` to the text file at ``path``. Object stores cannot append, so there the
    object is rewritten whole; callers append from one process at a time."""
    target = artifact_path(path)
    if is_local(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a") as handle:
            handle.write(line.rstrip("\n") + "\n")
        return target
    existing = target.read_text() if target.exists() else ""
    return atomic_write_text(target, existing + line.rstrip("\n") + "\n")
