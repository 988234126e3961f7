"""Jobs: ingest and cluster, train and forecast one cluster, publish the combined table."""

import json

import dagster as dg

from forecast_assets.concurrency import GPU_RUN_TAGS, HISTORY_RUN_TAGS
from forecast_assets.settings import GpuSettings

INGEST_ASSETS = ["raw_sales", "resampled_series", "metafeatures", "clusters"]
CLUSTER_ASSETS = [
    "scalers",
    "tuned_hyperparameters",
    "encoded_features",
    "cluster_model",
    "evaluation_report",
    "forecast_table",
]

# Refreshing a forecast reuses the served models: the features are rebuilt on the new history.
REFRESH_ASSETS = ["encoded_features", "forecast_table"]

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets(*INGEST_ASSETS),
    tags=HISTORY_RUN_TAGS,
    description="Bring the sales history up to date, resample, compute metafeatures and "
    "(re)cluster SKUs. After it succeeds, retrain_after_clustering trains every cluster.",
)

sales_ingest_job = dg.define_asset_job(
    "sales_ingest_job",
    selection=dg.AssetSelection.assets("raw_sales", "resampled_series"),
    tags=HISTORY_RUN_TAGS,
    description="Merge new landing files into the sales history and resample it (started by "
    "new_sales_sensor; refused files go to quarantine and fail the run with the reason).",
)

K8S_CONFIG_TAG = "dagster-k8s/config"


def gpu_run_tags(gpu: GpuSettings) -> dict[str, str]:
    """Tags of a GPU run: the run-queue tag, and for Dagster's Kubernetes run launcher the
    pod's GPU limit, node selector and tolerations (ignored by other launchers)."""
    pod = {
        "container_config": {"resources": {"limits": {"nvidia.com/gpu": str(gpu.gpus_per_run)}}},
        "pod_spec_config": {"node_selector": gpu.node_selector, "tolerations": gpu.tolerations},
    }
    return {**GPU_RUN_TAGS, K8S_CONFIG_TAG: json.dumps(pod, sort_keys=True)}


def build_tune_job(gpu: GpuSettings):
    return dg.define_asset_job(
        "tune_job",
        selection=dg.AssetSelection.assets("scalers", "tuned_hyperparameters"),
        tags=gpu_run_tags(gpu),
        config={"ops": {"tuned_hyperparameters": {"config": {"tune": True}}}},
        description="For one cluster partition: fit the scalers and run the Optuna study's "
        "remaining trials (whether or not tuning.enabled is on); train_job uses the best.",
    )


def build_train_job(gpu: GpuSettings):
    return dg.define_asset_job(
        "train_job",
        selection=dg.AssetSelection.assets(*CLUSTER_ASSETS),
        tags=gpu_run_tags(gpu),
        description="For one cluster partition: scalers, features, model, evaluation and forecast.",
    )


def build_refresh_job(gpu: GpuSettings):
    return dg.define_asset_job(
        "refresh_job",
        selection=dg.AssetSelection.assets(*REFRESH_ASSETS),
        tags=gpu_run_tags(gpu),
        description="For one cluster partition: rebuild the features on the current history "
        "and forecast again with the served model (no training).",
    )


forecasts_job = dg.define_asset_job(
    "forecasts_job",
    selection=dg.AssetSelection.assets("forecasts", "evaluation_summary"),
    description="Combine every cluster's forecast into the published forecast table, and "
    "every cluster's backtest into the evaluation summary.",
)
