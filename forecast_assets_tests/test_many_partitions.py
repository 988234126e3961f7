"""The chaining sensors with 100 cluster partitions: one backfill request per tick, covering
every cluster once, never requested twice.

The ingest runs are real (the small example); the clusters beyond the example's few are
added as partitions with reported materializations, as a large catalogue would leave them.
"""

import os

import dagster as dg
import pytest
import yaml
from dagster._core.execution.backfill import BulkActionStatus

from forecast_assets.concurrency import GPU_TAG_KEY
from forecast_assets.definitions import build_definitions
from forecast_assets.jobs import CLUSTER_ASSETS, REFRESH_ASSETS
from forecast_assets.partitions import CLUSTER_PARTITIONS_NAME
from forecast_assets.settings import deep_merge
from forecast_assets_tests.conftest import backfill_target, small_settings, tick
from forecast_assets_tests.test_sensors import add_backfill, evaluate

CLUSTERS = 100
LANDED = "date,sku,quantity,store,category,tags\n2024-11-20,a,3,north,snacks,\n"


@pytest.fixture(scope="module")
def hundred_clusters(tmp_path_factory):
    """Definitions, instance and ingest_job result, with 100 cluster partitions of which
    every one but the last has a model and a forecast and the last has neither. Built once:
    the sensors only read the instance."""
    root = tmp_path_factory.mktemp("many_partitions")
    landing = root / "landing"
    landing.mkdir()
    settings = deep_merge(
        small_settings(root / "output"),
        {"data": {"landing_dir": str(landing)}, "automation": {"settle_seconds": 0}},
    )
    (root / "settings.yaml").write_text(yaml.safe_dump(settings))
    with pytest.MonkeyPatch.context() as env, dg.instance_for_test() as instance:
        for name in [name for name in os.environ if name.startswith("FORECAST_")]:
            env.delenv(name)
        defs = build_definitions(str(root / "settings.yaml"))
        ingest = defs.resolve_job_def("ingest_job").execute_in_process(instance=instance)
        real = instance.get_dynamic_partitions(CLUSTER_PARTITIONS_NAME)
        instance.add_dynamic_partitions(
            CLUSTER_PARTITIONS_NAME, [f"cluster_{i}" for i in range(len(real), CLUSTERS)]
        )
        keys = instance.get_dynamic_partitions(CLUSTER_PARTITIONS_NAME)
        # What the sensors read: the trained models and the cluster forecasts.
        for key in keys[:-1]:
            for asset in ("cluster_model", "forecast_table"):
                instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=key))
        # New sales after the models: the history gets a version refresh has not seen.
        (landing / "day1.csv").write_text(LANDED)
        requests, _ = tick(defs, "new_sales_sensor", instance, None)
        sales = defs.resolve_job_def("sales_ingest_job").execute_in_process(
            instance=instance, run_config=requests[0].run_config
        )
        assert sales.success
        yield defs, instance, ingest, keys


def test_retraining_requests_every_cluster_once(hundred_clusters) -> None:
    defs, instance, _, keys = hundred_clusters
    assert len(keys) == CLUSTERS
    (request,), _ = evaluate(defs, "retrain_after_clustering", instance, "0")
    assert backfill_target(request) == {asset: sorted(keys) for asset in CLUSTER_ASSETS}
    assert request.tags[GPU_TAG_KEY] == "true"


def test_refresh_requests_each_trained_cluster_once_per_history_version(hundred_clusters) -> None:
    defs, instance, _, keys = hundred_clusters
    (request,), cursor = evaluate(defs, "refresh_after_new_sales", instance, None)
    # The last cluster has no model: there is nothing to refresh it with.
    assert backfill_target(request) == {asset: sorted(keys[:-1]) for asset in REFRESH_ASSETS}
    assert request.tags[GPU_TAG_KEY] == "true"
    assert tick(defs, "refresh_after_new_sales", instance, cursor)[0] == []
    # A daemon that stored the backfill but not the cursor: the tick requests nothing again.
    add_backfill(instance, request, "refresh")
    done = instance.get_backfill("refresh").with_status(BulkActionStatus.COMPLETED_SUCCESS)
    instance.update_backfill(done)  # finished or not, it was requested
    assert tick(defs, "refresh_after_new_sales", instance, None)[0] == []


def test_publish_requests_one_run_for_all_clusters(hundred_clusters) -> None:
    defs, instance, _, _ = hundred_clusters
    requests, cursor = tick(defs, "publish_forecasts", instance, None)
    assert len(requests) == 1
    assert requests[0].partition_key is None
    assert tick(defs, "publish_forecasts", instance, cursor)[0] == []
