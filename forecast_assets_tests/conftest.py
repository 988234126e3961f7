"""Shared fixtures: small settings files and real temporary Dagster instances."""

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import torch
import yaml

from forecast_assets.settings import deep_merge

# pytest-xdist runs one worker per core: torch's own thread pool in each would ask for every
# core again, and the oversubscribed workers would be slower than one. One thread per
# worker, also for the processes a test starts (`dagster dev`, its runs).
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# The design's assets, written out so that an asset dropped from the Definitions fails tests.
DESIGN_ASSETS = [
    "raw_sales",
    "resampled_series",
    "metafeatures",
    "clusters",
    "scalers",
    "tuned_hyperparameters",
    "encoded_features",
    "cluster_model",
    "evaluation_report",
    "forecast_table",
    "forecasts",
    "evaluation_summary",
]


def small_settings(output_dir: Path) -> dict[str, Any]:
    """Settings for a graph run that takes seconds: few SKUs, short history, few epochs."""
    return {
        "data": {
            "date_column": "date",
            "sku_columns": ["sku"],
            "quantity_column": "quantity",
            "categorical_columns": ["store", "category"],
            "multilabel_columns": ["tags"],
            "example": {"n_skus": 40, "periods": 330, "start": "2024-01-01"},
        },
        "timeseries": {"freq": "D", "window": 28, "horizon": 7, "min_history": 60},
        "training": {"epochs": 3, "batch_size": 128, "patience": 2, "max_windows_per_epoch": 1024},
        "model": {"lightweight": {"channels": 16, "levels": 3}},
        "clustering": {"k_min": 2, "k_max": 3, "min_cluster_size": 3},
        # Three-epoch models are not judged here: the gate lets them serve so that these
        # tests see the configured model; the gate's own tests set the real threshold.
        "evaluation": {"max_relative_mase": 1000.0},
        "output": {"dir": str(output_dir)},
        "seed": 7,
        "device": "cpu",
    }


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that start `dagster dev` first: they spend most of their minutes waiting on
    the daemon, so under pytest-xdist the other worker runs the rest meanwhile instead of
    leaving them for the end."""
    items.sort(key=lambda item: item.get_closest_marker("daemon") is None)  # stable sort


@pytest.fixture
def write_settings(tmp_path: Path) -> Callable[..., Path]:
    """Write a small settings YAML (with optional nested overrides) and return its path."""

    def write(changes: dict[str, Any] | None = None, name: str = "settings.yaml") -> Path:
        content = deep_merge(small_settings(tmp_path / "output"), changes or {})
        path = tmp_path / name
        path.write_text(yaml.safe_dump(content))
        return path

    return write


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A real, temporary Dagster instance (SQLite storage in a temp folder)."""
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's own FORECAST_* environment."""
    for name in list(os.environ):
        if name.startswith("FORECAST_"):
            monkeypatch.delenv(name)


def tick(defs: dg.Definitions, name: str, instance: dg.DagsterInstance, cursor: str | None):
    """One evaluation of a sensor, called the way the daemon calls it: returns the run
    requests and the cursor the daemon would store."""
    sensor = defs.resolve_sensor_def(name)
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    result = sensor(context)
    if isinstance(result, dg.SensorResult):
        return list(result.run_requests or []), result.cursor or cursor
    if isinstance(result, dg.RunRequest):
        return [result], cursor
    return list(result or []) if isinstance(result, list) else [], cursor


def backfill_target(request: dg.RunRequest) -> dict[str, list[str]]:
    """Asset name -> the cluster partitions a backfill request covers."""
    assert request.requires_backfill_daemon(), "a run, not one backfill"
    subsets = request.asset_graph_subset.partitions_subsets_by_asset_key
    return {
        key.to_user_string(): sorted(subset.get_partition_keys()) for key, subset in subsets.items()
    }


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API on 127.0.0.1 (moto's server) for the object-storage tests."""
    import logging
    import socket

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """A new empty bucket; returns its ``s3://`` URL and the storage options that reach it."""
    import re

    import boto3

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-") or "bucket"
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **credentials)
    client.create_bucket(Bucket=name)
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
    }
    return f"s3://{name}", options
