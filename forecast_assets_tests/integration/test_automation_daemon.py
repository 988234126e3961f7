"""Runs on its own: a real `dagster dev` (webserver + daemon) trains after a clustering run and
publishes, then forecasts again when a sales file lands, with nobody submitting those runs.

Training and refresh go through one backfill each (sensor daemon, then backfill daemon): the
runs of the backfill must cover every cluster, carry the GPU tag and never overlap."""

import itertools
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from forecast_assets.concurrency import GPU_TAG_KEY
from forecast_assets.core.data.history import HistoryStore
from forecast_assets.sensors import JOB_TAG
from forecast_assets_tests.integration.test_daemon import running_dagster_dev

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.daemon]


def wait_until(condition: Callable[[], bool], timeout: float, what: str, log: Path) -> float:
    """Seconds until ``condition()`` holds; fails with the server log's tail after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what} did not happen in {timeout:.0f}s:\n{log.read_text()[-4000:]}")
        time.sleep(1)
    return time.monotonic() - started


def runs_for(instance: dg.DagsterInstance, job: str) -> list[dg.DagsterRun]:
    """The runs that did ``job``'s work: a sensor's backfill runs them in the asset job."""
    return instance.get_runs(dg.RunsFilter(tags={JOB_TAG: job}))


def assert_one_backfill_of_gpu_runs(instance: dg.DagsterInstance, runs, clusters) -> None:
    assert sorted(run.tags["dagster/partition"] for run in runs) == sorted(clusters)
    assert len({run.tags["dagster/backfill"] for run in runs}) == 1
    assert all(run.tags[GPU_TAG_KEY] == "true" for run in runs)
    records = sorted(
        (instance.get_run_record_by_id(run.run_id) for run in runs), key=lambda r: r.start_time
    )
    for first, second in itertools.pairwise(records):
        assert second.start_time >= first.end_time, "two GPU runs ran at the same time"


def forecast_start(table: Path) -> pd.Timestamp | None:
    try:
        return pd.read_parquet(table, columns=["date"])["date"].min()
    except (FileNotFoundError, OSError, ValueError):
        return None


def test_clustering_retrains_and_publishes_and_a_landed_file_refreshes_the_forecast(
    tmp_path: Path, write_settings
) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    settings = write_settings(
        {
            "data": {"landing_dir": str(landing)},
            "automation": {
                "landing_interval_seconds": 2,
                "chain_interval_seconds": 2,
                "settle_seconds": 1,
            },
        }
    )
    output = tmp_path / "output"
    table = output / "forecasts.parquet"
    log = tmp_path / "dagster_dev.log"

    with running_dagster_dev(tmp_path, settings) as (client, instance):
        # What the nightly schedule does at 02:00: one ingest_job run. Training and
        # publishing follow from the sensors alone.
        client.submit_job_execution("ingest_job")
        trained = wait_until(lambda: table.exists(), 900, "retrain and publish", log)
        first_start = forecast_start(table)
        clusters = instance.get_dynamic_partitions("clusters")
        assert len(clusters) > 1  # several runs, so the GPU limit has something to order
        train_runs = runs_for(instance, "train_job")
        assert_one_backfill_of_gpu_runs(instance, train_runs, clusters)
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in train_runs)

        # A week of sales lands; the forecast moves to start after it.
        history = HistoryStore(output / "history").read()
        latest = history.reset_index().groupby("sku").last()
        days = pd.date_range(history.index.max() + pd.Timedelta(days=1), periods=7, freq="D")
        week = pd.DataFrame(
            [
                {
                    "date": day.date(),
                    "sku": sku,
                    "quantity": 4.0,
                    **row[["store", "category", "tags"]],
                }
                for sku, row in latest.iterrows()
                for day in days
            ]
        )
        staged = tmp_path / "staged.csv"
        week.to_csv(staged, index=False)
        landed_at = time.monotonic()
        staged.rename(landing / "sales_week.csv")  # appears whole, as uploads should
        expected = days[-1] + pd.Timedelta(days=1)
        wait_until(lambda: forecast_start(table) == expected, 600, "forecast refresh", log)
        latency = time.monotonic() - landed_at

        # The refresh reused the models: still one training run per cluster.
        assert len(runs_for(instance, "train_job")) == len(clusters)
        refresh_runs = runs_for(instance, "refresh_job")
        assert_one_backfill_of_gpu_runs(instance, refresh_runs, clusters)
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in refresh_runs)
        assert first_start < expected
    print(
        f"\nretrain and publish after ingest_job: {trained:.0f}s; file landed -> forecast table "
        f"updated: {latency:.0f}s"
    )
