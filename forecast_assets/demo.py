"""``make demo``: materialize the whole graph, every cluster partition included, into the
Dagster instance at $DAGSTER_HOME, then print where the forecasts are and how good they are.

Runs go through Dagster (``execute_in_process`` against the persistent instance), so the UI
shows every materialization afterwards.
"""

import sys
import time

import dagster as dg
import numpy as np
import pandas as pd

from forecast_assets.definitions import defs
from forecast_assets.partitions import CLUSTER_PARTITIONS_NAME
from forecast_assets.resources import OutputStore


def run_graph(definitions: dg.Definitions, instance: dg.DagsterInstance) -> list[str]:
    """Ingest and cluster, train and forecast each cluster, publish; returns the cluster keys.

    Exits with status 1 on the first failed run, after printing its error."""
    _run(definitions, "ingest_job", instance)
    keys = sorted(instance.get_dynamic_partitions(CLUSTER_PARTITIONS_NAME))
    for key in keys:
        _run(definitions, "train_job", instance, partition_key=key)
    _run(definitions, "forecasts_job", instance)
    return keys


def _run(
    definitions: dg.Definitions,
    job_name: str,
    instance: dg.DagsterInstance,
    partition_key: str | None = None,
) -> None:
    started = time.perf_counter()
    result = definitions.resolve_job_def(job_name).execute_in_process(
        instance=instance, partition_key=partition_key, raise_on_error=False
    )
    label = f"{job_name}[{partition_key}]" if partition_key else job_name
    if not result.success:
        failure = next((e for e in result.all_events if e.is_failure), None)
        message = failure.message if failure is not None else "see the run in the UI"
        print(f"{label} failed (run {result.run_id}): {message}", file=sys.stderr)
        raise SystemExit(1)
    print(f"{label}: ok in {time.perf_counter() - started:.1f}s (run {result.run_id})")


def summary(instance: dg.DagsterInstance, keys: list[str]) -> str:
    forecasts = defs.load_asset_value("forecasts", instance=instance)
    per_cluster = defs.load_asset_value("evaluation_summary", instance=instance)
    output_store: OutputStore = defs.resources["output_store"]
    lines = [
        "",
        f"Forecast table: {output_store.base_dir}/forecasts.parquet (and .csv)",
        f"  {forecasts['sku'].nunique()} SKUs x {forecasts['date'].nunique()} periods "
        f"({forecasts['date'].min():%Y-%m-%d} .. {forecasts['date'].max():%Y-%m-%d}), "
        f"{len(keys)} clusters",
        f"Reports: {output_store.base_dir}/reports/ (evaluation_summary.md for all clusters)",
        *_pool_lines(per_cluster),
        "",
        "The neural model of each cluster alone, rolling-origin backtest, means over folds; "
        "seasonal naive on the same windows:",
        f"{'cluster':<12}{'model':<16}{'SKUs':>6}{'MASE':>8}{'naive':>8}{'RMSSE':>8}"
        f"{'naive':>8}{'coverage':>10}  served",
    ]
    for row in per_cluster.itertuples():
        lines.append(
            f"{row.cluster:<12}{row.model:<16}{row.skus:>6}{row.mase:>8.3f}"
            f"{row.mase_seasonal_naive:>8.3f}{row.rmsse:>8.3f}{row.rmsse_seasonal_naive:>8.3f}"
            f"{row.coverage:>10.1%}  {row.served}"
        )
    weights = per_cluster["skus"]
    overall = np.average(per_cluster["mase"], weights=weights)
    naive = np.average(per_cluster["mase_seasonal_naive"], weights=weights)
    lines.append(
        f"All SKUs: MASE {overall:.3f} vs seasonal naive {naive:.3f} "
        f"({'better' if overall < naive else 'worse'} by {abs(1 - overall / naive):.1%})"
    )
    return "\n".join(lines)


def _pool_lines(per_cluster: pd.DataFrame) -> list[str]:
    """What serves each cluster, SKU by SKU: the pool's figures on its scoring fold."""
    if "pool_mase" not in per_cluster:
        return []
    lines = [
        "",
        "What serves (the pool's choice per SKU) on the last backtest fold, which took no part "
        "in the choice:",
        f"{'cluster':<12}{'SKUs':>6}{'MASE':>8}{'RMSSE':>8}{'coverage':>10}  served by",
    ]
    for row in per_cluster.itertuples():
        lines.append(
            f"{row.cluster:<12}{row.skus:>6}{row.pool_mase:>8.3f}{row.pool_rmsse:>8.3f}"
            f"{row.pool_coverage:>10.1%}  {row.pool_mix}"
        )
    return lines


def main() -> None:
    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        keys = run_graph(defs, instance)
        print(summary(instance, keys))
    print(f"\nWhole graph in {time.perf_counter() - started:.0f}s. Open the UI with `make dev`.")


if __name__ == "__main__":
    main()
