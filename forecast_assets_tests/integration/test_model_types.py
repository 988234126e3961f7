"""The whole graph with every model family, served through onnxruntime like through torch."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast_assets.core.inference.forecast import FORECAST_COLUMNS, forecast_cluster
from forecast_assets.definitions import build_definitions
from forecast_assets.demo import run_graph

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("model_type", "per_cluster"),
    [
        pytest.param("standard", {}, id="standard"),
        pytest.param("advanced", {}, id="advanced"),
        # One family for the run, another for one cluster by override.
        pytest.param("mixer", {"cluster_1": {"type": "lightweight"}}, id="mixer+lightweight"),
        pytest.param("ensemble", {}, id="ensemble"),
    ],
)
def test_whole_graph_trains_serves_and_forecasts_with_each_model_type(
    write_settings, instance, tmp_path: Path, model_type: str, per_cluster: dict
) -> None:
    settings_file = write_settings(
        {
            "model": {"type": model_type, "per_cluster": per_cluster},
            "clustering": {"k_min": 2, "k_max": 2},
            "pool": {"enabled": False},  # the family alone serves its cluster
        }
    )
    defs = build_definitions(str(settings_file))
    keys = run_graph(defs, instance)
    assert keys == ["cluster_0", "cluster_1"]

    table = pd.read_parquet(tmp_path / "output" / "forecasts.parquet")
    expected_types = {key: per_cluster.get(key, {}).get("type", model_type) for key in keys}
    assert dict(table.groupby("cluster")["model"].unique().map(list)) == {
        key: [family] for key, family in expected_types.items()
    }
    assert np.isfinite(table["forecast"]).all() and (table["lower"] <= table["upper"]).all()

    for key in keys:
        model = defs.load_asset_value("cluster_model", partition_key=key, instance=instance).model
        assert model.model_type == expected_types[key]
        assert model.onnx is not None, f"{key} has no ONNX export"
        assert (tmp_path / "output" / "models" / f"{key}.onnx").is_file()
        inputs = {
            name: defs.load_asset_value(name, partition_key=key, instance=instance)
            for name in ("encoded_features", "scalers", "evaluation_report")
        }
        served = forecast_cluster(
            key,
            model,
            inputs["encoded_features"],
            inputs["scalers"],
            inputs["evaluation_report"].intervals,
            engine="onnxruntime",
        )
        eager = forecast_cluster(
            key,
            model,
            inputs["encoded_features"],
            inputs["scalers"],
            inputs["evaluation_report"].intervals,
            engine="torch",
        )
        numeric = [c for c in served.columns if c not in FORECAST_COLUMNS] + ["forecast"]
        np.testing.assert_allclose(served[numeric], eager[numeric], rtol=1e-4, atol=1e-3)
        published = table[table["cluster"] == key].sort_values(["sku", "date"])
        np.testing.assert_allclose(
            published["forecast"], served.sort_values(["sku", "date"])["forecast"], rtol=1e-6
        )

    if model_type == "advanced":
        # Quantile heads: one column per quantile, ordered, the point forecast is the median.
        assert {"p10", "p50", "p90"} <= set(table.columns)
        assert (table["p10"] <= table["p50"] + 1e-6).all()
        assert (table["p50"] <= table["p90"] + 1e-6).all()
        np.testing.assert_allclose(table["forecast"], table["p50"])
        for key in keys:
            report = defs.load_asset_value(
                "evaluation_report", partition_key=key, instance=instance
            )
            assert report.quantile_band == (0.1, 0.9)
            assert 0.0 <= report.quantile_coverage <= 1.0
            assert "Quantile heads 0.1..0.9 cover" in report.to_markdown()
    lightweight = [k for k, family in expected_types.items() if family in ("lightweight", "mixer")]
    for key in lightweight:
        assert (tmp_path / "output" / "models" / f"{key}.torchscript.pt").is_file()
