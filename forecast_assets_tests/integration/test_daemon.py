"""The deployed shape on one machine: `dagster dev` (webserver + daemon) with the project's
dagster.yaml, runs submitted the way the UI submits them and executed by the run queue."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
import requests
from dagster_graphql import DagsterGraphQLClient

from forecast_assets.concurrency import GPU_TAG_KEY
from forecast_assets.partitions import CLUSTER_PARTITIONS_NAME

pytestmark = [pytest.mark.integration, pytest.mark.daemon]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FORECASTS_MAX_AGE_HOURS = 0.02  # 72 s
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_dagster_dev(
    tmp_path: Path, settings_file: Path
) -> Iterator[tuple[DagsterGraphQLClient, dg.DagsterInstance]]:
    """`dagster dev` (webserver and daemon) on a free port for a fresh DAGSTER_HOME holding the
    project's dagster.yaml, in its own process group; stopped through that group."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "FORECAST_SETTINGS": str(settings_file),
        "FRESHNESS_DAEMON_INTERVAL_SECONDS": "1",  # 30 s by default
    }
    log = (tmp_path / "dagster_dev.log").open("w")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster"),
            "dev",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "workspace.yaml",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so one signal stops webserver and daemon
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                output = (tmp_path / "dagster_dev.log").read_text()[-3000:]
                pytest.fail(f"dagster dev did not start: {output}")
            time.sleep(1)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield DagsterGraphQLClient("127.0.0.1", port_number=port), instance
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


@pytest.fixture
def dagster_dev(
    tmp_path: Path, write_settings
) -> Iterator[tuple[DagsterGraphQLClient, dg.DagsterInstance]]:
    # The schedule and sensors stay off: this test submits every run itself. The published
    # table may be FORECASTS_MAX_AGE_HOURS old.
    settings = write_settings(
        {"automation": {"enabled": False, "forecast_max_age_hours": FORECASTS_MAX_AGE_HOURS}}
    )
    with running_dagster_dev(tmp_path, settings) as running:
        yield running


def wait_for_run(instance: dg.DagsterInstance, run_id: str, timeout: float = 300) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status in FINISHED:
            return run
        time.sleep(1)
    pytest.fail(f"run {run_id} did not finish in {timeout}s")


def freshness_of(instance: dg.DagsterInstance, key: str) -> str | None:
    """The daemon's latest freshness state of asset ``key`` (PASS, WARN, FAIL, ...)."""
    record = instance.get_freshness_state_records([dg.AssetKey(key)]).get(dg.AssetKey(key))
    return record.freshness_state.value if record else None


def wait_for_freshness(instance: dg.DagsterInstance, key: str, state: str, timeout: float) -> float:
    started = time.monotonic()
    while freshness_of(instance, key) != state:
        if time.monotonic() - started > timeout:
            pytest.fail(f"{key} is {freshness_of(instance, key)}, not {state}, after {timeout}s")
        time.sleep(0.5)
    return time.monotonic() - started


def test_runs_submitted_like_the_ui_go_through_the_queue_and_daemon(dagster_dev) -> None:
    client, instance = dagster_dev
    # A publication of the forecast table: fresh for FORECASTS_MAX_AGE_HOURS, judged by the
    # daemon through the asset's freshness policy.
    instance.report_runless_asset_event(dg.AssetMaterialization("forecasts"))
    published = time.monotonic()
    wait_for_freshness(instance, "forecasts", "PASS", timeout=60)
    assert time.monotonic() - published < FORECASTS_MAX_AGE_HOURS * 3600

    ingest = wait_for_run(instance, client.submit_job_execution("ingest_job"))
    assert ingest.status == dg.DagsterRunStatus.SUCCESS
    keys = instance.get_dynamic_partitions(CLUSTER_PARTITIONS_NAME)
    assert keys, "clusters registered no partitions"

    # Two GPU-tagged runs submitted together: the queue starts the second only after the
    # first has finished (tag limit 1 in dagster.yaml).
    run_id = client.submit_job_execution("train_job", tags={"dagster/partition": keys[0]})
    other_id = client.submit_job_execution("train_job", tags={"dagster/partition": keys[-1]})
    queued = instance.get_run_by_id(run_id)
    assert queued.tags[GPU_TAG_KEY] == "true"  # what the run queue limits
    trained = wait_for_run(instance, run_id)
    assert trained.status == dg.DagsterRunStatus.SUCCESS
    assert wait_for_run(instance, other_id).status == dg.DagsterRunStatus.SUCCESS
    first, second = sorted(
        (instance.get_run_record_by_id(r) for r in (run_id, other_id)),
        key=lambda record: record.start_time,
    )
    assert second.start_time >= first.end_time, "two GPU runs ran at the same time"
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("forecast_table"), asset_partitions=[keys[0]]),
        limit=1,
    ).records
    event = records[0].event_log_entry
    assert event.run_id == run_id
    assert event.asset_materialization.partition == keys[0]
    # The queue, not the in-process API, ran it: it went through QUEUED.
    statuses = [
        record.event_log_entry.dagster_event.event_type_value
        for record in instance.get_records_for_run(
            run_id, of_type={dg.DagsterEventType.RUN_ENQUEUED}
        ).records
    ]
    assert statuses == ["PIPELINE_ENQUEUED"]

    # Nothing published since: the table fails its freshness once it is older than allowed.
    max_age = FORECASTS_MAX_AGE_HOURS * 3600
    wait_for_freshness(instance, "forecasts", "FAIL", timeout=max_age + 60)
    assert time.monotonic() - published >= max_age
