"""The code location: Definitions load, every job resolves, invalid settings stop loading."""

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from forecast_assets.concurrency import (
    GPU_TAG_KEY,
    HISTORY_POOL,
    HISTORY_TAG_KEY,
    TRAINING_POOL,
)
from forecast_assets.core.errors import ConfigurationError
from forecast_assets.definitions import build_definitions, defs
from forecast_assets_tests.conftest import DESIGN_ASSETS

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def test_every_job_resolves() -> None:
    jobs = {job.name: job for job in defs.resolve_all_job_defs()}
    assert {
        "ingest_job",
        "sales_ingest_job",
        "train_job",
        "tune_job",
        "refresh_job",
        "forecasts_job",
    } <= set(jobs)
    for job in jobs.values():
        assert job.graph.node_defs, job.name


def test_asset_checks_cover_the_gate_coverage_and_the_published_table() -> None:
    specs = {
        (spec.asset_key.to_user_string(), spec.name): spec
        for spec in defs.resolve_asset_graph().asset_check_keys
        for spec in [defs.resolve_asset_graph().get_check_spec(spec)]
    }
    assert set(specs) == {
        ("cluster_model", "accuracy_gate"),
        ("evaluation_report", "interval_coverage"),
        ("forecasts", "forecasts_schema"),
        ("forecasts", "forecasts_complete"),
        ("raw_sales", "landing_files_accepted"),
    }
    assert specs[("cluster_model", "accuracy_gate")].blocking
    assert specs[("forecasts", "forecasts_complete")].blocking


def test_the_published_table_carries_the_configured_freshness_policy(write_settings) -> None:
    def policy(definitions: dg.Definitions):
        return (
            definitions.resolve_assets_def("forecasts")
            .specs_by_key[dg.AssetKey("forecasts")]
            .freshness_policy
        )

    assert policy(defs) == dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26))
    custom = build_definitions(str(write_settings({"automation": {"forecast_max_age_hours": 3}})))
    assert policy(custom) == dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=3))
    # Only the published table: the rest materialize on their own schedules.
    others = [spec for spec in custom.resolve_all_asset_specs() if spec.key.path != ["forecasts"]]
    assert others and all(spec.freshness_policy is None for spec in others)


def test_graph_has_the_designed_assets_and_partitioning() -> None:
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == set(DESIGN_ASSETS)
    partitioned = {key.to_user_string() for key in keys_with_partitions(graph)}
    assert partitioned == {
        "scalers",
        "tuned_hyperparameters",
        "encoded_features",
        "cluster_model",
        "evaluation_report",
        "forecast_table",
    }
    parents = {key.to_user_string() for key in graph.get(dg.AssetKey("forecast_table")).parent_keys}
    assert {"cluster_model", "encoded_features", "scalers"} <= parents


def keys_with_partitions(graph) -> list[dg.AssetKey]:
    return [key for key in graph.get_all_asset_keys() if graph.get(key).partitions_def is not None]


def test_training_job_carries_the_gpu_tag_the_run_queue_limits(tmp_path: Path) -> None:
    for job in ("train_job", "tune_job"):
        assert defs.resolve_job_def(job).tags[GPU_TAG_KEY] == "true"
    for asset in ("cluster_model", "tuned_hyperparameters"):
        assert defs.get_assets_def(asset).op.pool == TRAINING_POOL
    # The project's instance file, loaded as Dagster loads it: one GPU-tagged run and one
    # training step of the pool at a time.
    (tmp_path / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        config = instance.get_concurrency_config()
    assert {"key": GPU_TAG_KEY, "value": "true", "limit": 1} in (
        config.run_queue_config.tag_concurrency_limits
    )
    assert config.pool_config.default_pool_limit == 1
    assert {"key": HISTORY_TAG_KEY, "value": "write", "limit": 1} in (
        config.run_queue_config.tag_concurrency_limits
    )


# The steps that put a model on the device, and the one that writes the sales history.
DEVICE_ASSETS = ["tuned_hyperparameters", "cluster_model", "evaluation_report", "forecast_table"]
HISTORY_WRITERS = ["raw_sales"]


def test_every_launch_path_keeps_one_device_step_and_one_history_writer(tmp_path: Path) -> None:
    # The UI's "Materialize" runs the implicit asset job, which has no tags, so the run
    # queue's tag limits do not see it: the pools on the steps have to hold there too.
    implicit = defs.resolve_implicit_global_asset_job_def()
    assert not implicit.tags.get(GPU_TAG_KEY)
    jobs = [implicit, *(defs.resolve_job_def(job.name) for job in defs.jobs)]
    expected = {asset: TRAINING_POOL for asset in DEVICE_ASSETS}
    expected |= {asset: HISTORY_POOL for asset in HISTORY_WRITERS}
    for job in jobs:
        for node in job.graph.nodes:
            if node.name in expected:
                assert node.definition.pool == expected[node.name], (job.name, node.name)
    assert set(expected) <= {node.name for node in implicit.graph.nodes}
    # Each pool gets one slot from the instance config (Dagster has no per-pool limit there).
    (tmp_path / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        config = instance.get_concurrency_config()
        assert config.pool_config.default_pool_limit == 1
        storage = instance.event_log_storage
        for pool in (TRAINING_POOL, HISTORY_POOL):
            storage.initialize_concurrency_limit_to_default(pool)  # a step's first claim
            assert storage.get_concurrency_info(pool).slot_count == 1, pool


def test_runs_execute_their_steps_in_one_process() -> None:
    # A process per step would import torch once per step of a one-cluster chain.
    jobs = [defs.resolve_implicit_global_asset_job_def()]
    jobs += [defs.resolve_job_def(job.name) for job in defs.jobs]
    assert {job.executor_def.name for job in jobs} == {dg.in_process_executor.name}


def test_history_writers_take_turns_and_crashed_runs_are_retried(tmp_path: Path) -> None:
    for job in ("ingest_job", "sales_ingest_job"):
        assert defs.resolve_job_def(job).tags[HISTORY_TAG_KEY] == "write"
    assert defs.resolve_job_def("refresh_job").tags[GPU_TAG_KEY] == "true"
    (tmp_path / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_retries_enabled
        assert instance.run_retries_max_retries == 2
        # Bad data fails the same way again: only runs whose worker died are retried.
        assert not instance.run_retries_retry_on_asset_or_op_failure


def test_the_schedule_and_every_sensor_are_defined() -> None:
    assert {schedule.name for schedule in defs.schedules} == {"nightly_retrain"}
    assert {sensor.name for sensor in defs.sensors} == {
        "new_sales_sensor",
        "refresh_after_new_sales",
        "retrain_after_clustering",
        "publish_forecasts",
        "report_run_failures",
    }


def test_invalid_settings_stop_the_definitions_from_loading(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("timeseries:\n  window: -3\n")
    with pytest.raises(ConfigurationError, match=r"timeseries\.window"):
        build_definitions(str(bad))


def test_dagster_cli_loads_the_code_location(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={"DAGSTER_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_gpu_runs_ask_kubernetes_for_a_gpu_node_from_the_settings(write_settings) -> None:
    import json

    settings_file = write_settings(
        {"gpu": {"gpus_per_run": 2, "node_selector": {"pool": "l4"}, "tolerations": []}}
    )
    tags = build_definitions(str(settings_file)).resolve_job_def("train_job").tags
    assert tags[GPU_TAG_KEY] == "true"
    pod = json.loads(tags["dagster-k8s/config"])
    assert pod["container_config"]["resources"]["limits"] == {"nvidia.com/gpu": "2"}
    assert pod["pod_spec_config"] == {"node_selector": {"pool": "l4"}, "tolerations": []}
    default = json.loads(defs.resolve_job_def("train_job").tags["dagster-k8s/config"])
    assert default["pod_spec_config"]["tolerations"][0]["key"] == "nvidia.com/gpu"
