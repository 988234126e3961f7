"""Sensors, schedule and failure reports, evaluated against a real temporary instance."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import dagster as dg
import pytest
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.test_utils import create_run_for_test

from forecast_assets.concurrency import GPU_TAG_KEY
from forecast_assets.definitions import build_definitions
from forecast_assets.jobs import CLUSTER_ASSETS, K8S_CONFIG_TAG, REFRESH_ASSETS
from forecast_assets.partitions import CLUSTER_PARTITIONS_NAME
from forecast_assets.sensors import JOB_TAG, cluster_backfill
from forecast_assets_tests.conftest import backfill_target, tick

LANDED = "date,sku,quantity,store,category,tags\n2024-11-20,a,3,north,snacks,\n"


@pytest.fixture
def automation(write_settings, tmp_path: Path):
    """Definitions whose landing folder is in tmp_path; returns (defs, landing folder)."""

    def build(**automation_settings):
        landing = tmp_path / "landing"
        landing.mkdir(exist_ok=True)
        settings = {
            "data": {"landing_dir": str(landing)},
            "automation": {"settle_seconds": 0, **automation_settings},
        }
        return build_definitions(str(write_settings(settings))), landing

    return build


def landing_files(request: dg.RunRequest) -> list[dict]:
    return request.run_config["ops"]["raw_sales"]["config"]["landing_files"]


def evaluate(defs: dg.Definitions, name: str, instance: dg.DagsterInstance, cursor: str | None):
    """One tick as the daemon's code server runs it, with Dagster's checks of the requests (a
    backfill request from a sensor without an asset target fails there, not in ``tick``)."""
    sensor = defs.resolve_sensor_def(name)
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    data = sensor.evaluate_tick(context)
    return list(data.run_requests or []), data.cursor


def add_backfill(instance: dg.DagsterInstance, request: dg.RunRequest, backfill_id: str) -> None:
    """What the sensor daemon does with a backfill request."""
    instance.add_backfill(
        PartitionBackfill.from_asset_graph_subset(
            backfill_id=backfill_id,
            dynamic_partitions_store=instance,
            backfill_timestamp=time.time(),
            asset_graph_subset=request.asset_graph_subset,
            tags=request.tags,
            title=None,
            description=None,
            run_config=None,
        )
    )


def test_new_file_is_requested_once_even_after_a_restart(automation, instance) -> None:
    defs, landing = automation()
    (landing / "day1.csv").write_text(LANDED)

    requests, cursor = tick(defs, "new_sales_sensor", instance, None)
    assert [f["name"] for f in landing_files(requests[0])] == ["day1.csv"]
    assert requests[0].job_name in (None, "sales_ingest_job")
    # The same tick again, and a fresh context holding only the stored cursor (a restarted
    # daemon): nothing new.
    assert tick(defs, "new_sales_sensor", instance, cursor)[0] == []
    restarted = build_definitions(defs.resources["settings"].settings_file)
    assert tick(restarted, "new_sales_sensor", instance, cursor)[0] == []


def test_a_modified_file_is_requested_again_with_a_new_run_key(automation, instance) -> None:
    defs, landing = automation()
    file = landing / "day1.csv"
    file.write_text(LANDED)
    first, cursor = tick(defs, "new_sales_sensor", instance, None)

    file.write_text(LANDED + "2024-11-21,a,4,north,snacks,\n")
    second, _ = tick(defs, "new_sales_sensor", instance, cursor)

    assert [f["name"] for f in landing_files(second[0])] == ["day1.csv"]
    assert landing_files(second[0])[0]["size"] == file.stat().st_size
    assert second[0].run_key != first[0].run_key


def test_a_file_still_being_written_waits_until_it_stops_changing(automation, instance) -> None:
    defs, landing = automation(settle_seconds=3600)
    file = landing / "growing.csv"
    file.write_text(LANDED)

    requests, cursor = tick(defs, "new_sales_sensor", instance, None)
    assert requests == []
    with file.open("a") as handle:
        handle.write("2024-11-21,a,4,north,snacks,\n")
    requests, cursor = tick(defs, "new_sales_sensor", instance, cursor)
    assert requests == []
    requests, cursor = tick(defs, "new_sales_sensor", instance, cursor)
    assert landing_files(requests[0])[0]["size"] == file.stat().st_size


def test_missing_landing_folder_is_a_skip_that_names_it(automation, instance) -> None:
    defs, landing = automation()
    landing.rmdir()
    sensor = defs.resolve_sensor_def("new_sales_sensor")
    data = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    assert not data.run_requests
    assert str(landing) in data.skip_message


def test_many_files_are_split_into_runs_of_the_configured_size(automation, instance) -> None:
    defs, landing = automation(max_files_per_run=40)
    for number in range(100):
        (landing / f"f{number:03d}.csv").write_text(LANDED)
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        requests, cursor = tick(defs, "new_sales_sensor", instance, cursor)
        seen += [f["name"] for f in landing_files(requests[0])]
    assert sorted(seen) == [f"f{n:03d}.csv" for n in range(100)]
    assert tick(defs, "new_sales_sensor", instance, cursor)[0] == []


def test_nightly_schedule_starts_the_ingest_at_the_configured_time(automation) -> None:
    defs, _ = automation(retrain_cron="30 3 * * *", timezone="Europe/Berlin")
    schedule = defs.resolve_schedule_def("nightly_retrain")
    assert schedule.cron_schedule == "30 3 * * *"
    assert schedule.execution_timezone == "Europe/Berlin"
    assert schedule.job_name == "ingest_job"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    data = schedule.evaluate_tick(dg.build_schedule_context())
    assert data.run_requests[0].tags["forecast_assets/trigger"] == "nightly_retrain"


def test_disabled_automation_starts_stopped(automation) -> None:
    defs, _ = automation(enabled=False)
    assert defs.resolve_schedule_def("nightly_retrain").default_status == (
        dg.DefaultScheduleStatus.STOPPED
    )
    for sensor in defs.sensors:
        assert sensor.default_status == dg.DefaultSensorStatus.STOPPED, sensor.name


def test_retraining_follows_a_successful_clustering(automation, instance) -> None:
    defs, _ = automation()
    assert evaluate(defs, "retrain_after_clustering", instance, None) == ([], "0")
    defs.resolve_job_def("ingest_job").execute_in_process(instance=instance)
    clusters = instance.get_dynamic_partitions(CLUSTER_PARTITIONS_NAME)

    (request,), cursor = evaluate(defs, "retrain_after_clustering", instance, "0")
    # One backfill of train_job's assets over every cluster, carrying train_job's tags: the
    # run queue's GPU limit and the pod's GPU request hold for each of its runs.
    assert backfill_target(request) == {asset: sorted(clusters) for asset in CLUSTER_ASSETS}
    train_tags = defs.resolve_job_def("train_job").tags
    assert request.tags[GPU_TAG_KEY] == "true"
    assert request.tags[K8S_CONFIG_TAG] == train_tags[K8S_CONFIG_TAG]
    assert request.tags[JOB_TAG] == "train_job"
    assert evaluate(defs, "retrain_after_clustering", instance, cursor)[0] == []
    # A daemon that stored the backfill but not the cursor requests nothing again.
    add_backfill(instance, request, "retrain1")
    assert evaluate(defs, "retrain_after_clustering", instance, "0")[0] == []


def test_clusters_materialized_outside_ingest_job_start_no_training(automation, instance) -> None:
    defs, _ = automation()
    defs.resolve_job_def("ingest_job").execute_in_process(instance=instance)
    instance.report_runless_asset_event(dg.AssetMaterialization("clusters"))
    requests, cursor = evaluate(defs, "retrain_after_clustering", instance, "0")
    assert requests == [] and cursor != "0"


def test_publish_waits_for_pending_runs_then_requests_once(automation, instance) -> None:
    defs, _ = automation()
    assert tick(defs, "publish_forecasts", instance, None)[0] == []  # nothing to publish
    instance.add_dynamic_partitions(CLUSTER_PARTITIONS_NAME, ["cluster_0"])
    instance.report_runless_asset_event(
        dg.AssetMaterialization("forecast_table", partition="cluster_0")
    )
    pending = create_run_for_test(
        instance, job_name="refresh_job", status=dg.DagsterRunStatus.STARTED
    )
    assert tick(defs, "publish_forecasts", instance, None)[0] == []

    instance.report_run_canceled(pending)
    # A run that a backfill started for refresh_job runs in the implicit asset job.
    backfill_run = create_run_for_test(
        instance,
        job_name="__ASSET_JOB",
        status=dg.DagsterRunStatus.STARTED,
        tags={JOB_TAG: "refresh_job"},
    )
    assert tick(defs, "publish_forecasts", instance, None)[0] == []
    instance.report_run_canceled(backfill_run)

    # A backfill that has not created all of its runs yet is pending too.
    refresh = cluster_backfill(
        defs.resolve_job_def("refresh_job"), REFRESH_ASSETS, ["cluster_0"], "refresh-v1"
    )
    add_backfill(instance, refresh, "refresh1")
    assert tick(defs, "publish_forecasts", instance, None)[0] == []
    backfill = instance.get_backfill("refresh1")
    instance.update_backfill(backfill.with_status(BulkActionStatus.COMPLETED_SUCCESS))

    requests, cursor = tick(defs, "publish_forecasts", instance, None)
    assert len(requests) == 1
    assert tick(defs, "publish_forecasts", instance, cursor)[0] == []


class _Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Webhook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_failed_run_is_reported_to_the_log_file_and_webhook(
    automation, instance, tmp_path: Path
) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        defs, landing = automation(failure_webhook_url=url)
        (landing / "bad.csv").write_text(
            "date,sku,quantity,store,category,tags\nnot-a-date,a,1,n,x,\n"
        )
        requests, _ = tick(defs, "new_sales_sensor", instance, None)
        result = defs.resolve_job_def("sales_ingest_job").execute_in_process(
            instance=instance, run_config=requests[0].run_config, raise_on_error=False
        )
        assert not result.success

        sensor = defs.resolve_sensor_def("report_run_failures")
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_event=result.get_run_failure_event(),
            dagster_instance=instance,
            dagster_run=result.dagster_run,
        ).for_run_failure()
        sensor(context)
    finally:
        server.shutdown()

    line = (tmp_path / "output" / "run_failures.log").read_text().strip()
    assert f"run {result.run_id} of sales_ingest_job failed" in line
    assert "bad.csv" in line and "not-a-date" in line
    assert "\n" not in line
    assert _Webhook.received[-1]["text"] == line
    assert _Webhook.received[-1]["job"] == "sales_ingest_job"
