"""The one Definitions object of the code location."""

from datetime import timedelta

import dagster as dg

from forecast_assets.assets.clustering import clusters, metafeatures
from forecast_assets.assets.forecasts import forecasts
from forecast_assets.assets.ingest import landing_files_accepted, raw_sales, resampled_series
from forecast_assets.assets.per_cluster import (
    cluster_model,
    encoded_features,
    evaluation_report,
    forecast_table,
    scalers,
)
from forecast_assets.assets.reports import evaluation_summary
from forecast_assets.assets.tuning import tuned_hyperparameters
from forecast_assets.checks import CHECKS
from forecast_assets.jobs import (
    build_refresh_job,
    build_train_job,
    build_tune_job,
    forecasts_job,
    ingest_job,
    sales_ingest_job,
)
from forecast_assets.resources import build_resources
from forecast_assets.schedules import build_nightly_retrain
from forecast_assets.sensors import build_sensors
from forecast_assets.settings import load_settings

ASSETS = [
    raw_sales,
    resampled_series,
    metafeatures,
    clusters,
    scalers,
    tuned_hyperparameters,
    encoded_features,
    cluster_model,
    evaluation_report,
    forecast_table,
    forecasts,
    evaluation_summary,
]


def build_definitions(settings_file: str | None = None) -> dg.Definitions:
    """Definitions for a settings file (None: $FORECAST_SETTINGS, else the packaged default).

    Building the resources reads and validates the settings, so invalid settings stop the
    code location from loading, with the offending field named, before any run starts.
    """
    settings = load_settings(settings_file)
    resources = build_resources(settings_file, settings)
    jobs = {
        "ingest_job": ingest_job,
        "sales_ingest_job": sales_ingest_job,
        "train_job": build_train_job(settings.gpu),
        "tune_job": build_tune_job(settings.gpu),
        "refresh_job": build_refresh_job(settings.gpu),
        "forecasts_job": forecasts_job,
    }
    return dg.Definitions(
        assets=with_freshness_policy(ASSETS, settings.automation.forecast_max_age_hours),
        asset_checks=[*CHECKS, landing_files_accepted],
        jobs=list(jobs.values()),
        schedules=[build_nightly_retrain(settings.automation, ingest_job)],
        sensors=build_sensors(settings, jobs),
        resources=resources,
        # A run's steps are a chain (one cluster, or the shared assets before clustering), so
        # a process per step buys no parallelism and costs an import of torch and dagster per
        # step. Pools still hold in process: a step waits there for its slot.
        executor=dg.in_process_executor,
    )


def with_freshness_policy(assets: list, max_age_hours: float) -> list:
    """``assets`` with the published table's freshness policy: the daemon marks ``forecasts``
    failing its freshness (asset health, in the UI) once the newest publication is older than
    ``automation.forecast_max_age_hours``."""
    policy = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=max_age_hours))
    return dg.map_asset_specs(
        lambda spec: (
            spec.replace_attributes(freshness_policy=policy) if spec.key == forecasts.key else spec
        ),
        assets,
    )


defs = build_definitions()
