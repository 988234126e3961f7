"""The nightly retraining schedule."""

import dagster as dg

from forecast_assets.settings import AutomationSettings

TRIGGER_TAG = "forecast_assets/trigger"


def build_nightly_retrain(automation: AutomationSettings, ingest_job) -> dg.ScheduleDefinition:
    """``ingest_job`` at ``automation.retrain_cron``: the history is brought up to date and the
    SKUs are clustered again; retrain_after_clustering then requests one backfill of
    train_job's assets (one run per cluster), and publish_forecasts publishes once it is
    done."""
    return dg.ScheduleDefinition(
        name="nightly_retrain",
        job=ingest_job,
        cron_schedule=automation.retrain_cron,
        execution_timezone=automation.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING
        if automation.enabled
        else dg.DefaultScheduleStatus.STOPPED,
        tags={TRIGGER_TAG: "nightly_retrain"},
        description="Re-cluster, then retrain and re-forecast every cluster (one backfill, one "
        "GPU-tagged run per cluster), then publish the forecast table.",
    )
