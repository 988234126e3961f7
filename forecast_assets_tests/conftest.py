"""Shared fixtures: small settings files and real temporary Dagster instances."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from forecast_assets.settings import deep_merge

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


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
    import os

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
