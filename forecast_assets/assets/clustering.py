"""Metafeatures and clusters; ``clusters`` keeps the cluster partitions in step."""

import dagster as dg
import pandas as pd

from forecast_assets.core.clustering import ClusterResult, cluster_skus, compute_metafeatures
from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.plots import k_selection_plot, markdown_image
from forecast_assets.partitions import CLUSTER_PARTITIONS_NAME
from forecast_assets.resources import ForecastSettingsResource, OutputStore


@dg.asset(group_name="clustering", kinds={"pandas"})
def metafeatures(
    context: dg.AssetExecutionContext,
    settings: ForecastSettingsResource,
    resampled_series: SalesPanel,
) -> pd.DataFrame:
    """Per-SKU demand shape: level, variability, intermittency, trend, seasonality and
    autocorrelation."""
    season = settings.load().timeseries.season
    features = compute_metafeatures(resampled_series, season)
    context.add_output_metadata(
        {
            "skus": len(features),
            "season_length": season,
            "summary": dg.MetadataValue.md(features.describe().T.round(3).to_markdown()),
        }
    )
    return features


@dg.asset(group_name="clustering", kinds={"scikitlearn"})
def clusters(
    context: dg.AssetExecutionContext,
    settings: ForecastSettingsResource,
    output_store: OutputStore,
    metafeatures: pd.DataFrame,
) -> ClusterResult:
    """SKUs grouped by demand shape (k-means, k by elbow and Davies-Bouldin). Registers one
    partition per cluster and removes partitions of clusters that no longer exist."""
    config = settings.load()
    result = cluster_skus(
        metafeatures,
        config.clustering.k_min,
        config.clustering.k_max,
        config.clustering.min_cluster_size,
        config.seed,
    )
    added, removed = sync_cluster_partitions(context.instance, result.keys)
    plot = k_selection_plot(result)
    output_store.write_report(
        "clusters",
        f"# Clustering\n\nChosen k = {result.k} (elbow at {result.elbow_k}).\n\n{{k_selection}}\n",
        {"k_selection": plot},
    )
    context.add_output_metadata(
        {
            "k": result.k,
            "elbow_k": result.elbow_k,
            "cluster_sizes": dg.MetadataValue.json(result.sizes),
            "davies_bouldin": dg.MetadataValue.json(
                {str(k): round(v, 4) for k, v in result.davies_bouldin.items()}
            ),
            "partitions_added": dg.MetadataValue.json(added),
            "partitions_removed": dg.MetadataValue.json(removed),
            "k_selection_plot": dg.MetadataValue.md(
                markdown_image(plot, "elbow and Davies-Bouldin")
            ),
        }
    )
    return result


def sync_cluster_partitions(
    instance: dg.DagsterInstance, keys: list[str]
) -> tuple[list[str], list[str]]:
    """Make the cluster partitions exactly ``keys``; returns (added, removed)."""
    existing = set(instance.get_dynamic_partitions(CLUSTER_PARTITIONS_NAME))
    added = [key for key in keys if key not in existing]
    removed = sorted(existing - set(keys))
    if added:
        instance.add_dynamic_partitions(CLUSTER_PARTITIONS_NAME, added)
    for key in removed:
        instance.delete_dynamic_partition(CLUSTER_PARTITIONS_NAME, key)
    return added, removed
