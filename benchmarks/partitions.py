"""Sensor and UI overhead with many cluster partitions: N=4 next to N=100 in one run.

For each N, a fresh DAGSTER_HOME (the project's dagster.yaml, except that the run queue
launches nothing: max_concurrent_runs 0) gets:
- a real ingest_job run on the embedded example (it registers the real clusters and stores
  resampled_series and clusters for the CLI materialization below), then a real
  sales_ingest_job run for one landing file (so refresh_after_new_sales has work to do);
- cluster partitions added up to N;
- a runless materialization of every per-cluster asset for every partition, and a finished
  train_job run per partition (run history), so the UI has real partition status to compute.

Then, with the N=4 and N=100 homes side by side (repeats interleaved, so both sizes see the
same machine load):
1. every sensor whose work grows with the clusters, evaluated as the daemon's code server
   calls it (retrain_after_clustering, refresh_after_new_sales, publish_forecasts);
2. `dagster asset materialize --select scalers --partition cluster_0`, end to end, the run's
   start to end from its run record, and the step alone (the rest is process starts and
   imports);
3. `dagster dev` per home (own process group, stopped by SIGTERM to it) and the GraphQL
   queries the UI sends for the asset graph, the partition health of cluster_model, the
   asset page of cluster_model with its partitions and the sensors/schedules list; each
   query is validated against the installed dagster_graphql schema and its answer must hold
   the N partitions, so an empty page cannot pass for a fast one;
4. on the same servers, the daemon's whole tick of refresh_after_new_sales (started through
   GraphQL): the evaluation plus what it submits (one backfill over the N clusters; before
   issue 15 it was one run created and queued per cluster), from the tick record; then the
   time from the tick's start until the backfill daemon has queued the N runs, each with
   the GPU tag (that work is the backfill daemon's, and holds no sensor).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/partitions.py [--sizes 4 100] [--repeats 7]

Prints median / min / max per measurement and the ratio of the medians (second size over
first), and writes them to benchmarks/results/partitions/partitions.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import dagster as dg
import requests
import yaml
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.test_utils import create_run_for_test
from dagster_graphql.schema import create_schema
from graphql import parse, validate

from forecast_assets.concurrency import GPU_TAG_KEY
from forecast_assets.definitions import build_definitions
from forecast_assets.jobs import CLUSTER_ASSETS
from forecast_assets.partitions import CLUSTER_PARTITIONS_NAME
from forecast_assets.sensors import JOB_TAG

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "partitions" / "partitions.json"
DAGSTER = str(Path(sys.executable).parent / "dagster")
WORKSPACE = "workspace.yaml"
MATERIALIZE = [DAGSTER, "asset", "materialize", "-m", "forecast_assets.definitions"]
LOCATION = {"repositoryLocationName": "forecast_assets", "repositoryName": "__repository__"}
LANDED = "date,sku,quantity,store,category,tags\n2024-11-20,a,3,north,snacks,\n"
MATERIALIZED_ASSET = "scalers"  # the cheapest per-cluster asset: per-SKU scalers of a cluster

# The UI's queries (1.13 bundle: AssetGraphLiveQuery, PartitionHealthQuery,
# AssetViewDefinitionQuery, the workspace's sensors and schedules), cut to the fields that
# cost something on the server: partition keys, statuses, stats and latest events.
ASSET_GRAPH = """
query AssetGraph {
  assetNodes {
    id
    assetKey { path }
    groupName
    opNames
    isPartitioned
    isExecutable
    kinds
    jobNames
    dependencyKeys { path }
    dependedByKeys { path }
    partitionDefinition { description dimensionTypes { type dynamicPartitionsDefinitionName } }
  }
}
"""
ASSET_GRAPH_LIVE = """
query AssetGraphLive($assetKeys: [AssetKeyInput!]!) {
  assetNodes(assetKeys: $assetKeys, loadMaterializations: true) {
    id
    assetKey { path }
    assetMaterializations(limit: 1) { timestamp runId stepKey }
    assetObservations(limit: 1) { timestamp runId stepKey }
    assetChecksOrError {
      ... on AssetChecks {
        checks {
          name
          executionForLatestMaterialization { id runId status timestamp }
          partitionStatuses {
            ... on AssetCheckDefaultPartitionStatuses {
              succeededPartitions
              failedPartitions
              inProgressPartitions
              skippedPartitions
              executionFailedPartitions
            }
          }
        }
      }
    }
    partitionStats { numMaterialized numMaterializing numPartitions numFailed }
  }
  assetsLatestInfo(assetKeys: $assetKeys) {
    id
    assetKey { path }
    unstartedRunIds
    inProgressRunIds
    latestRun { id status startTime endTime }
  }
}
"""
PARTITION_HEALTH = """
query PartitionHealth($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode {
      id
      partitionKeysByDimension { name type partitionKeys }
      assetPartitionStatuses {
        __typename
        ... on DefaultPartitionStatuses {
          materializedPartitions
          materializingPartitions
          failedPartitions
        }
      }
    }
  }
}
"""
ASSET_PAGE = """
query AssetPage($assetKey: AssetKeyInput!) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset {
      id
      key { path }
      hasDefinitionOrRecord
      assetMaterializations(limit: 100) { timestamp runId partition stepKey }
      definition {
        id
        groupName
        description
        pools
        isExecutable
        opNames
        partitionDefinition { description dimensionTypes { type dynamicPartitionsDefinitionName } }
        partitionKeysByDimension { name partitionKeys }
        partitionStats { numMaterialized numMaterializing numPartitions numFailed }
        requiredResources { resourceKey }
        dependencyKeys { path }
        dependedByKeys { path }
        targetingInstigators { __typename ... on Sensor { name } ... on Schedule { name } }
        jobNames
      }
    }
  }
}
"""
SENSORS_AND_SCHEDULES = """
query SensorsAndSchedules($repositorySelector: RepositorySelector!) {
  sensorsOrError(repositorySelector: $repositorySelector) {
    __typename
    ... on Sensors {
      results {
        id
        name
        sensorType
        minIntervalSeconds
        targets { pipelineName }
        sensorState { id status runningCount ticks(limit: 1) { id status timestamp } }
      }
    }
  }
  schedulesOrError(repositorySelector: $repositorySelector) {
    __typename
    ... on Schedules {
      results {
        id
        name
        cronSchedule
        executionTimezone
        pipelineName
        scheduleState { id status ticks(limit: 1) { id status timestamp } }
      }
    }
  }
}
"""

START_SENSOR = """
mutation StartSensor($sensorSelector: SensorSelector!) {
  startSensor(sensorSelector: $sensorSelector) {
    __typename
    ... on Sensor { id sensorState { status } }
    ... on PythonError { message }
  }
}
"""
SENSOR_TICKS = """
query SensorTicks($sensorSelector: SensorSelector!) {
  sensorOrError(sensorSelector: $sensorSelector) {
    __typename
    ... on Sensor {
      sensorState {
        status
        ticks(limit: 5) { id status timestamp endTimestamp runIds skipReason error { message } }
      }
    }
  }
}
"""
QUERIES = (
    ASSET_GRAPH,
    ASSET_GRAPH_LIVE,
    PARTITION_HEALTH,
    ASSET_PAGE,
    SENSORS_AND_SCHEDULES,
    START_SENSOR,
    SENSOR_TICKS,
)


@dataclass
class Home:
    """One prepared DAGSTER_HOME with N cluster partitions."""

    n: int
    root: Path
    home: Path
    settings_file: Path
    instance: dg.DagsterInstance
    defs: dg.Definitions
    ingest_run_id: str
    real_clusters: list[str]
    submit_workers: int = 0
    port: int = 0
    asset_paths: list[list[str]] = field(default_factory=list)
    times: dict[str, list[float]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        threads = f", {self.submit_workers} submit threads" if self.submit_workers else ""
        return f"N={self.n}{threads}"

    def record(self, name: str, seconds: float) -> None:
        self.times.setdefault(name, []).append(seconds)


def settings_for(root: Path) -> dict:
    """The embedded example, small enough that ingest runs in seconds; automation off, so
    that the daemon of `dagster dev` starts no run while the UI is being timed."""
    return {
        "data": {
            "date_column": "date",
            "sku_columns": ["sku"],
            "quantity_column": "quantity",
            "categorical_columns": ["store", "category"],
            "multilabel_columns": ["tags"],
            "landing_dir": str(root / "landing"),
            "example": {"n_skus": 40, "periods": 330, "start": "2024-01-01"},
        },
        "timeseries": {"freq": "D", "window": 28, "horizon": 7, "min_history": 60},
        "clustering": {"k_min": 2, "k_max": 3, "min_cluster_size": 3},
        "automation": {"enabled": False, "settle_seconds": 0, "chain_interval_seconds": 1},
        "output": {"dir": str(root / "output")},
        "seed": 7,
        "device": "cpu",
    }


def run_job(defs: dg.Definitions, instance: dg.DagsterInstance, name: str, **kwargs) -> str:
    result = defs.resolve_job_def(name).execute_in_process(instance=instance, **kwargs)
    assert result.success, f"{name} failed"
    return result.run_id


def ingest_landing_file(
    defs: dg.Definitions, instance: dg.DagsterInstance, landing: Path, name: str
) -> None:
    """One landing file through sales_ingest_job, as new_sales_sensor would request it: a new
    version of the sales history."""
    landed = landing / name
    landed.write_text(LANDED)
    stat = landed.stat()
    files = [{"name": landed.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}]
    config = {"ops": {"raw_sales": {"config": {"landing_files": files}}}}
    run_job(defs, instance, "sales_ingest_job", run_config=config)


def prepare(n: int, root: Path, submit_workers: int = 0) -> Home:
    home = root / "dagster_home"
    home.mkdir(parents=True)
    instance_config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    # The project's instance settings, except that the run queue launches nothing: the runs
    # the daemon's sensor tick submits stay queued instead of training fake clusters.
    instance_config["concurrency"]["runs"]["max_concurrent_runs"] = 0
    if submit_workers:  # the variant: the sensor daemon submits a tick's runs in threads
        instance_config["sensors"] = {"use_threads": True, "num_submit_workers": submit_workers}
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_config))
    (root / "landing").mkdir()
    settings_file = root / "settings.yaml"
    settings_file.write_text(yaml.safe_dump(settings_for(root)))
    instance = dg.DagsterInstance.from_config(str(home))
    defs = build_definitions(str(settings_file))

    ingest_run_id = run_job(defs, instance, "ingest_job")
    real = sorted(instance.get_dynamic_partitions(CLUSTER_PARTITIONS_NAME))
    assert 0 < len(real) <= n, f"the example gave {len(real)} clusters, more than N={n}"
    # raw_sales then comes from sales_ingest_job, which is what refresh_after_new_sales
    # reacts to.
    ingest_landing_file(defs, instance, root / "landing", "day1.csv")

    extra = [f"cluster_{i}" for i in range(len(real), n)]
    instance.add_dynamic_partitions(CLUSTER_PARTITIONS_NAME, extra)
    keys = instance.get_dynamic_partitions(CLUSTER_PARTITIONS_NAME)
    assert len(keys) == n == len(set(keys))
    for key in keys:
        # Run history: one finished training run per cluster, as retrain_after_clustering
        # leaves behind; then every per-cluster asset materialized for the partition.
        create_run_for_test(
            instance,
            job_name="train_job",
            status=dg.DagsterRunStatus.SUCCESS,
            tags={"dagster/partition": key},
        )
        for asset in CLUSTER_ASSETS:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=key))
    for asset in CLUSTER_ASSETS:
        materialized = instance.get_materialized_partitions(dg.AssetKey(asset))
        assert materialized == set(keys), asset
    return Home(n, root, home, settings_file, instance, defs, ingest_run_id, real, submit_workers)


# --- 1. sensors ---------------------------------------------------------------------------


def requests_of(result) -> list[dg.RunRequest]:
    if isinstance(result, dg.SensorResult):
        return list(result.run_requests or [])
    if isinstance(result, dg.RunRequest):
        return [result]
    return list(result) if isinstance(result, list) else []


def tick(home: Home, name: str) -> list[dg.RunRequest]:
    """One evaluation of a sensor with no cursor, as the daemon's code server calls it."""
    sensor = home.defs.resolve_sensor_def(name)
    context = dg.build_sensor_context(instance=home.instance, cursor=None, definitions=home.defs)
    return requests_of(sensor(context))


def retrain_tick(home: Home) -> list[dg.RunRequest]:
    """retrain_after_clustering after the ingest run, with the cursor of a daemon that has
    ticked before it (otherwise the models materialized since count as trained)."""
    sensor = home.defs.resolve_sensor_def("retrain_after_clustering")
    context = dg.build_sensor_context(instance=home.instance, cursor="0", definitions=home.defs)
    return requests_of(sensor(context))


def sensor_cases(home: Home) -> dict[str, tuple[Callable[[], list], int]]:
    """Sensor name -> (one evaluation, the cluster partitions it must request; 0: one run
    of an unpartitioned job)."""
    return {
        "sensor retrain_after_clustering": (lambda: retrain_tick(home), home.n),
        "sensor refresh_after_new_sales": (lambda: tick(home, "refresh_after_new_sales"), home.n),
        "sensor publish_forecasts": (lambda: tick(home, "publish_forecasts"), 0),
    }


def requested_partitions(made: list[dg.RunRequest]) -> list[str]:
    """The cluster partitions a tick's requests cover, once per request that covers them."""
    keys = []
    for request in made:
        if request.requires_backfill_daemon():
            subsets = request.asset_graph_subset.partitions_subsets_by_asset_key.values()
            (partitions,) = {frozenset(subset.get_partition_keys()) for subset in subsets}
            keys += sorted(partitions)
        elif request.partition_key:
            keys.append(request.partition_key)
    return keys


def time_sensors(homes: list[Home], repeats: int) -> None:
    for home in homes:  # once untimed: imports and first queries out of the way
        for name, (evaluate, expected) in sensor_cases(home).items():
            made = evaluate()
            assert len(made) == 1, (name, home.n, len(made))  # one request per tick
            keys = requested_partitions(made)
            assert len(keys) == expected, (name, home.n, len(keys))
            assert len(set(keys)) == len(keys), f"{name} requested a partition twice"
    for _ in range(repeats):
        for home in homes:
            for name, (evaluate, _) in sensor_cases(home).items():
                started = time.perf_counter()
                evaluate()
                home.record(name, time.perf_counter() - started)


# --- 3. the UI over GraphQL ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def child_env(home: Home) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORECAST_")}
    env.update(DAGSTER_HOME=str(home.home), FORECAST_SETTINGS=str(home.settings_file))
    return env


@contextmanager
def dagster_dev(homes: list[Home]) -> Iterator[None]:
    """`dagster dev` per home, each in its own process group; all stopped through their group."""
    servers: list[subprocess.Popen] = []
    logs = []
    try:
        for home in homes:
            home.port = free_port()
            log = (home.root / "dagster_dev.log").open("w")
            logs.append(log)
            servers.append(
                subprocess.Popen(
                    [DAGSTER, "dev", "-h", "127.0.0.1", "-p", str(home.port), "-w", WORKSPACE],
                    cwd=PROJECT_ROOT,
                    env=child_env(home),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # one signal to the group stops all its processes
                )
            )
        deadline = time.monotonic() + 240
        for home, server in zip(homes, servers, strict=True):
            while not location_loaded(home.port):
                if server.poll() is not None or time.monotonic() > deadline:
                    tail = (home.root / "dagster_dev.log").read_text()[-3000:]
                    raise RuntimeError(f"dagster dev for {home.label} did not start:\n{tail}")
                time.sleep(1)
        yield
    finally:
        for server in servers:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
        for server in servers:
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        for log in logs:
            log.close()


def location_loaded(port: int) -> bool:
    """The webserver answers and the code location is loaded (not just the server up)."""
    try:
        data = graphql(
            port,
            "{ workspaceOrError { __typename ... on Workspace { "
            "locationEntries { loadStatus } } } }",
        )
    except (requests.ConnectionError, RuntimeError):
        return False
    entries = data["workspaceOrError"].get("locationEntries", [])
    return bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    response = requests.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": query, "variables": variables or {}},
        timeout=300,
    )
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return body["data"]


def check_validity() -> None:
    """Every query against the installed schema: a misspelt field fails here, not silently."""
    schema = create_schema().graphql_schema
    for query in QUERIES:
        errors = validate(schema, parse(query))
        assert not errors, errors


def keys_input(paths: list[list[str]]) -> list[dict]:
    return [{"path": path} for path in paths]


def ui_cases(home: Home) -> dict[str, Callable[[], None]]:
    """Query name -> one request whose answer is checked for the N partitions."""
    n, port = home.n, home.port
    cluster_model = {"path": ["cluster_model"]}

    def asset_graph() -> None:
        nodes = graphql(port, ASSET_GRAPH)["assetNodes"]
        partitioned = [node for node in nodes if node["isPartitioned"]]
        assert len(nodes) >= 12 and len(partitioned) == len(CLUSTER_ASSETS), nodes

    def asset_graph_live() -> None:
        data = graphql(port, ASSET_GRAPH_LIVE, {"assetKeys": keys_input(home.asset_paths)})
        stats = {node["assetKey"]["path"][0]: node["partitionStats"] for node in data["assetNodes"]}
        for asset in CLUSTER_ASSETS:
            assert stats[asset]["numPartitions"] == n, (asset, stats[asset])
            assert stats[asset]["numMaterialized"] == n, (asset, stats[asset])
        assert len(data["assetsLatestInfo"]) == len(home.asset_paths)

    def partition_health() -> None:
        node = graphql(port, PARTITION_HEALTH, {"assetKey": cluster_model})["assetNodeOrError"]
        assert node["__typename"] == "AssetNode", node
        assert len(node["partitionKeysByDimension"][0]["partitionKeys"]) == n
        assert len(node["assetPartitionStatuses"]["materializedPartitions"]) == n

    def asset_page() -> None:
        asset = graphql(port, ASSET_PAGE, {"assetKey": cluster_model})["assetOrError"]
        assert asset["__typename"] == "Asset", asset
        definition = asset["definition"]
        assert len(definition["partitionKeysByDimension"][0]["partitionKeys"]) == n
        assert definition["partitionStats"]["numMaterialized"] == n
        events = {event["partition"] for event in asset["assetMaterializations"]}
        assert len(events) == min(n, 100), len(events)

    def sensors_and_schedules() -> None:
        data = graphql(port, SENSORS_AND_SCHEDULES, {"repositorySelector": LOCATION})
        assert data["sensorsOrError"]["__typename"] == "Sensors", data
        assert len(data["sensorsOrError"]["results"]) == 6
        assert len(data["schedulesOrError"]["results"]) == 1

    return {
        "ui asset graph": asset_graph,
        "ui asset graph live (stats, latest runs)": asset_graph_live,
        "ui partition health cluster_model": partition_health,
        "ui asset page cluster_model": asset_page,
        "ui sensors and schedules": sensors_and_schedules,
    }


def time_ui(homes: list[Home], repeats: int) -> None:
    for home in homes:
        nodes = graphql(home.port, ASSET_GRAPH)["assetNodes"]
        home.asset_paths = [node["assetKey"]["path"] for node in nodes]
        # The first request of each kind: the webserver's caches are cold.
        for name, query in ui_cases(home).items():
            started = time.perf_counter()
            query()
            home.record(f"{name} (first)", time.perf_counter() - started)
    for _ in range(repeats):
        for home in homes:
            for name, query in ui_cases(home).items():
                started = time.perf_counter()
                query()
                home.record(name, time.perf_counter() - started)


# --- 4. the daemon's tick of refresh_after_new_sales ---------------------------------------


def sensor_ticks(home: Home, sensor: str) -> list[dict]:
    selector = {**LOCATION, "sensorName": sensor}
    data = graphql(home.port, SENSOR_TICKS, {"sensorSelector": selector})["sensorOrError"]
    assert data["__typename"] == "Sensor", data
    return data["sensorState"]["ticks"]


def refresh_runs(home: Home, statuses: list[dg.DagsterRunStatus]) -> list[dg.DagsterRun]:
    """refresh_job's runs, its own or a backfill's on its behalf."""
    own = home.instance.get_runs(dg.RunsFilter(job_name="refresh_job", statuses=statuses))
    backfilled = home.instance.get_runs(
        dg.RunsFilter(tags={JOB_TAG: "refresh_job"}, statuses=statuses)
    )
    return own + backfilled


def time_daemon_ticks(homes: list[Home], repeats: int) -> None:
    """The whole tick as the daemon runs it: the evaluation in the code server, then what it
    submits (one backfill). Its start and end come from the tick record. Then the backfill
    daemon's work: the N runs queued, timed from the tick's start to the last run's
    creation. One size at a time, so the two daemons do not tick over each other."""
    sensor = "refresh_after_new_sales"
    for repeat in range(repeats):
        for home in homes:
            seen = {tick["id"] for tick in sensor_ticks(home, sensor)}
            if repeat == 0:
                started = graphql(
                    home.port, START_SENSOR, {"sensorSelector": {**LOCATION, "sensorName": sensor}}
                )["startSensor"]
                assert started["__typename"] == "Sensor", started
            else:
                # The last tick's backfill and runs are still pending, and the sensor waits
                # for them: cancel them, then land a file, which gives the history a new
                # version to refresh.
                for backfill in home.instance.get_backfills(status=BulkActionStatus.REQUESTED):
                    home.instance.update_backfill(backfill.with_status(BulkActionStatus.CANCELED))
                for run in refresh_runs(home, [dg.DagsterRunStatus.QUEUED]):
                    home.instance.report_run_canceled(run)
                ingest_landing_file(
                    home.defs, home.instance, home.root / "landing", f"day{repeat + 1}.csv"
                )
            deadline = time.monotonic() + 300
            while True:
                done = [
                    tick
                    for tick in sensor_ticks(home, sensor)
                    if tick["id"] not in seen and tick["status"] == "SUCCESS" and tick["runIds"]
                ]
                if done:
                    break
                assert time.monotonic() < deadline, sensor_ticks(home, sensor)[:2]
                time.sleep(0.5)
            (tick,) = done
            home.record(
                "daemon tick refresh_after_new_sales", tick["endTimestamp"] - tick["timestamp"]
            )
            # The tick submitted one backfill; the backfill daemon makes the N runs of it.
            (backfill_id,) = tick["runIds"]
            backfill = home.instance.get_backfill(backfill_id)
            assert backfill is not None, tick
            while True:
                runs = [
                    run
                    for run in refresh_runs(home, [dg.DagsterRunStatus.QUEUED])
                    if run.tags.get("dagster/backfill") == backfill_id
                ]
                if len(runs) >= home.n:
                    break
                assert time.monotonic() < deadline, (home.n, len(runs))
                time.sleep(0.5)
            assert sorted(run.tags["dagster/partition"] for run in runs) == sorted(
                home.instance.get_dynamic_partitions(CLUSTER_PARTITIONS_NAME)
            )
            assert all(run.tags[GPU_TAG_KEY] == "true" for run in runs), "a run lost its tag"
            created = max(
                home.instance.get_run_record_by_id(run.run_id).create_timestamp.timestamp()
                for run in runs
            )
            home.record("backfill: tick start to N runs queued", created - tick["timestamp"])


# --- 2. dagster asset materialize ---------------------------------------------------------


def time_materialize(homes: list[Home], repeats: int) -> None:
    for _ in range(repeats):
        for home in homes:
            partition = home.real_clusters[0]
            before = set(home.instance.get_run_ids())
            started = time.perf_counter()
            done = subprocess.run(
                [*MATERIALIZE, "--select", MATERIALIZED_ASSET, "--partition", partition],
                cwd=PROJECT_ROOT,
                env=child_env(home),
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - started
            assert done.returncode == 0, done.stderr[-3000:]
            (run_id,) = set(home.instance.get_run_ids()) - before
            record = home.instance.get_run_record_by_id(run_id)
            assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
            assert record.dagster_run.tags["dagster/partition"] == partition
            step = {
                record.event_log_entry.dagster_event.event_type_value: record.timestamp
                for record in home.instance.get_records_for_run(
                    run_id,
                    of_type={dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS},
                ).records
            }
            home.record("cli materialize scalers (wall)", wall)
            home.record(
                "cli materialize scalers (run start-end)", record.end_time - record.start_time
            )
            home.record("cli materialize scalers (step)", step["STEP_SUCCESS"] - step["STEP_START"])


# --- report -------------------------------------------------------------------------------


def table(homes: list[Home]) -> tuple[str, list[dict]]:
    small, large = homes[0], homes[-1]
    rows = []
    lines = [
        f"{'measurement':<44} {small.label + ' median':>12} {'min':>8} {'max':>8}"
        f" {large.label + ' median':>14} {'min':>8} {'max':>8} {'ratio':>7}"
    ]
    for name in small.times:
        a, b = small.times[name], large.times[name]
        ma, mb = statistics.median(a), statistics.median(b)
        row = {
            "measurement": name,
            "unit": "ms" if not name.startswith("cli") else "s",
            small.label: {"median": ma, "min": min(a), "max": max(a), "runs": a},
            large.label: {"median": mb, "min": min(b), "max": max(b), "runs": b},
            "ratio": mb / ma,
        }
        rows.append(row)
        scale, unit = (1000, "ms") if row["unit"] == "ms" else (1, "s")
        lines.append(
            f"{name:<44} {ma * scale:>9.1f} {unit:<2} {min(a) * scale:>8.1f} {max(a) * scale:>8.1f}"
            f" {mb * scale:>11.1f} {unit:<2} {min(b) * scale:>8.1f} {max(b) * scale:>8.1f}"
            f" {mb / ma:>6.2f}x"
        )
    return "\n".join(lines), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[4, 100], metavar=("SMALL", "LARGE"))
    parser.add_argument("--repeats", type=int, default=7, help="sensor ticks and UI queries")
    parser.add_argument("--cli-repeats", type=int, default=3)
    parser.add_argument("--daemon-repeats", type=int, default=3)
    parser.add_argument(
        "--sensor-submit-workers",
        type=int,
        nargs="+",
        default=[0],
        help="sensors.num_submit_workers of the instance, one for all sizes or one per size "
        "(0: unset, the project's); e.g. --sizes 100 100 --sensor-submit-workers 0 4",
    )
    parser.add_argument("--skip", nargs="*", default=[], choices=["sensors", "cli", "ui", "daemon"])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    workers = args.sensor_submit_workers
    workers = workers * len(args.sizes) if len(workers) == 1 else workers
    assert len(workers) == len(args.sizes), "one --sensor-submit-workers, or one per size"
    check_validity()

    load_before = os.getloadavg()[0]
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        homes = []
        for number, (n, threads) in enumerate(zip(args.sizes, workers, strict=True)):
            started = time.perf_counter()
            home = prepare(n, root / f"home{number}", threads)
            stack.callback(home.instance.dispose)
            homes.append(home)
            took = time.perf_counter() - started
            print(f"{home.label}: prepared in {took:.1f}s", flush=True)
        if "sensors" not in args.skip:
            time_sensors(homes, args.repeats)
            print("sensors timed", flush=True)
        if "cli" not in args.skip:
            time_materialize(homes, args.cli_repeats)
            print("dagster asset materialize timed", flush=True)
        if "ui" not in args.skip or "daemon" not in args.skip:
            with dagster_dev(homes):
                if "ui" not in args.skip:
                    time_ui(homes, args.repeats)
                    print("UI queries timed", flush=True)
                if "daemon" not in args.skip:
                    time_daemon_ticks(homes, args.daemon_repeats)
                    print("daemon ticks timed", flush=True)
        text, rows = table(homes)

    print()
    print(f"cluster partitions, {homes[0].label} vs {homes[-1].label}; ratio = median / median")
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "sizes": args.sizes,
                "repeats": args.repeats,
                "cli_repeats": args.cli_repeats,
                "daemon_repeats": args.daemon_repeats,
                "sensor_submit_workers": workers,
                "rows": rows,
                "measured": datetime.now().isoformat(timespec="seconds"),
                "command": " ".join(["python", *sys.argv]),
                "versions": {"dagster": dg.__version__, "python": platform.python_version()},
                "cpu_count": os.cpu_count(),
                "load_average_before": load_before,
                "load_average_after": os.getloadavg()[0],
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
