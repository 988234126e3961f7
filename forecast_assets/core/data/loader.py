"""Load long-format sales files (CSV, gzip CSV, Parquet) into one validated, standardized frame.

Standardized frame (the ``raw_sales`` contract): a DatetimeIndex named ``date``; columns
``sku`` (str), ``quantity`` (float64) and the configured categorical / multi-label columns under
their own names. One row per (sku, date).

Aggregation rules, applied before the uniqueness check:
- inside one file, several rows for the same (sku, date) are combined by ``duplicates``
  (default ``sum``: several transactions on one day add up; ``error`` rejects the file);
- across files, a (sku, date) present in several files is taken from the last file in name
  order (a later delivery corrects an earlier one);
- categorical attributes of a SKU are taken from its most recent row.

Refused outright (DataValidationError): empty (0-byte) files, unsupported suffixes, CSV text that
does not decode with ``encoding``, a date column mixing several formats (a guessed day/month
order would silently swap days and months), quantities above ``max_quantity`` and dates more
than ``max_future_days`` after today.
"""

from __future__ import annotations

import codecs
import glob
import gzip
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from pandas.tseries.api import guess_datetime_format
from pydantic import Field, field_validator, model_validator

from forecast_assets.core.config import CoreConfig
from forecast_assets.core.errors import DataValidationError

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
# How many offending values an error message quotes before it says "and N more".
_QUOTED_VALUES = 5


# Names the loader gives its own columns; an attribute column of one of these names would
# silently replace them.
STANDARD_COLUMNS = ("sku", "quantity", "date")


class ColumnSpec(CoreConfig):
    """Which input columns hold what, and the rules for questionable rows (the ``data``
    section of the settings extends this class)."""

    section_name: ClassVar[str] = "data"

    date_column: str = Field("date", description="column holding the sale's date")
    sku_columns: tuple[str, ...] = Field(
        ("sku",), min_length=1, description="one or several key columns"
    )
    sku_separator: str = Field("-", description="joins several key columns into one SKU id")
    quantity_column: str = Field("quantity", description="column holding the quantity sold")
    categorical_columns: tuple[str, ...] = Field((), description="static SKU attributes, one-hot")
    multilabel_columns: tuple[str, ...] = Field((), description="attributes holding several labels")
    encoding: str = Field("utf-8", description="text encoding of CSV files")
    max_quantity: float | None = Field(
        1e9, gt=0, description="files holding a larger quantity are refused; empty = no limit"
    )
    max_future_days: int | None = Field(
        7,
        ge=0,
        description="files with rows dated more than this many days after today are refused; "
        "empty = no limit",
    )
    duplicates: Literal["sum", "mean", "max", "last", "error"] = Field(
        "sum", description="rule for several rows of one (sku, date) in one file"
    )
    negative_quantities: Literal["error", "clip", "keep"] = Field(
        "error", description="error: reject the file; clip: count them as zero; keep: as is"
    )

    @field_validator("sku_columns", "categorical_columns", "multilabel_columns", mode="before")
    @classmethod
    def _one_name_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"'{value}' is not a known text encoding") from None
        return value

    @model_validator(mode="after")
    def _attributes_keep_their_names(self) -> Self:
        for name in self.attribute_columns:
            if name in STANDARD_COLUMNS:
                raise ValueError(
                    f"attribute column '{name}' has the name of a standard column "
                    f"({', '.join(sorted(STANDARD_COLUMNS))}); rename it in the data"
                )
        overlap = set(self.categorical_columns) & set(self.multilabel_columns)
        if overlap:
            raise ValueError(f"columns {sorted(overlap)} are both categorical and multilabel")
        return self

    @property
    def attribute_columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.categorical_columns, *self.multilabel_columns]))

    @property
    def required_columns(self) -> list[str]:
        names = [self.date_column, *self.sku_columns, self.quantity_column, *self.attribute_columns]
        return list(dict.fromkeys(names))


def discover_files(path: str | Path) -> list[Path]:
    """Expand a file, a folder or a glob into the sales files it names, sorted by name."""
    text = str(path)
    candidate = Path(text)
    if candidate.is_dir():
        files = [p for p in candidate.iterdir() if p.is_file() and _is_supported(p)]
    elif candidate.is_file():
        files = [candidate]
    else:
        files = [Path(p) for p in glob.glob(text) if Path(p).is_file() and _is_supported(Path(p))]
    if not files:
        raise DataValidationError(
            f"no sales files (one of {', '.join(SUPPORTED_SUFFIXES)}) found", source=text
        )
    # Name order decides which delivery wins; the full path only breaks ties across folders.
    return sorted(files, key=lambda file: (file.name, str(file)))


def load_sales(
    path: str | Path, spec: ColumnSpec, *, today: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Read every file under ``path`` and return the standardized, validated sales frame.

    ``today`` is the reference day of ``spec.max_future_days`` (None: the current local day).
    """
    return load_sales_files(discover_files(path), spec, today=today)


def load_sales_files(
    files: Sequence[Path], spec: ColumnSpec, *, today: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Standardized, validated sales of ``files``; a later file wins for a shared (sku, date)."""
    # One reference day for every file, even if the load runs past midnight.
    today = _today(today)
    frames = []
    for order, file in enumerate(files):
        raw = read_sales_file(file, spec)
        frame = standardize_sales(raw, spec, source=str(file), today=today)
        frames.append(frame.assign(_file_order=order))
    return _merge_files(frames)


def read_sales_file(file: Path, spec: ColumnSpec) -> pd.DataFrame:
    """Read the needed columns of one file as text/numbers, checking that they are all there."""
    source = str(file)
    if not _is_supported(file):
        raise DataValidationError(
            f"is not a supported sales file; use one of {', '.join(SUPPORTED_SUFFIXES)}",
            source=source,
        )
    try:
        size = file.stat().st_size
    except OSError as exc:
        raise DataValidationError(f"cannot be read ({exc})", source=source) from exc
    # pandas and pyarrow report an empty file with cryptic messages; say it plainly.
    if size == 0:
        raise DataValidationError("is empty (0 bytes)", source=source)
    try:
        available = _column_names(file, spec.encoding)
    except Exception as exc:  # any reader failure means the file is unusable
        raise _read_error(file, spec.encoding, exc) from exc
    missing = [name for name in spec.required_columns if name not in available]
    if missing:
        raise DataValidationError(
            f"missing column(s) {missing}; the file has {list(available)}",
            source=source,
            column=missing[0],
            values=missing,
        )
    try:
        if _is_parquet(file):
            return pd.read_parquet(file, columns=spec.required_columns)
        # Everything as text first so that bad values can be reported instead of guessed at.
        return pd.read_csv(
            file,
            usecols=spec.required_columns,
            dtype=str,
            keep_default_na=False,
            encoding=spec.encoding,
        )
    except Exception as exc:
        raise _read_error(file, spec.encoding, exc) from exc


def standardize_sales(
    frame: pd.DataFrame, spec: ColumnSpec, source: str, *, today: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Validate one source's rows and bring them to the standardized one-row-per-(sku, date) form.

    ``today`` is the reference day of ``spec.max_future_days`` (None: the current local day).
    Raises DataValidationError naming ``source``, the column and offending values.
    """
    missing = [name for name in spec.required_columns if name not in frame.columns]
    if missing:
        raise DataValidationError(
            f"missing column(s) {missing}; have {list(frame.columns)}",
            source=source,
            column=missing[0],
        )
    if frame.empty:
        raise DataValidationError("holds no rows", source=source)

    dates = _parse_dates(frame[spec.date_column], source, spec.date_column)
    if spec.max_future_days is not None:
        _check_future_dates(frame[spec.date_column], dates, source, spec, _today(today))
    quantity = _parse_quantities(frame[spec.quantity_column], source, spec)
    sku = _sku_keys(frame, spec, source)
    attributes = {name: _coded_text(frame[name]) for name in spec.attribute_columns}
    return _standard_frame(dates.to_numpy(), sku, quantity.to_numpy(), attributes, spec, source)


def _standard_frame(
    dates: np.ndarray,
    sku: tuple[np.ndarray, np.ndarray],
    quantity: np.ndarray,
    attributes: dict[str, tuple[np.ndarray, np.ndarray]],
    spec: ColumnSpec,
    source: str,
) -> pd.DataFrame:
    """The standardized frame from parsed columns, text columns as (codes, distinct values).

    Without duplicated (sku, date) pairs (the usual case) the frame is built in one go, rows
    in stable date order, and the text columns share one str object per distinct value; no
    intermediate frame is copied, which keeps the peak near the size of the result.
    """
    sku_codes, sku_names = sku
    date_codes, unique_dates = pd.factorize(dates)
    if _has_duplicates(sku_codes, len(sku_names), date_codes, len(unique_dates)):
        out = pd.DataFrame({"date": dates, "sku": sku_names[sku_codes], "quantity": quantity})
        for name, (codes, names) in attributes.items():
            out[name] = names[codes]
        return _aggregate_duplicates(out, spec, source)
    # A stable sort of the date ranks orders rows as sort_values("date", kind="stable") does;
    # small integer ranks sort in linear time.
    rank_type = np.uint16 if len(unique_dates) <= np.iinfo(np.uint16).max else np.int64
    rank = np.empty(len(unique_dates), dtype=rank_type)
    rank[np.argsort(unique_dates, kind="stable")] = np.arange(len(unique_dates), dtype=rank_type)
    order = np.argsort(rank[date_codes], kind="stable")
    del date_codes
    columns = {"sku": sku_names[sku_codes[order]], "quantity": quantity[order]}
    for name, (codes, names) in attributes.items():
        columns[name] = names[codes[order]]
    index = pd.DatetimeIndex(dates[order], name="date")
    return pd.DataFrame(columns, index=index, copy=False)


def _aggregate_duplicates(frame: pd.DataFrame, spec: ColumnSpec, source: str) -> pd.DataFrame:
    keys = ["sku", "date"]
    columns = ["sku", "quantity", *spec.attribute_columns]
    duplicated = frame.duplicated(keys, keep=False)
    if duplicated.any() and spec.duplicates == "error":
        pairs = frame.loc[duplicated, keys].drop_duplicates()
        quoted = [
            f"({sku}, {date:%Y-%m-%d})" for sku, date in pairs.head(_QUOTED_VALUES).to_numpy()
        ]
        raise DataValidationError(
            f"{len(pairs)} (sku, date) pair(s) appear more than once, e.g. {', '.join(quoted)}; "
            "set data.duplicates to sum, mean, max or last to combine them",
            source=source,
            column=spec.date_column,
            values=quoted,
        )
    frame = frame.sort_values("date", kind="stable")
    if not duplicated.any():
        return frame.set_index("date")[columns]
    logger.info("%s: combining %d duplicated rows by %s", source, duplicated.sum(), spec.duplicates)
    aggregations = {
        "quantity": spec.duplicates,
        **{name: "last" for name in spec.attribute_columns},
    }
    combined = frame.groupby(keys, sort=False, as_index=False).agg(aggregations)
    return combined.set_index("date")[columns]


def _merge_files(frames: list[pd.DataFrame]) -> pd.DataFrame:
    combined = pd.concat(frames).reset_index()
    # Later files win for a (sku, date) they share with earlier ones.
    combined = combined.sort_values(["_file_order"], kind="stable")
    combined = combined.drop_duplicates(["sku", "date"], keep="last")
    combined = combined.drop(columns="_file_order").sort_values(["sku", "date"], kind="stable")
    # A SKU's attributes are those of its most recent row.
    attributes = [c for c in combined.columns if c not in ("date", "sku", "quantity")]
    if attributes:
        latest = combined.groupby("sku")[attributes].transform("last")
        combined[attributes] = latest
    combined["sku"] = combined["sku"].astype(str)
    return combined.set_index("date")


def _today(today: pd.Timestamp | None) -> pd.Timestamp:
    if today is None:
        return pd.Timestamp.now().normalize()
    today = pd.Timestamp(today)
    # Dates in the frame are naive wall-clock days, so compare with today's wall-clock day.
    return (today.tz_localize(None) if today.tzinfo is not None else today).normalize()


def _check_future_dates(
    values: pd.Series, dates: pd.Series, source: str, spec: ColumnSpec, today: pd.Timestamp
) -> None:
    days = spec.max_future_days
    assert days is not None
    beyond = dates > today + pd.Timedelta(days=days)
    if beyond.any():
        _raise_bad_values(
            values,
            beyond,
            source,
            spec.date_column,
            f"is more than {days} days after today ({today:%Y-%m-%d})",
        )


def _parse_dates(values: pd.Series, source: str, column: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        parsed = _parse_date_text(values, source, column)
    bad = parsed.isna()
    if bad.any():
        _raise_bad_values(values, bad, source, column, "is not a parseable date")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    return parsed.astype("datetime64[ns]").reset_index(drop=True)


def _parse_date_text(values: pd.Series, source: str, column: str) -> pd.Series:
    """Parse text dates with the one format of the first value; refuse values in other formats.

    A first value such as 05/01/2024 reads month first or day first: the reading that parses
    more of the column wins (month first on a tie, as pandas guesses).
    """
    text = _text(values).str.strip()
    filled = text.ne("").to_numpy()
    if not filled.any():
        return pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    first_row = int(filled.argmax())
    first = text.iloc[first_row]
    formats = _guess_formats(first)
    if not formats:
        # Nothing to hold the other values to: parse each value on its own, as before.
        return pd.to_datetime(text, errors="coerce", format="mixed")
    best: tuple[str, pd.Series, np.ndarray] | None = None
    for fmt in formats:
        # ISO 8601 is unambiguous, so its variants (with or without a time) may mix freely.
        exact = "ISO8601" if fmt.startswith("%Y-%m-%d") else fmt
        parsed = pd.to_datetime(text, errors="coerce", format=exact)
        failed = parsed.isna().to_numpy() & filled
        if best is None or failed.sum() < best[2].sum():
            best = (fmt, parsed, failed)
        if not failed.any():
            break
    assert best is not None
    fmt, parsed, failed = best
    if failed.any():
        # Only the leftovers pay for per-value parsing, to tell other formats from garbage.
        elsewhere = pd.to_datetime(text[failed], errors="coerce", format="mixed").notna()
        unparseable = parsed.isna().to_numpy().copy()
        unparseable[np.flatnonzero(failed)[elsewhere.to_numpy()]] = False
        if unparseable.any():
            _raise_bad_values(values, unparseable, source, column, "is not a parseable date")
        _raise_bad_values(
            values,
            failed,
            source,
            column,
            f"uses a different date format than row {first_row + 1} ({first!r}, {fmt})",
        )
    return parsed


def _guess_formats(value: str) -> list[str]:
    """The strptime formats ``value`` may be written in: month first, then day first."""
    with warnings.catch_warnings():
        # pandas warns when a value only parses day first; that is what is being asked here.
        warnings.simplefilter("ignore", UserWarning)
        month_first = guess_datetime_format(value)
        day_first = guess_datetime_format(value, dayfirst=True)
    if month_first is not None and month_first.startswith("%Y"):
        # Year first is read in ISO order (year, month, day); year-day-month is not offered.
        return [month_first]
    formats = [fmt for fmt in (month_first, day_first) if fmt is not None]
    return list(dict.fromkeys(formats))


def _parse_quantities(values: pd.Series, source: str, spec: ColumnSpec) -> pd.Series:
    column = spec.quantity_column
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        parsed = values.astype("float64")
    else:
        parsed = pd.to_numeric(_text(values).str.strip(), errors="coerce")
    bad = parsed.isna() | ~np.isfinite(parsed.to_numpy(dtype="float64", na_value=np.nan))
    if bad.any():
        _raise_bad_values(values, bad, source, column, "is not a number")
    if spec.max_quantity is not None:
        # Checked on the absolute value before clipping: a huge return is a typo too.
        too_large = parsed.abs() > spec.max_quantity
        if too_large.any():
            limit = _format_number(spec.max_quantity)
            _raise_bad_values(
                values, too_large, source, column, f"exceeds data.max_quantity ({limit})"
            )
    negative = parsed < 0
    if negative.any():
        if spec.negative_quantities == "error":
            _raise_bad_values(
                values,
                negative,
                source,
                column,
                "is negative (set data.negative_quantities to clip or keep to accept returns)",
            )
        if spec.negative_quantities == "clip":
            logger.info("%s: %d negative quantities counted as zero", source, negative.sum())
            parsed = parsed.clip(lower=0)
    return parsed.astype("float64").reset_index(drop=True)


def _has_duplicates(
    sku_codes: np.ndarray, n_skus: int, date_codes: np.ndarray, n_dates: int
) -> bool:
    """Whether a (sku, date) pair occurs twice. A bitmap of the pairs is much faster than
    hashing them when it is small (dense daily data); sparse data hashes."""
    key = sku_codes.astype(np.int64) * n_dates + date_codes
    if n_skus * n_dates <= 8 * len(key):
        seen = np.zeros(n_skus * n_dates, dtype=bool)
        seen[key] = True
        return int(np.count_nonzero(seen)) < len(key)
    return bool(pd.Series(key, copy=False).duplicated().any())


def _sku_keys(frame: pd.DataFrame, spec: ColumnSpec, source: str) -> tuple[np.ndarray, np.ndarray]:
    """The SKU key of each row as (codes, distinct keys): the stripped text of the key
    columns joined by ``sku_separator``."""
    key: tuple[np.ndarray, np.ndarray] | None = None
    for name in spec.sku_columns:
        codes, names = _coded_text(frame[name], strip=True)
        empty = names == ""
        if empty.any() and empty[codes].any():
            _raise_bad_values(frame[name], empty[codes], source, name, "is an empty SKU key")
        if key is None:
            key = (codes, names)
            continue
        # Joined on the distinct pairs only; pairs that join to the same text share a code.
        pair_codes, pairs = pd.factorize(key[0].astype(np.int64) * len(names) + codes)
        joined = key[1][pairs // len(names)] + spec.sku_separator + names[pairs % len(names)]
        merged, distinct = pd.factorize(joined)
        key = (merged[pair_codes], distinct.astype(object))
    assert key is not None
    return key


def _coded_text(values: pd.Series, strip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``_text(values)`` (stripped when asked) as codes into an object array of distinct str.

    Categorical and all-str columns are converted once per distinct value instead of once
    per row, and the rows then share one str object per value: far less memory and time
    on long extracts with few SKUs and attribute values.
    """
    if isinstance(values.dtype, pd.CategoricalDtype) and not pd.api.types.is_float_dtype(
        values.cat.categories
    ):
        codes = values.cat.codes.to_numpy()
        distinct = pd.Series(values.cat.categories.to_numpy(), dtype=object)
    elif values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) == "string":
        codes, uniques = pd.factorize(values.to_numpy())
        distinct = pd.Series(uniques, dtype=object)
    else:  # numbers, mixed objects: per row as before
        codes, uniques = pd.factorize(_text(values).to_numpy())
        distinct = pd.Series(uniques, dtype=object)
    # A missing value (code -1) reads as "", like _text's fillna("").
    text = _text(pd.concat([distinct, pd.Series([""], dtype=object)], ignore_index=True))
    if strip:
        text = text.str.strip()
    codes = np.where(codes < 0, len(distinct), codes)
    # Values that differ only before the conversion ("a " and "a") get one code.
    merged, names = pd.factorize(text.to_numpy())
    return merged.astype(np.int32)[codes], np.asarray(names, dtype=object)


def _text(values: pd.Series) -> pd.Series:
    """Values as strings; whole floats such as 1.0 (from Parquet) read as '1'."""
    if pd.api.types.is_float_dtype(values):
        whole = values.dropna()
        if (whole == whole.round()).all():
            return values.map(lambda v: "" if pd.isna(v) else str(int(v)))
    return values.astype("string").fillna("").astype(str)


def _raise_bad_values(
    values: pd.Series, bad: pd.Series | np.ndarray, source: str, column: str, problem: str
) -> None:
    mask = np.asarray(bad, dtype=bool)
    rows = np.flatnonzero(mask)
    shown = values.to_numpy()[rows[:_QUOTED_VALUES]]
    quoted = ", ".join(
        f"row {row + 1} ({value!r})" for row, value in zip(rows, shown, strict=False)
    )
    more = f" and {len(rows) - _QUOTED_VALUES} more" if len(rows) > _QUOTED_VALUES else ""
    raise DataValidationError(
        f"{len(rows)} value(s) {problem}: {quoted}{more} (rows count data lines from 1)",
        source=source,
        column=column,
        values=list(shown),
    )


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _column_names(file: Path, encoding: str) -> list[str]:
    if _is_parquet(file):
        return list(pq.read_schema(file).names)
    return list(pd.read_csv(file, nrows=0, encoding=encoding).columns)


def _read_error(file: Path, encoding: str, exc: Exception) -> DataValidationError:
    """The DataValidationError for a reader failure; decoding failures say how to fix them."""
    if not isinstance(exc, UnicodeDecodeError):
        return DataValidationError(f"cannot be read ({exc})", source=str(file))
    return DataValidationError(
        f"is not valid {encoding} text ({_decode_failure(file, encoding, exc)}); "
        f"save it as {encoding} or set data.encoding",
        source=str(file),
    )


def _decode_failure(file: Path, encoding: str, exc: UnicodeDecodeError) -> str:
    """Where decoding fails, counted in the (uncompressed) file; pandas only knows its buffer."""
    bad = exc.object[exc.start : exc.end]
    fallback = f"{exc.reason}: byte(s) 0x{bad.hex()}"
    compressed = file.name.lower().endswith(".gz")
    where = " of the uncompressed text" if compressed else ""
    # Counting newline bytes only gives line numbers where "\n" is one byte (not UTF-16/32).
    count_lines = "\n".encode(encoding) == b"\n"
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    lines = 1
    try:
        with (gzip.open if compressed else open)(file, "rb") as handle:
            while chunk := handle.read(1 << 20):
                # Bytes an earlier chunk left undecoded come first in the error's data.
                pending = len(decoder.getstate()[0])
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as found:
                    data = found.object
                    at = offset - pending + found.start
                    lines += data.count(b"\n", pending, max(found.start, pending))
                    line = f", line {lines}" if count_lines else ""
                    bad = data[found.start : found.end]
                    return f"{found.reason}: byte(s) 0x{bad.hex()} at byte {at}{where}{line}"
                lines += chunk.count(b"\n")
                offset += len(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as found:
        return f"{found.reason} at the end of the file (byte {offset})"
    except Exception:  # the position is a courtesy; the reader's own message will do
        return fallback
    return fallback


def _is_parquet(file: Path) -> bool:
    return file.name.lower().endswith((".parquet", ".pq"))


def _is_supported(file: Path) -> bool:
    return file.name.lower().endswith(SUPPORTED_SUFFIXES)
