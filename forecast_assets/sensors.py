"""Sensors: what starts runs without anyone clicking (the README's "What runs when").

- new_sales_sensor: new or changed files in ``data.landing_dir`` -> sales_ingest_job.
- refresh_after_new_sales: the history got new rows from landing files -> one backfill of
  refresh_job's assets over every trained cluster (current models, no training).
- retrain_after_clustering: ingest_job succeeded (nightly or by hand) -> one backfill of
  train_job's assets over every cluster, since a new clustering needs new models.
- publish_forecasts: cluster forecasts changed and no training or refresh is pending ->
  forecasts_job (the combined table and the evaluation summary).
- report_run_failures: any failed run -> one line (job, partition, error) in the log, in
  ``<output.dir>/run_failures.log`` and, when set, to ``automation.failure_webhook_url``.

The chaining sensors keep no state of their own beyond a cursor: they read the instance's
materializations, runs and backfills, and their run keys (backfill keys for the backfills)
make a repeated tick request nothing twice.

Per-cluster work goes out as one asset backfill per tick, not one run per cluster: a tick
that created 100 runs took 14-60 s and held every other sensor of the daemon meanwhile. The
backfill daemon then creates one run per cluster, each carrying the backfill's tags, which
are the job's tags: the run queue's GPU limit applies to them as to the job's own runs.

Why sensors and not automation conditions on the assets: each chain starts from which job
succeeded, not from which asset changed. Training follows ingest_job's clustering but not a
clustering materialized by hand; a refresh follows new rows from landing files, while the
nightly ingest updates the same assets and retrains instead. Asset conditions see the same
updates in both cases and cannot tell them apart. Freshness, which is about the asset alone,
is the asset's own freshness policy (definitions.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

# The type of a backfill request's target: what Dagster's own automation sensor builds for
# its backfills (RunRequest.for_asset_graph_subset); 1.13 has no public constructor for it.
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus

from forecast_assets.core.data.landing import scan_landing
from forecast_assets.core.errors import DataValidationError
from forecast_assets.core.storage import append_line
from forecast_assets.jobs import CLUSTER_ASSETS, REFRESH_ASSETS
from forecast_assets.partitions import CLUSTER_PARTITIONS_NAME, cluster_partitions
from forecast_assets.settings import Settings

logger = logging.getLogger("forecast_assets.alerts")

PARTITION_TAG = "dagster/partition"
LANDING_FILES_TAG = "forecast_assets/landing_files"
# A backfill's runs belong to Dagster's implicit asset job; this tag names the job whose
# assets and tags they carry, for the pending-run checks and the failure reports.
JOB_TAG = "forecast_assets/job"
# What makes a backfill request unique (the run key of a backfill): a repeated tick finds it.
BACKFILL_KEY_TAG = "forecast_assets/backfill_key"
# Runs whose outcome the chaining sensors wait for before they start the next step.
UPSTREAM_JOBS = ("ingest_job", "sales_ingest_job", "train_job", "refresh_job")
PENDING_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
# A backfill in these states may still create runs.
PENDING_BACKFILL_STATUSES = [BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING]


def build_sensors(settings: Settings, jobs: dict[str, object]) -> list[dg.SensorDefinition]:
    """Every sensor of the code location, with intervals and status from ``settings``."""
    automation = settings.automation
    status = (
        dg.DefaultSensorStatus.RUNNING if automation.enabled else dg.DefaultSensorStatus.STOPPED
    )
    return [
        _new_sales_sensor(settings, jobs["sales_ingest_job"], status),
        _refresh_sensor(settings, jobs["refresh_job"], status),
        _retrain_sensor(settings, jobs["train_job"], status),
        _publish_sensor(settings, jobs["forecasts_job"], status),
        _failure_sensor(settings, status),
    ]


def _new_sales_sensor(settings: Settings, job, status) -> dg.SensorDefinition:
    automation = settings.automation
    folder = Path(settings.data.landing_dir)

    @dg.sensor(
        name="new_sales_sensor",
        job=job,
        minimum_interval_seconds=automation.landing_interval_seconds,
        default_status=status,
        description=f"Starts sales_ingest_job for new or changed files in {folder} once they "
        "stop changing; never reads a file itself.",
    )
    def new_sales_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        try:
            scan = scan_landing(
                folder,
                context.cursor,
                time.time(),
                automation.settle_seconds,
                limit=automation.max_files_per_run,
            )
        except DataValidationError as exc:
            return dg.SkipReason(str(exc))
        waiting = f"; {len(scan.waiting)} still changing" if scan.waiting else ""
        if not scan.ready:
            return dg.SensorResult(
                skip_reason=f"{scan.files_seen} file(s) in {folder}, none new{waiting}",
                cursor=scan.cursor,
            )
        keys = "\n".join(file.key for file in scan.ready)
        request = dg.RunRequest(
            run_key=hashlib.sha256(keys.encode()).hexdigest()[:32],
            run_config={
                "ops": {
                    "raw_sales": {
                        "config": {"landing_files": [file.to_dict() for file in scan.ready]}
                    }
                }
            },
            tags={LANDING_FILES_TAG: _shorten(", ".join(f.name for f in scan.ready))},
        )
        context.log.info(f"{len(scan.ready)} landing file(s) to ingest{waiting}")
        return dg.SensorResult(run_requests=[request], cursor=scan.cursor)

    return new_sales_sensor


def _refresh_sensor(settings: Settings, job, status) -> dg.SensorDefinition:
    @dg.sensor(
        name="refresh_after_new_sales",
        asset_selection=dg.AssetSelection.assets(*REFRESH_ASSETS),  # needed for a backfill
        minimum_interval_seconds=settings.automation.chain_interval_seconds,
        default_status=status,
        description="After sales_ingest_job added rows to the history: one backfill of "
        "refresh_job's assets, with its tags, over every cluster that has a model (features "
        "and forecast again, no training; one run per cluster).",
    )
    def refresh_after_new_sales(
        context: dg.SensorEvaluationContext,
    ) -> dg.SensorResult | dg.SkipReason:
        instance = context.instance
        sales = instance.get_latest_materialization_event(dg.AssetKey("raw_sales"))
        if sales is None:
            return dg.SkipReason("no sales history yet")
        version = str(sales.asset_materialization.metadata["history_version"].value)
        if version == context.cursor:
            return dg.SkipReason(f"history version {version} is already forecast")
        pending = _pending_runs(instance)
        if pending:
            return dg.SkipReason(f"waiting for {len(pending)} run(s) or backfill(s): {pending[:5]}")
        source = instance.get_run_by_id(sales.run_id)
        if source is None or source.job_name != "sales_ingest_job":
            # The nightly ingest re-clusters; retrain_after_clustering forecasts after it.
            return dg.SensorResult(
                skip_reason=f"history version {version} came from "
                f"{source.job_name if source else 'an unknown run'}; training forecasts it",
                cursor=version,
            )
        resampled = instance.get_latest_materialization_event(dg.AssetKey("resampled_series"))
        if resampled is None or resampled.run_id != sales.run_id:
            return dg.SensorResult(
                skip_reason=f"run {sales.run_id} did not resample the history", cursor=version
            )
        trained = instance.get_materialized_partitions(dg.AssetKey("cluster_model"))
        clusters = [
            key
            for key in instance.get_dynamic_partitions(CLUSTER_PARTITIONS_NAME)
            if key in trained
        ]
        if not clusters:
            return dg.SensorResult(skip_reason="no cluster has a model yet", cursor=version)
        key = f"refresh-v{version}"
        if _backfill_exists(instance, key):
            return dg.SensorResult(skip_reason=f"backfill {key} was requested", cursor=version)
        request = cluster_backfill(job, REFRESH_ASSETS, clusters, key)
        context.log.info(f"one backfill of refresh_job's assets for {len(clusters)} cluster(s)")
        return dg.SensorResult(run_requests=[request], cursor=version)

    return refresh_after_new_sales


def _retrain_sensor(settings: Settings, train_job, status) -> dg.SensorDefinition:
    # A plain sensor rather than a run-status sensor: only a sensor with an asset_selection
    # may request a backfill. The cursor is the storage id of the last clustering handled.
    @dg.sensor(
        name="retrain_after_clustering",
        asset_selection=dg.AssetSelection.assets(*CLUSTER_ASSETS),
        minimum_interval_seconds=settings.automation.chain_interval_seconds,
        default_status=status,
        description="After ingest_job (the nightly schedule, or by hand) succeeded: one "
        "backfill of train_job's assets, with its tags, over every cluster of the new "
        "clustering; one run per cluster, queued one GPU run at a time.",
    )
    def retrain_after_clustering(
        context: dg.SensorEvaluationContext,
    ) -> dg.SensorResult | dg.SkipReason:
        instance = context.instance
        clustered = _latest_storage_id(instance, "clusters")
        if clustered is None:
            return dg.SensorResult(skip_reason="no clustering yet", cursor="0")
        cursor = context.cursor
        if cursor is None or not cursor.isdigit():
            # First tick on an instance that has clusterings (or the cursor of the former
            # run-status sensor): a clustering that models were trained on since is done.
            trained = _latest_storage_id(instance, "cluster_model")
            if trained is not None and trained > clustered:
                return dg.SensorResult(skip_reason="trained since", cursor=str(clustered))
        elif int(cursor) >= clustered:
            return dg.SkipReason("the latest clustering is trained")
        event = instance.get_latest_materialization_event(dg.AssetKey("clusters"))
        run = instance.get_run_by_id(event.run_id) if event else None
        if run is not None and run.job_name == "ingest_job" and not run.is_finished:
            return dg.SkipReason(f"waiting for ingest run {run.run_id} to finish")
        if run is None or run.job_name != "ingest_job" or not run.is_success:
            return dg.SensorResult(
                skip_reason="the latest clustering is not from a successful ingest_job run",
                cursor=str(clustered),
            )
        clusters = instance.get_dynamic_partitions(CLUSTER_PARTITIONS_NAME)
        if not clusters:
            return dg.SensorResult(
                skip_reason=f"ingest run {run.run_id} registered no cluster", cursor=str(clustered)
            )
        key = f"retrain-{run.run_id}"
        if _backfill_exists(instance, key):
            return dg.SensorResult(
                skip_reason=f"backfill {key} was requested", cursor=str(clustered)
            )
        request = cluster_backfill(train_job, CLUSTER_ASSETS, clusters, key)
        context.log.info(f"one backfill of train_job's assets for {len(clusters)} cluster(s)")
        return dg.SensorResult(run_requests=[request], cursor=str(clustered))

    return retrain_after_clustering


def _publish_sensor(settings: Settings, job, status) -> dg.SensorDefinition:
    @dg.sensor(
        name="publish_forecasts",
        job=job,
        minimum_interval_seconds=settings.automation.chain_interval_seconds,
        default_status=status,
        description="When cluster forecasts changed and no training or refresh run is "
        "pending: forecasts_job, which publishes the combined table.",
    )
    def publish_forecasts(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        instance = context.instance
        latest = _latest_storage_id(instance, "forecast_table")
        if latest is None:
            return dg.SkipReason("no cluster forecast yet")
        if context.cursor and int(context.cursor) >= latest:
            return dg.SkipReason("the latest cluster forecasts are published")
        published = _latest_storage_id(instance, "forecasts")
        if published is not None and published > latest:
            return dg.SensorResult(
                skip_reason="published since the latest cluster forecast", cursor=str(latest)
            )
        pending = _pending_runs(instance)
        if pending:
            return dg.SkipReason(f"waiting for {len(pending)} run(s) or backfill(s): {pending[:5]}")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"publish-{latest}")], cursor=str(latest)
        )

    return publish_forecasts


def _failure_sensor(settings: Settings, status) -> dg.SensorDefinition:
    webhook = settings.automation.failure_webhook_url
    log_file = settings.output.location / "run_failures.log"

    @dg.run_failure_sensor(
        name="report_run_failures",
        default_status=status,
        description="Writes one line per failed run (job, partition, error) to the log and to "
        "run_failures.log in the output folder, and posts it to the webhook when one is set.",
    )
    def report_run_failures(context: dg.RunFailureSensorContext) -> None:
        report = failure_report(context)
        context.log.error(report["text"])
        logger.error(report["text"])
        append_line(log_file, report["text"])
        if webhook:
            post_webhook(webhook, report)

    return report_run_failures


def failure_report(context: dg.RunFailureSensorContext) -> dict[str, str | None]:
    """What a person needs to act on a failed run, as one line and as fields."""
    run = context.dagster_run
    partition = run.tags.get(PARTITION_TAG)
    job = run.tags.get(JOB_TAG) or run.job_name  # a backfill's run: the job it stands for
    errors = []
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error
        message = error.message.strip() if error else event.message or "failed"
        errors.append(f"{event.step_key}: {message}")
    error = " | ".join(errors) or (context.failure_event.message or "run failed")
    error = " ".join(error.split())  # one line, whatever the exception printed
    where = f" partition {partition}" if partition else ""
    text = f"run {run.run_id} of {job}{where} failed: {error}"
    return {
        "text": text,
        "job": job,
        "partition": partition,
        "run_id": run.run_id,
        "error": error,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def post_webhook(url: str, report: dict[str, str | None], timeout: float = 10) -> bool:
    """POST ``report`` as JSON; a webhook that fails is logged, never raised."""
    request = urllib.request.Request(
        url,
        data=json.dumps(report).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return 200 <= response.status < 300
    except OSError as exc:
        logger.warning("failure webhook %s did not take the report: %s", url, exc)
        return False


def cluster_backfill(job, assets: list[str], clusters: list[str], key: str) -> dg.RunRequest:
    """One backfill request: ``assets`` for every cluster in ``clusters``, with the job's tags
    (the GPU tag, the pod's GPU limit), which the backfill daemon puts on each of its runs."""
    partitions = cluster_partitions.empty_subset().with_partition_keys(clusters)
    target = AssetGraphSubset(
        partitions_subsets_by_asset_key={dg.AssetKey(asset): partitions for asset in assets}
    )
    tags = {**job.tags, JOB_TAG: job.name, BACKFILL_KEY_TAG: key}
    return dg.RunRequest.for_asset_graph_subset(target, tags=tags)


def _backfill_exists(instance: dg.DagsterInstance, key: str) -> bool:
    return bool(
        instance.get_backfills(filters=BulkActionsFilter(tags={BACKFILL_KEY_TAG: key}), limit=1)
    )


def _pending_runs(instance: dg.DagsterInstance) -> list[str]:
    """Runs of the upstream jobs (their own, or a backfill's on their behalf) and backfills
    that may still create such runs."""
    records = instance.get_run_records(dg.RunsFilter(statuses=PENDING_STATUSES), limit=500)
    runs = [record.dagster_run for record in records]
    pending = [f"{_job_of(run)} {run.run_id[:8]}" for run in runs if _job_of(run) in UPSTREAM_JOBS]
    backfills = instance.get_backfills(
        filters=BulkActionsFilter(statuses=PENDING_BACKFILL_STATUSES), limit=100
    )
    pending += [
        f"backfill {backfill.backfill_id} ({backfill.tags[JOB_TAG]})"
        for backfill in backfills
        if backfill.tags.get(JOB_TAG) in UPSTREAM_JOBS
    ]
    return pending


def _job_of(run: dg.DagsterRun) -> str:
    return run.tags.get(JOB_TAG) or run.job_name


def _latest_storage_id(instance: dg.DagsterInstance, asset: str) -> int | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset)), limit=1
    ).records
    return records[0].storage_id if records else None


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
