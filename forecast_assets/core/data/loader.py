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
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from forecast_assets.core.errors import DataValidationError

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
# How many offending values an error message quotes before it says "and N more".
_QUOTED_VALUES = 5


@dataclass(frozen=True)
class ColumnSpec:
    """Which input columns hold what, and the rules for questionable rows."""

    date_column: str = "date"
    sku_columns: Sequence[str] = ("sku",)
    quantity_column: str = "quantity"
    categorical_columns: Sequence[str] = ()
    multilabel_columns: Sequence[str] = ()
    sku_separator: str = "-"
    duplicates: Literal["sum", "mean", "max", "last", "error"] = "sum"
    negative_quantities: Literal["error", "clip", "keep"] = "error"
    attribute_columns: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        names = [*self.categorical_columns, *self.multilabel_columns]
        object.__setattr__(self, "attribute_columns", tuple(dict.fromkeys(names)))

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


def load_sales(path: str | Path, spec: ColumnSpec) -> pd.DataFrame:
    """Read every file under ``path`` and return the standardized, validated sales frame."""
    return load_sales_files(discover_files(path), spec)


def load_sales_files(files: Sequence[Path], spec: ColumnSpec) -> pd.DataFrame:
    """Standardized, validated sales of ``files``; a later file wins for a shared (sku, date)."""
    frames = []
    for order, file in enumerate(files):
        frame = standardize_sales(read_sales_file(file, spec), spec, source=str(file))
        frames.append(frame.assign(_file_order=order))
    return _merge_files(frames)


def read_sales_file(file: Path, spec: ColumnSpec) -> pd.DataFrame:
    """Read the needed columns of one file as text/numbers, checking that they are all there."""
    source = str(file)
    try:
        available = _column_names(file)
    except Exception as exc:  # any reader failure means the file is unusable
        raise DataValidationError(f"cannot be read ({exc})", source=source) from exc
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
        return pd.read_csv(file, usecols=spec.required_columns, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise DataValidationError(f"cannot be read ({exc})", source=source) from exc


def standardize_sales(frame: pd.DataFrame, spec: ColumnSpec, source: str) -> pd.DataFrame:
    """Validate one source's rows and bring them to the standardized one-row-per-(sku, date) form.

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
    quantity = _parse_quantities(frame[spec.quantity_column], source, spec)
    sku = _sku_keys(frame, spec, source)
    out = pd.DataFrame({"date": dates, "sku": sku, "quantity": quantity})
    for name in spec.attribute_columns:
        out[name] = _text(frame[name]).to_numpy()
    return _aggregate_duplicates(out, spec, source)


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


def _parse_dates(values: pd.Series, source: str, column: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        text = _text(values).str.strip()
        # One inferred format parses fast; only the leftovers pay for per-value parsing.
        parsed = pd.to_datetime(text, errors="coerce")
        retry = parsed.isna() & text.ne("")
        if retry.any():
            parsed[retry] = pd.to_datetime(text[retry], errors="coerce", format="mixed")
    bad = parsed.isna()
    if bad.any():
        _raise_bad_values(values, bad, source, column, "is not a parseable date")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    return parsed.astype("datetime64[ns]").reset_index(drop=True)


def _parse_quantities(values: pd.Series, source: str, spec: ColumnSpec) -> pd.Series:
    column = spec.quantity_column
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        parsed = values.astype("float64")
    else:
        parsed = pd.to_numeric(_text(values).str.strip(), errors="coerce")
    bad = parsed.isna() | ~np.isfinite(parsed.to_numpy(dtype="float64", na_value=np.nan))
    if bad.any():
        _raise_bad_values(values, bad, source, column, "is not a number")
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


def _sku_keys(frame: pd.DataFrame, spec: ColumnSpec, source: str) -> pd.Series:
    parts = []
    for name in spec.sku_columns:
        text = _text(frame[name]).str.strip()
        empty = text.eq("")
        if empty.any():
            _raise_bad_values(frame[name], empty, source, name, "is an empty SKU key")
        parts.append(text)
    key = parts[0]
    for part in parts[1:]:
        key = key + spec.sku_separator + part
    return key.reset_index(drop=True)


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


def _column_names(file: Path) -> list[str]:
    if _is_parquet(file):
        return list(pq.read_schema(file).names)
    return list(pd.read_csv(file, nrows=0).columns)


def _is_parquet(file: Path) -> bool:
    return file.name.lower().endswith((".parquet", ".pq"))


def _is_supported(file: Path) -> bool:
    return file.name.lower().endswith(SUPPORTED_SUFFIXES)
