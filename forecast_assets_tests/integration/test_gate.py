"""The accuracy gate in the graph: a sabotaged retraining never replaces the served model."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from forecast_assets.core.training import serve
from forecast_assets.definitions import build_definitions
from forecast_assets.demo import run_graph

pytestmark = pytest.mark.integration

ONE_MODEL = {"pool": {"enabled": False}}

SHIFT = 1e5  # scaled units added to every output: far worse than seasonal naive


def sabotage_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, every trained model comes out with its output shifted by SHIFT."""
    real = serve.train_cluster_model

    def broken(*args, **kwargs):
        model = real(*args, **kwargs)
        bias = model.state_dict["autoregressive.bias"]
        model.state_dict["autoregressive.bias"] = bias + SHIFT
        return model

    monkeypatch.setattr(serve, "train_cluster_model", broken)


def gate_result(instance: dg.DagsterInstance) -> dg.AssetCheckEvaluation:
    key = dg.AssetCheckKey(dg.AssetKey("cluster_model"), "accuracy_gate")
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    return record.event.dagster_event.event_specific_data


def test_a_worse_model_does_not_replace_the_served_one(
    write_settings, instance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The gate of one model per cluster; with the pool, what serves is chosen per SKU.
    defs = build_definitions(str(write_settings(ONE_MODEL)))
    keys = run_graph(defs, instance)
    key, other = keys[0], keys[1]
    models = tmp_path / "output" / "models"
    first = defs.load_asset_value("cluster_model", partition_key=key, instance=instance).model
    first_forecast = defs.load_asset_value("forecast_table", partition_key=key, instance=instance)
    served_file = (models / f"{key}.served.pt").read_bytes()
    onnx_file = (models / f"{key}.onnx").read_bytes()
    assert gate_result(instance).passed

    sabotage_training(monkeypatch)
    rerun = defs.resolve_job_def("train_job").execute_in_process(
        instance=instance, partition_key=key
    )
    assert rerun.success

    # The check says what happened and why.
    check = gate_result(instance)
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert "rejected" in check.description and first.trained_at in check.description
    assert check.metadata["served"].value == "previous"
    assert check.metadata["candidate_relative_mase"].value > 1000

    # The previous model still serves: as the asset's value, on disk, and in the forecast.
    outcome = defs.load_asset_value("cluster_model", partition_key=key, instance=instance)
    served = outcome.model
    assert outcome.gate.served == "previous"
    assert served.trained_at == first.trained_at and served.model_type == first.model_type
    assert (models / f"{key}.served.pt").read_bytes() == served_file
    assert (models / f"{key}.onnx").read_bytes() == onnx_file
    forecast = defs.load_asset_value("forecast_table", partition_key=key, instance=instance)
    pd.testing.assert_frame_equal(forecast, first_forecast)
    report = defs.load_asset_value("evaluation_report", partition_key=key, instance=instance)
    assert report.gate.served == "previous"
    # The report's figures are the gate's backtest of the model that serves, not a rerun.
    assert report.metrics == outcome.backtest.metrics
    assert report.backtest.relative_mase == outcome.gate.previous_relative_mase

    # With no model that served before, the cluster falls back to seasonal naive.
    (models / f"{other}.served.pt").unlink()
    again = defs.resolve_job_def("train_job").execute_in_process(
        instance=instance, partition_key=other
    )
    assert again.success
    check = gate_result(instance)
    assert not check.passed and check.metadata["served"].value == "seasonal_naive"
    forecast = defs.load_asset_value("forecast_table", partition_key=other, instance=instance)
    assert set(forecast["model"]) == {"seasonal_naive"}
    assert forecast["forecast"].max() < 1000  # nothing of the broken model leaks out
    assert not (models / f"{other}.served.pt").exists()

    # The published table refreshes with both fallbacks and passes its checks.
    assert defs.resolve_job_def("forecasts_job").execute_in_process(instance=instance).success
    table = pd.read_parquet(tmp_path / "output" / "forecasts.parquet")
    assert set(table.loc[table["cluster"] == other, "model"]) == {"seasonal_naive"}
    assert set(table.loc[table["cluster"] == key, "trained_at"]) == {pd.Timestamp(first.trained_at)}


def test_refit_serves_a_model_of_all_the_data_judged_by_its_candidate(
    write_settings, instance, tmp_path: Path
) -> None:
    settings = write_settings(
        {**ONE_MODEL, "training": {"refit": True}, "clustering": {"k_max": 2}}
    )
    defs = build_definitions(str(settings))
    keys = run_graph(defs, instance)
    for key in keys:
        outcome = defs.load_asset_value("cluster_model", partition_key=key, instance=instance)
        served = outcome.model
        encoded = defs.load_asset_value("encoded_features", partition_key=key, instance=instance)
        candidate = served.refit_from
        assert candidate is not None and candidate.trained_at == outcome.candidate.trained_at
        assert served.refit.windows == len(encoded.all_windows())
        assert served.trained_at >= candidate.trained_at
        report = defs.load_asset_value("evaluation_report", partition_key=key, instance=instance)
        assert report.refit == served.refit
        # Judged by the candidate's backtest, the one the gate ran.
        assert outcome.backtest.model_type == candidate.model_type
        assert report.metrics == outcome.backtest.metrics
        # The published forecast is the refit model's, served through its own ONNX export.
        assert served.onnx is not None and served.onnx != candidate.onnx
        table = defs.load_asset_value("forecast_table", partition_key=key, instance=instance)
        assert set(table["trained_at"]) == {pd.Timestamp(served.trained_at)}
