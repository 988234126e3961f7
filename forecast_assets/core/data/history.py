"""A durable, atomic store of the standardized sales history, partitioned by calendar year.

Layout under the store's folder::

    manifest.json            the committed state, the single commit point (replaced atomically)
    manifest.previous.json   the state before the last commit, so that its readers can finish
    parts/year=YYYY/vNNNNNN.parquet
                             immutable part files, one per year of ``date``, named by the
                             version that wrote them
    .lock                    held with ``fcntl.flock`` for the whole of a merge

Rows are kept in the loader's standardized form (see ``loader``): a DatetimeIndex named ``date``,
``sku`` (str), ``quantity`` (float64) and attribute columns (str); one row per (sku, date).

Merge rules:
- Latest delivery wins: batches are applied in the given order, and a row for a (sku, date)
  from a later batch replaces the stored row, and rows of earlier batches of the same call, as
  a whole (quantity and attributes).
- Only the year partitions that new rows fall in are rewritten, each into a new part file;
  untouched years keep their part file.
- Every batch must carry the same attribute columns as the history (the first merge defines
  them); otherwise DataValidationError names the source and the column.
- The history belongs to one ``signature`` (a JSON dict built from the caller's settings); a
  merge or ``check_signature`` with another one raises ConfigurationError and writes nothing.
- Each merged source's SourceRecord is kept under its ``source``; a later merge of the same
  source replaces the record.
- Commit: part files are written and fsynced first, the old manifest is copied to
  ``manifest.previous.json``, then the new manifest is published with one ``os.replace``. A
  crash before that leaves the old history intact; its orphan files are ignored by readers and
  removed by the next successful merge, which deletes every part file that neither manifest
  references.
- When reading, a SKU's attribute columns take the values of its most recent row.

On an object store (``root`` an fsspec URL such as ``s3://bucket/history``) the layout and the
rules are the same. There is no rename: each part file and the manifest is uploaded as one
object, which the store publishes whole, so the manifest upload is the commit point. There is
no ``flock`` either: the deployment lets one history writer run at a time (the run queue's
``forecast_assets/history`` tag limit), and a merge that finds the manifest changed under it
raises ConfigurationError instead of overwriting the other commit (part names carry a random
tag there, so that two writers never write the same part file).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from forecast_assets.core.errors import (
    ConfigurationError,
    DataValidationError,
    InsufficientDataError,
)
from forecast_assets.core.storage import ArtifactPath, artifact_path, atomic_write, is_local

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PREVIOUS_MANIFEST = "manifest.previous.json"
LOCK = ".lock"
PARTS = "parts"
FORMAT = 1
_KEYS = ["sku", "date"]
_SORT = [("sku", "ascending"), ("date", "ascending")]
# Reads retry this often when a concurrent merge removed a part between manifest and read.
_READ_ATTEMPTS = 3


@dataclass(frozen=True)
class SourceRecord:
    """Where a merged batch came from, so that a caller can skip a file it already merged.

    ``rows`` left at 0 is filled in with the batch's row count when the batch is merged.
    """

    source: str
    size: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SourceRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in d.items() if key in known})


@dataclass(frozen=True)
class MergeResult:
    """What one merge changed."""

    version: int
    rows_before: int
    rows_after: int
    rows_new: int
    rows_replaced: int
    skus_new: int
    years_rewritten: list[str]


class HistoryStore:
    """The sales history under ``root``; see the module docstring for layout and rules."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = artifact_path(root)
        self._local = is_local(self.root)
        # Without a lock two writers may pick the same version: their part names must differ
        # so that the refused one cannot overwrite a part the other committed.
        self._writer_tag = "" if self._local else f"-{secrets.token_hex(4)}"

    @property
    def _manifest_path(self) -> ArtifactPath:
        return self.root / MANIFEST

    def exists(self) -> bool:
        """Whether a committed manifest exists."""
        return self._manifest_path.is_file()

    @property
    def version(self) -> int:
        """The committed version; 0 when nothing is committed."""
        manifest = self.manifest()
        return int(manifest["version"]) if manifest else 0

    def manifest(self) -> dict[str, Any] | None:
        """The committed manifest, or None."""
        raw = self._manifest_bytes()
        return None if raw is None else self._parse_manifest(raw)

    def signature(self) -> dict[str, Any] | None:
        manifest = self.manifest()
        return None if manifest is None else manifest["signature"]

    def sources(self) -> dict[str, SourceRecord]:
        manifest = self.manifest() or {}
        return {
            key: SourceRecord.from_dict(value) for key, value in manifest.get("sources", {}).items()
        }

    def check_signature(self, signature: Mapping[str, Any]) -> None:
        """Raise ConfigurationError when a committed history has another signature."""
        self._check_signature(self.manifest(), _normalize_signature(signature))

    def read(self) -> pd.DataFrame:
        """The whole standardized history, sorted by (sku, date)."""
        for attempt in range(_READ_ATTEMPTS):
            manifest = self.manifest()
            if manifest is None:
                raise InsufficientDataError(
                    f"no sales history has been committed in {self.root} yet"
                )
            columns = list(manifest["columns"])
            try:
                # Text columns come dictionary-encoded: the distinct values once and an int32
                # code per row, instead of one string per row.
                tables = [
                    _read_table(
                        self.root / path,
                        columns=["date", "sku", "quantity", *columns],
                        read_dictionary=["sku", *columns],
                    )
                    for _, path in sorted(manifest["parts"].items())
                ]
            except FileNotFoundError:
                # A merge committed twice since the manifest was read and removed its parts.
                if attempt + 1 == _READ_ATTEMPTS or self.version == manifest["version"]:
                    raise
                continue
            return _to_frame(tables, columns)
        raise AssertionError("unreachable")  # pragma: no cover

    def merge(
        self,
        batches: Sequence[tuple[SourceRecord, pd.DataFrame]],
        signature: Mapping[str, Any],
    ) -> MergeResult:
        """Merge ``batches`` (applied in order, later ones win) and commit a new version."""
        wanted = _normalize_signature(signature)
        prepared = [(record, _flat_batch(record, frame)) for record, frame in batches]
        if not prepared:
            manifest = self.manifest()
            self._check_signature(manifest, wanted)
            rows = int(manifest["rows"]) if manifest else 0
            return MergeResult(self.version, rows, rows, 0, 0, 0, [])
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked():
            return self._merge_locked(prepared, wanted)

    # --- merging ---------------------------------------------------------------------------

    def _merge_locked(
        self, prepared: list[tuple[SourceRecord, pd.DataFrame]], signature: dict[str, Any]
    ) -> MergeResult:
        # Re-read under the lock: another process may have committed meanwhile.
        old_raw = self._manifest_bytes()
        old = None if old_raw is None else self._parse_manifest(old_raw)
        self._check_signature(old, signature)
        columns = list(old["columns"]) if old else _attributes(prepared[0][1])
        for record, flat in prepared:
            self._check_columns(record, flat, columns)

        version = (int(old["version"]) if old else 0) + 1
        parts: dict[str, str] = dict(old["parts"]) if old else {}
        part_rows: dict[str, int] = dict(old.get("part_rows", {})) if old else {}
        new = pd.concat([flat[["date", "sku", "quantity", *columns]] for _, flat in prepared])
        new = new.reset_index(drop=True)
        later = new.duplicated(_KEYS, keep="last")
        if later.any():
            new = new[~later]

        years = new["date"].dt.year.to_numpy()
        touched = [str(year) for year in np.unique(years)]
        before_skus: list[pa.Array] = []
        rows_new = rows_replaced = 0
        for year in touched:
            fresh = new[years == int(year)]
            stored = self._read_part(parts.get(year), columns)
            before_skus.append(pa.array(stored["sku"].unique(), type=pa.string()))
            combined = pd.concat([stored, fresh], ignore_index=True)
            combined = combined[~combined.duplicated(_KEYS, keep="last")]
            replaced = len(stored) + len(fresh) - len(combined)
            rows_replaced += replaced
            rows_new += len(fresh) - replaced
            path = f"{PARTS}/year={year}/v{version:06d}{self._writer_tag}.parquet"
            _write_part(_to_table(combined, columns).sort_by(_SORT), self.root / path)
            parts[year] = path
            part_rows[year] = len(combined)
        for year, path in parts.items():
            if year not in touched:
                table = _read_table(self.root / path, columns=["sku"])
                before_skus.append(pc.unique(table.column("sku")))

        known = pc.unique(pa.chunked_array(before_skus, type=pa.string()))
        incoming = pc.unique(pa.array(new["sku"].unique(), type=pa.string()))
        skus_new = len(incoming) - int(pc.sum(pc.is_in(incoming, value_set=known)).as_py() or 0)

        rows_before = int(old["rows"]) if old else 0
        dates = [d for d in (old["first_date"], old["last_date"]) if d] if old else []
        if len(new):
            dates += [new["date"].min().isoformat(), new["date"].max().isoformat()]
        stamps = sorted(pd.Timestamp(d) for d in dates)
        sources = dict(old["sources"]) if old else {}
        for record, flat in prepared:
            if record.rows == 0:
                record = replace(record, rows=len(flat))
            sources[record.source] = record.to_dict()
        manifest = {
            "format": FORMAT,
            "version": version,
            "signature": signature,
            "parts": dict(sorted(parts.items())),
            "part_rows": dict(sorted(part_rows.items())),
            "sources": sources,
            "columns": columns,
            "rows": rows_before + rows_new,
            "skus": len(known) + skus_new,
            "first_date": stamps[0].isoformat() if stamps else None,
            "last_date": stamps[-1].isoformat() if stamps else None,
            "committed_at": datetime.now(UTC).isoformat(),
        }
        self._commit(manifest, old_raw, old)
        self._collect_garbage()
        logger.info(
            "%s: committed version %d (%d new rows, %d replaced, years %s)",
            self.root,
            version,
            rows_new,
            rows_replaced,
            ", ".join(touched) or "none",
        )
        return MergeResult(
            version=version,
            rows_before=rows_before,
            rows_after=rows_before + rows_new,
            rows_new=rows_new,
            rows_replaced=rows_replaced,
            skus_new=skus_new,
            years_rewritten=touched,
        )

    def _commit(
        self, manifest: dict[str, Any], old_raw: bytes | None, old: dict[str, Any] | None
    ) -> None:
        data = (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode()
        if not self._local:
            self._check_unchanged(old)
        if old_raw is not None:
            atomic_write(self.root / PREVIOUS_MANIFEST, lambda tmp: _write_synced(tmp, old_raw))
        if not self._local:
            atomic_write(self._manifest_path, lambda tmp: tmp.write_bytes(data))
            return
        fd, name = tempfile.mkstemp(prefix=f".{MANIFEST}.", suffix=".tmp", dir=self.root)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            _publish_manifest(tmp, self._manifest_path)
        finally:
            tmp.unlink(missing_ok=True)

    def _check_unchanged(self, old: dict[str, Any] | None) -> None:
        """Without a lock, refuse to commit over a version another writer committed since
        this merge read the manifest."""
        now = self.manifest()
        seen = int(old["version"]) if old else 0
        if (int(now["version"]) if now else 0) != seen:
            raise ConfigurationError(
                f"the sales history in {self.root} was committed by another writer during this "
                f"merge (version {seen} became {now['version'] if now else 0}); only one "
                "history writer may run at a time. Nothing was committed; run the merge again."
            )

    def _collect_garbage(self) -> None:
        """Remove part files that neither manifest references, and leftover temp files."""
        keep: set[str] = set()
        try:
            # Both manifests are read before anything is deleted; a bad one stops the cleanup.
            for name in (MANIFEST, PREVIOUS_MANIFEST):
                path = self.root / name
                if path.is_file():
                    parts = self._parse_manifest(path.read_bytes())["parts"]
                    keep.update(self._identity(self.root / part) for part in parts.values())
            parts_dir = self.root / PARTS
            if parts_dir.is_dir():
                for file in parts_dir.rglob("*"):
                    if file.is_file() and self._identity(file) not in keep:
                        file.unlink(missing_ok=True)
                if self._local:  # object stores have no folders to remove
                    for folder in parts_dir.iterdir():
                        if folder.is_dir() and not any(folder.iterdir()):
                            folder.rmdir()
            for leftover in self.root.glob(".*.tmp"):
                leftover.unlink(missing_ok=True)
        except (OSError, DataValidationError) as exc:
            # The commit already succeeded; the next merge tries again.
            logger.warning("%s: could not remove old files (%s)", self.root, exc)

    def _identity(self, path: ArtifactPath) -> str:
        return str(path.resolve() if self._local else path)

    def _read_part(self, path: str | None, columns: list[str]) -> pd.DataFrame:
        if path is None:
            return _schema(columns).empty_table().to_pandas()
        return _read_table(self.root / path).to_pandas()

    # --- checks ----------------------------------------------------------------------------

    def _check_signature(self, manifest: dict[str, Any] | None, wanted: dict[str, Any]) -> None:
        if manifest is None or manifest["signature"] == wanted:
            return
        stored = manifest["signature"]
        differ = sorted(
            key
            for key in set(stored) | set(wanted)
            if stored.get(key, "<missing>") != wanted.get(key, "<missing>")
        )
        raise ConfigurationError(
            f"the sales history in {self.root} was built with other settings "
            f"(they differ in {', '.join(differ)}): stored signature "
            f"{json.dumps(stored, sort_keys=True)}, new signature "
            f"{json.dumps(wanted, sort_keys=True)}. Move or delete {self.root} (or use another "
            "output dir) to start a new history; nothing was changed."
        )

    def _check_columns(self, record: SourceRecord, flat: pd.DataFrame, columns: list[str]) -> None:
        have = _attributes(flat)
        extra = [name for name in have if name not in columns]
        missing = [name for name in columns if name not in have]
        if extra:
            raise DataValidationError(
                f"has attribute column(s) {extra} that the sales history in {self.root} does "
                f"not have (it has {columns}); every delivery must carry the same columns",
                source=record.source,
                column=extra[0],
                values=extra,
            )
        if missing:
            raise DataValidationError(
                f"lacks attribute column(s) {missing} that the sales history in {self.root} "
                f"has (it has {columns}); every delivery must carry the same columns",
                source=record.source,
                column=missing[0],
                values=missing,
            )

    # --- files -----------------------------------------------------------------------------

    def _manifest_bytes(self) -> bytes | None:
        try:
            return self._manifest_path.read_bytes()
        except FileNotFoundError:
            return None

    def _parse_manifest(self, raw: bytes) -> dict[str, Any]:
        try:
            manifest = json.loads(raw)
        except ValueError as exc:
            raise DataValidationError(
                f"is not a valid history manifest ({exc})", source=str(self._manifest_path)
            ) from exc
        return manifest

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if not self._local:
            yield  # see the module docstring: one writer at a time, checked before commit
            return
        # flock locks belong to the open file, so threads with their own handle serialize too.
        with open(self.root / LOCK, "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _publish_manifest(tmp: Path, target: Path) -> None:
    """The commit point: atomically replace ``target`` by the fsynced ``tmp``."""
    os.replace(tmp, target)
    _fsync_dir(target.parent)


def _read_table(
    path: ArtifactPath, columns: list[str] | None = None, read_dictionary: list[str] | None = None
) -> pa.Table:
    if is_local(path):
        return pq.read_table(path, columns=columns, read_dictionary=read_dictionary)
    with path.open("rb") as handle:
        return pq.read_table(handle, columns=columns, read_dictionary=read_dictionary)


def _write_part(table: pa.Table, target: ArtifactPath) -> None:
    """Write one immutable part file whole: locally via a temp file, fsynced before and after
    the rename; on an object store as one upload."""
    if not is_local(target):
        atomic_write(target, lambda tmp: pq.write_table(table, tmp))
        return
    target.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        pq.write_table(table, tmp)
        _fsync_file(tmp)

    atomic_write(target, write)
    _fsync_dir(target.parent)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _normalize_signature(signature: Mapping[str, Any]) -> dict[str, Any]:
    # A JSON round trip makes tuples lists, so that a stored signature compares equal.
    try:
        return json.loads(json.dumps(dict(signature), sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"history signature is not JSON-serializable ({exc})") from exc


def _attributes(flat: pd.DataFrame) -> list[str]:
    return [name for name in flat.columns if name not in ("date", "sku", "quantity")]


def _flat_batch(record: SourceRecord, frame: pd.DataFrame) -> pd.DataFrame:
    """One batch as plain columns with the store's dtypes; cheap checks of the standard form."""
    source = record.source
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex) or index.name != "date":
        raise DataValidationError(
            f"rows must have a DatetimeIndex named 'date' (got {type(index).__name__} "
            f"named {index.name!r})",
            source=source,
            column="date",
        )
    missing = [name for name in ("sku", "quantity") if name not in frame.columns]
    if missing:
        raise DataValidationError(
            f"missing column(s) {missing}; have {list(frame.columns)}",
            source=source,
            column=missing[0],
        )
    if index.tz is not None:
        index = index.tz_localize(None)
    try:
        quantity = frame["quantity"].to_numpy(dtype="float64")
    except (TypeError, ValueError) as exc:
        raise DataValidationError(
            f"quantities are not numbers ({exc})", source=source, column="quantity"
        ) from exc
    out = {
        "date": index.as_unit("ns").to_numpy(),
        "sku": _as_text(frame["sku"]),
        "quantity": quantity,
    }
    for name in frame.columns:
        if name not in out:
            out[name] = _as_text(frame[name])
    return pd.DataFrame(out)


def _as_text(values: pd.Series) -> np.ndarray:
    # Skip the per-value conversion when the column already holds only str.
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=False) == "string":
        return values.to_numpy()
    return values.astype(str).to_numpy(dtype=object)


def _schema(columns: list[str]) -> pa.Schema:
    return pa.schema(
        [
            ("date", pa.timestamp("ns")),
            ("sku", pa.string()),
            ("quantity", pa.float64()),
            *[(name, pa.string()) for name in columns],
        ]
    )


def _to_table(flat: pd.DataFrame, columns: list[str]) -> pa.Table:
    table = pa.Table.from_pandas(flat, schema=_schema(columns), preserve_index=False)
    # No pandas metadata: readers rebuild the frame from the fixed schema.
    return table.replace_schema_metadata(None)


def _to_frame(tables: list[pa.Table], columns: list[str]) -> pd.DataFrame:
    """Parts as one standardized frame, sorted by (sku, date); each SKU's attributes from its
    most recent row. Empties ``tables``, so that the parts can be freed on the way.

    Works on the dictionary codes and builds each column once: the text columns become object
    arrays whose rows share one str per distinct value, and neither a table of per-row strings
    nor a sorted copy of the whole table is made, so the peak stays near the result's size.
    """
    schema = _schema(columns)
    if not sum(table.num_rows for table in tables):
        frame = schema.empty_table().to_pandas()
        for name in ["sku", *columns]:
            frame[name] = frame[name].astype(object)
        return frame.set_index("date")
    table = pa.concat_tables([_coded_part(part, schema) for part in tables]).unify_dictionaries()
    tables.clear()
    n = table.num_rows
    dates = table.column("date").to_numpy()
    sku_codes, sku_values = _codes(table.column("sku"))
    rank = np.empty(len(sku_values), dtype=np.int32)
    rank[np.argsort(sku_values, kind="stable")] = np.arange(len(sku_values), dtype=np.int32)
    order = _sku_date_order(rank[sku_codes], dates)
    index = pd.DatetimeIndex(dates[order], name="date")
    quantity = table.column("quantity").to_numpy()[order]
    sorted_sku = sku_codes[order]
    del sku_codes, dates
    # Rows are sorted by (sku, date): the last row of each SKU run is its most recent one.
    last = np.append(np.flatnonzero(sorted_sku[1:] != sorted_sku[:-1]), n - 1)
    run_lengths = np.diff(last, prepend=-1)
    latest = {name: _codes(table.column(name), rows=order[last]) for name in columns}
    del table, order
    # Arrow's allocator keeps freed memory for reuse: hand it back before the text columns.
    pa.default_memory_pool().release_unused()
    out = {"sku": np.repeat(sku_values[sorted_sku[last]], run_lengths), "quantity": quantity}
    del sorted_sku
    for name, (codes, values) in latest.items():
        out[name] = np.repeat(values[codes], run_lengths)
    return pd.DataFrame(out, index=index, copy=False)


_TEXT = pa.dictionary(pa.int32(), pa.string())


def _coded_part(part: pa.Table, schema: pa.Schema) -> pa.Table:
    """One part file in ``schema``'s types, its text columns dictionary-encoded."""
    columns = {}
    for field in schema:
        column = part.column(field.name)
        if field.type != pa.string():
            columns[field.name] = column.cast(field.type)
        elif pa.types.is_dictionary(column.type):
            columns[field.name] = column.cast(_TEXT)
        else:
            columns[field.name] = pc.dictionary_encode(column.cast(pa.string()))
    return pa.table(columns)


def _codes(
    column: pa.ChunkedArray, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """int32 codes (of ``rows`` only, when given) into an object array of the distinct values
    of a dictionary column with one dictionary; a null reads as None."""
    values = column.chunk(0).dictionary.to_numpy(zero_copy_only=False)
    # One code per distinct string, even if the dictionary held a value twice.
    lookup, distinct = pd.factorize(values)
    lookup = lookup.astype(np.int32)
    distinct = np.asarray(distinct, dtype=object)
    indices = pa.chunked_array([chunk.indices for chunk in column.chunks], type=pa.int32())
    if column.null_count:
        lookup = np.append(lookup, np.int32(len(distinct)))
        indices = indices.fill_null(len(values))
        distinct = np.append(distinct, None)
    raw = indices.to_numpy()
    return lookup[raw if rows is None else raw[rows]], distinct


def _sku_date_order(sku_rank: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """Row order by (sku, date). Parts are written sorted by (sku, date) and read in year
    order, so a stable sort by SKU (fast on such sorted runs) usually orders the dates as
    well; that is checked, and both keys are sorted otherwise."""
    order = np.argsort(sku_rank, kind="stable")
    ranks, stamps = sku_rank[order], dates[order]
    unordered = (ranks[1:] == ranks[:-1]) & (stamps[1:] < stamps[:-1])
    del ranks, stamps
    return np.lexsort((dates, sku_rank)) if unordered.any() else order
