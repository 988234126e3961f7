"""Unpartitioned ingest: raw sales in, a regular panel of demand series out."""

import dataclasses
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from forecast_assets.core.data.generator import generate_sales
from forecast_assets.core.data.history import HistoryStore
from forecast_assets.core.data.ingest import (
    history_signature,
    ingest_landing_files,
    seed_history,
    sync_source_files,
)
from forecast_assets.core.data.landing import LandingFile
from forecast_assets.core.data.loader import ColumnSpec, discover_files, standardize_sales
from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.data.resample import resample_sales
from forecast_assets.frames import SALES_FRAME
from forecast_assets.resources import ForecastSettingsResource, OutputStore
from forecast_assets.settings import Settings

EXAMPLE_SOURCE = "<embedded example data>"
LANDING_CHECK = "landing_files_accepted"


class LandingFileConfig(dg.Config):
    """A landing file as new_sales_sensor saw it (its size and modification time)."""

    name: str
    size: int
    mtime_ns: int


class RawSalesConfig(dg.Config):
    landing_files: list[LandingFileConfig] = Field(
        default=[],
        description="files in data.landing_dir to merge into the history (new_sales_sensor "
        "fills this in); empty = only bring the configured data.path up to date",
    )


@dg.asset(
    group_name="ingest",
    kinds={"pandas", "parquet"},
    pool="forecast_assets_history",  # concurrency.HISTORY_POOL: one history writer at a time
    dagster_type=SALES_FRAME.dagster_type,
    metadata=SALES_FRAME.metadata,
)
def raw_sales(
    context: dg.AssetExecutionContext,
    config: RawSalesConfig,
    settings: ForecastSettingsResource,
    output_store: OutputStore,
) -> pd.DataFrame:
    """The sales history in long format, validated and standardized: DatetimeIndex ``date``,
    columns ``sku``, ``quantity`` and the configured attributes; one row per (sku, date).

    Kept in ``<output.dir>/history``. Each run merges the configured source files that are new
    or changed and the landing files it is given; bad landing files go to quarantine."""
    loaded = settings.load()
    spec = loaded.data.column_spec()
    store = HistoryStore(output_store.history_dir)
    source = loaded.data.path or _example_source(loaded)
    signature = history_signature(spec, source)
    if loaded.data.path:
        merge = sync_source_files(store, discover_files(loaded.data.path), spec, signature)
    else:
        merge = seed_history(store, EXAMPLE_SOURCE, lambda: _example(loaded, spec), signature)
    outcome = ingest_landing_files(
        store,
        Path(loaded.data.landing_dir),
        loaded.data.quarantine_path,
        [LandingFile(f.name, f.size, f.mtime_ns) for f in config.landing_files],
        spec,
        signature,
        run_id=context.run.run_id,
    )
    sales = store.read()
    context.add_output_metadata(
        {
            "rows": len(sales),
            "skus": int(sales["sku"].nunique()),
            "first_date": str(sales.index.min().date()),
            "last_date": str(sales.index.max().date()),
            "history_version": store.version,
            "history_path": dg.MetadataValue.path(str(store.root)),
            "source_merged": merge is not None,
            "landing_merged": dg.MetadataValue.json(outcome.merged),
            "landing_skipped": dg.MetadataValue.json(outcome.skipped),
            "landing_refused": dg.MetadataValue.json(
                [dataclasses.asdict(refused) for refused in outcome.refused]
            ),
            "preview": dg.MetadataValue.md(sales.head(10).to_markdown()),
        }
    )
    return sales


@dg.asset_check(asset=raw_sales, name=LANDING_CHECK)
def landing_files_accepted(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """Every landing file of the run was merged. A refused file fails the run with its reason
    (it is in quarantine, or left in place when it was still being written); the other files
    of the run are merged all the same, and the history keeps everything it had."""
    event = context.instance.get_latest_materialization_event(dg.AssetKey("raw_sales"))
    ours = event is not None and event.run_id == context.run.run_id
    metadata = event.asset_materialization.metadata if ours else {}
    refused = metadata["landing_refused"].value if "landing_refused" in metadata else []
    if refused:
        lines = [_refusal_line(item) for item in refused]
        raise dg.Failure(
            description=f"{len(refused)} landing file(s) refused: " + " | ".join(lines),
            metadata={"refused": dg.MetadataValue.json(refused)},
        )
    merged = metadata["landing_merged"].value if "landing_merged" in metadata else []
    return dg.AssetCheckResult(
        passed=True,
        description=f"{len(merged)} landing file(s) merged, none refused",
        metadata={"merged": dg.MetadataValue.json(merged)},
    )


def _refusal_line(refused: dict) -> str:
    where = (
        f"moved to {refused['quarantined_to']}"
        if refused["quarantined_to"]
        else "left in the landing folder, retried once it stops changing"
        if refused["retry"]
        else "nothing moved"
    )
    return f"{refused['name']}: {refused['reason']} ({where})"


def _example_source(settings: Settings) -> str:
    example = settings.data.example
    return (
        f"{EXAMPLE_SOURCE} {example.n_skus} SKUs x {example.periods} days from "
        f"{example.start}, seed {settings.seed}"
    )


def _example(settings: Settings, spec: ColumnSpec) -> pd.DataFrame:
    example = settings.data.example
    generated = generate_sales(example.n_skus, example.periods, example.start, seed=settings.seed)
    return standardize_sales(generated, spec, source=EXAMPLE_SOURCE)


@dg.asset(group_name="ingest")
def resampled_series(
    context: dg.AssetExecutionContext, settings: ForecastSettingsResource, raw_sales: pd.DataFrame
) -> SalesPanel:
    """Demand per SKU on a regular grid of ``timeseries.freq``: gaps are zero demand. Every
    SKU with a sale row is kept, however short its history or however small its demand,
    so that every SKU is forecast (``timeseries.min_history`` only decides which SKUs the
    neural models train on)."""
    config = settings.load()
    result = resample_sales(
        raw_sales,
        config.timeseries.freq,
        attribute_columns=config.data.column_spec().attribute_columns,
        drop_zero=False,
    )
    panel = result.panel
    context.add_output_metadata(
        {
            "skus": panel.n_skus,
            "periods": panel.n_periods,
            "freq": panel.freq,
            "first_period": str(panel.dates[0].date()),
            "last_period": str(panel.dates[-1].date()),
            "dropped_skus": len(result.dropped_short) + len(result.dropped_zero),
            "dropped_short_history": len(result.dropped_short),
            "dropped_no_demand": len(result.dropped_zero),
            "dropped_partial_last_period": str(result.dropped_partial_period.date())
            if result.dropped_partial_period is not None
            else "none",
            "zero_share": float((panel.values == 0).sum() / (~pd.isna(panel.values)).sum()),
        }
    )
    return panel
