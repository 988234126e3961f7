"""Bring sales into the history store: the configured source files, and new landing files.

Rules (the README's "What runs when" describes them for users):
- The configured source (``data.path``, or the embedded example) seeds the history; a source
  file is merged again only when its size or modification time changed.
- Landing files are merged in the order they landed (modification time, then name). The row
  of the file merged last wins for a (sku, date) that is already in the history.
- A landing file that fails validation is moved to the quarantine folder with a sidecar
  ``.reason.txt``; the other files of the same run are still merged. A file that changed after
  it was detected (still being written) is left in place for a later run. A request for a name
  outside the landing folder moves nothing.
- A landing file already merged with the same size, modification time and content is skipped,
  so a retried run cannot put an older delivery back over a newer one.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from forecast_assets.core.data.history import HistoryStore, MergeResult, SourceRecord
from forecast_assets.core.data.landing import (
    FileChangedError,
    LandingFile,
    check_unchanged,
    is_safe_name,
    landing_path,
    quarantine,
)
from forecast_assets.core.data.loader import ColumnSpec, load_sales_files
from forecast_assets.core.errors import DataValidationError

logger = logging.getLogger(__name__)

LANDING_PREFIX = "landing/"


@dataclass(frozen=True)
class RefusedFile:
    """A landing file that was not merged, and why."""

    name: str
    reason: str
    quarantined_to: str | None = None  # None: left where it was (or never inside the folder)
    retry: bool = False  # it changed while being detected; a later run takes it


@dataclass
class IngestOutcome:
    merged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already merged, same content
    refused: list[RefusedFile] = field(default_factory=list)
    merge: MergeResult | None = None


def history_signature(spec: ColumnSpec, source: str) -> dict[str, object]:
    """What a history was built from: merging under another source or key is refused."""
    return {
        "source": source,
        "sku_columns": list(spec.sku_columns),
        "sku_separator": spec.sku_separator,
        "attribute_columns": list(spec.attribute_columns),
    }


def sync_source_files(
    store: HistoryStore,
    files: Sequence[Path],
    spec: ColumnSpec,
    signature: dict[str, object],
    today: pd.Timestamp | None = None,
) -> MergeResult | None:
    """Merge the configured source files that are new or changed since they were merged.

    A bad file raises DataValidationError (the user's own source is never moved) and nothing
    is merged. Returns None when every file is already in the history.
    """
    store.check_signature(signature)
    known = store.sources()
    changed = []
    for file in files:
        stat = file.stat()
        record = known.get(str(file))
        if record and (record.size, record.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            continue
        changed.append((file, stat))
    if not changed:
        return None
    batches = []
    for file, stat in changed:
        frame = load_sales_files([file], spec, today=today)
        record = SourceRecord(
            str(file), stat.st_size, stat.st_mtime_ns, _sha256(file), rows=len(frame)
        )
        batches.append((record, frame))
    return store.merge(batches, signature)


def seed_history(
    store: HistoryStore,
    source: str,
    make_frame: Callable[[], pd.DataFrame],
    signature: dict[str, object],
) -> MergeResult | None:
    """Fill an empty history from a generated frame (the embedded example); None if not empty."""
    store.check_signature(signature)
    if store.exists():
        return None
    frame = make_frame()
    return store.merge([(SourceRecord(source, rows=len(frame)), frame)], signature)


def ingest_landing_files(
    store: HistoryStore,
    folder: Path,
    quarantine_dir: Path,
    files: Sequence[LandingFile],
    spec: ColumnSpec,
    signature: dict[str, object],
    *,
    today: pd.Timestamp | None = None,
    run_id: str | None = None,
) -> IngestOutcome:
    """Validate each landing file, quarantine the bad ones and merge the good ones at once."""
    store.check_signature(signature)
    outcome = IngestOutcome()
    known = store.sources()
    batches = []
    for file in sorted(files, key=lambda f: (f.mtime_ns, f.name)):
        try:
            path = landing_path(folder, file.name)
            check_unchanged(path, file)
            record = known.get(LANDING_PREFIX + file.name)
            digest = _sha256(path)
            if record and (record.size, record.mtime_ns, record.sha256) == (
                file.size,
                file.mtime_ns,
                digest,
            ):
                outcome.skipped.append(file.name)
                continue
            frame = load_sales_files([path], spec, today=today)
        except FileChangedError as exc:
            outcome.refused.append(RefusedFile(file.name, str(exc), retry=True))
            continue
        except DataValidationError as exc:
            outcome.refused.append(_refuse(folder, quarantine_dir, file.name, str(exc), run_id))
            continue
        record = SourceRecord(
            LANDING_PREFIX + file.name, file.size, file.mtime_ns, digest, rows=len(frame)
        )
        batches.append((record, frame))
        outcome.merged.append(file.name)
    if batches:
        outcome.merge = store.merge(batches, signature)
    return outcome


def _refuse(
    folder: Path, quarantine_dir: Path, name: str, reason: str, run_id: str | None
) -> RefusedFile:
    # Only an entry inside the folder is moved; a name pointing elsewhere is just refused.
    inside = is_safe_name(name) and os.path.lexists(folder / name)
    moved = quarantine(folder, quarantine_dir, name, reason, run_id=run_id) if inside else None
    logger.warning("landing file %s refused: %s", name, reason)
    return RefusedFile(name, reason, str(moved) if moved else None)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
