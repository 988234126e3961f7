"""Every plot renders a decodable PNG, reflects its input, and survives empty or tiny frames."""

from __future__ import annotations

import io
import sys

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from forecast_assets.core import plots
from forecast_assets.core.clustering import ClusterResult
from forecast_assets.core.plots import (
    cluster_summary_plot,
    error_by_step_plot,
    fold_metrics_plot,
    forecast_report_plot,
    forecast_vs_actual_plot,
    k_selection_plot,
    loss_curve_plot,
    prediction_quality_plot,
)
from forecast_assets.core.training.trainer import EpochRecord


def decode(png: bytes) -> np.ndarray:
    """Assert ``png`` is a real PNG of a sensible size and return its pixels."""
    assert png[:4] == b"\x89PNG"
    image = matplotlib.image.imread(io.BytesIO(png))
    assert image.ndim == 3
    assert image.shape[0] > 100
    assert image.shape[1] > 100
    return image


def differ(first: bytes, second: bytes) -> bool:
    a, b = decode(first), decode(second)
    return a.shape != b.shape or not np.array_equal(a, b)


def predictions_frame(n: int, noise: float, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    actual = rng.gamma(2.0, 5.0, size=n)
    return pd.DataFrame(
        {"sku": "a", "actual": actual, "forecast": actual + noise * rng.normal(size=n)}
    )


def history_and_forecast(
    skus: list[str], periods: int = 40, horizon: int = 7, quantiles: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(2)
    past_dates = pd.date_range("2024-01-01", periods=periods, freq="D")
    future_dates = pd.date_range(past_dates[-1] + pd.Timedelta(days=1), periods=horizon)
    history, forecast = [], []
    for i, sku in enumerate(skus):
        level = 10.0 * (i + 1)
        history.append(
            pd.DataFrame(
                {"sku": sku, "date": past_dates, "quantity": level + rng.normal(size=periods)}
            )
        )
        point = level + rng.normal(size=horizon)
        frame = pd.DataFrame(
            {
                "sku": sku,
                "date": future_dates,
                "forecast": point,
                "lower": point - 2,
                "upper": point + 2,
            }
        )
        if quantiles:
            frame["p10"], frame["p50"], frame["p90"] = point - 1.5, point, point + 1.5
        forecast.append(frame)
    return pd.concat(history, ignore_index=True), pd.concat(forecast, ignore_index=True)


def cluster_summary(mase: list[float]) -> pd.DataFrame:
    n = len(mase)
    return pd.DataFrame(
        {
            "cluster": [f"cluster_{i}" for i in range(n)],
            "mase": mase,
            "mase_seasonal_naive": [1.0] * n,
            "coverage": np.linspace(0.7, 0.95, n),
            "nominal": [0.9] * n,
        }
    )


# --- prediction quality --------------------------------------------------------------------


def test_quality_plot_perfect_and_noisy_forecasts_differ():
    perfect = prediction_quality_plot(predictions_frame(300, noise=0.0), "perfect")
    noisy = prediction_quality_plot(predictions_frame(300, noise=3.0), "noisy")
    assert differ(perfect, noisy)


def test_quality_plot_subsamples_large_inputs_deterministically(monkeypatch):
    assert plots.SCATTER_MAX_POINTS == 20_000
    monkeypatch.setattr(plots, "SCATTER_MAX_POINTS", 40)  # same code path, cheaper to draw
    frame = predictions_frame(100, noise=2.0)
    assert prediction_quality_plot(frame, "big") == prediction_quality_plot(frame, "big")


def test_quality_plot_ignores_non_finite_rows_and_extra_columns():
    frame = predictions_frame(50, noise=1.0)
    frame.loc[0, "forecast"] = np.nan
    frame.loc[1, "actual"] = np.inf
    frame["seasonal_naive"] = 1.0
    decode(prediction_quality_plot(frame, "with gaps"))


@pytest.mark.parametrize("n", [0, 1])
def test_quality_plot_empty_and_one_row(n):
    decode(prediction_quality_plot(predictions_frame(n, noise=1.0), "tiny"))


# --- error by step -------------------------------------------------------------------------


def by_step_frame(model: list[float]) -> pd.DataFrame:
    horizon = len(model)
    return pd.DataFrame(
        {
            "step": range(1, horizon + 1),
            "model": model,
            "seasonal_naive": np.linspace(2.0, 3.0, horizon),
        }
    )


def test_error_by_step_plot_reflects_the_errors():
    flat = error_by_step_plot(by_step_frame([1.0] * 7), "by step")
    rising = error_by_step_plot(by_step_frame(list(np.linspace(0.5, 4.0, 7))), "by step")
    assert differ(flat, rising)


def test_error_by_step_plot_uses_the_metric_attribute():
    frame = by_step_frame([1.0] * 7)
    default = error_by_step_plot(frame, "by step")
    frame.attrs["metric"] = "sMAPE (%)"
    assert differ(default, error_by_step_plot(frame, "by step"))


def test_error_by_step_plot_empty_and_one_row():
    decode(error_by_step_plot(pd.DataFrame({"step": [], "model": []}), "empty"))
    decode(error_by_step_plot(pd.DataFrame(), "no columns"))
    decode(error_by_step_plot(by_step_frame([1.0]), "one step"))


# --- fold metrics --------------------------------------------------------------------------


def test_fold_metrics_plot_reflects_the_folds():
    better = pd.DataFrame({"fold": [0, 1, 2], "model": [0.7, 0.8, 0.75], "seasonal_naive": 1.0})
    worse = better.assign(model=[1.4, 1.2, 1.6])
    assert differ(fold_metrics_plot(better, "folds"), fold_metrics_plot(worse, "folds"))


def test_fold_metrics_plot_accepts_origins():
    frame = pd.DataFrame(
        {
            "origin": ["2024-03-01", "2024-04-01", "2024-05-01"],
            "model": [0.9, 0.8, 1.1],
            "seasonal_naive": [1.0, 1.0, 1.0],
        }
    )
    decode(fold_metrics_plot(frame, "origins"))


def test_fold_metrics_plot_empty_and_one_row():
    decode(fold_metrics_plot(pd.DataFrame({"fold": [], "model": []}), "empty"))
    decode(fold_metrics_plot(pd.DataFrame({"fold": [0], "model": [0.9]}), "one fold"))


# --- forecast report -----------------------------------------------------------------------


def test_forecast_report_plot_renders_quantiles_and_reflects_the_forecast():
    history, forecast = history_and_forecast(["a", "b"], quantiles=True)
    plain = forecast_report_plot(history, forecast.drop(columns=["p10", "p50", "p90"]), "report")
    banded = forecast_report_plot(history, forecast, "report")
    assert differ(plain, banded)


def test_forecast_report_plot_limits_the_skus():
    history, forecast = history_and_forecast(["a", "b", "c"])
    few = decode(forecast_report_plot(history, forecast, "report", n_skus=1))
    many = decode(forecast_report_plot(history, forecast, "report", n_skus=3))
    assert many.shape[0] > few.shape[0]


def test_forecast_report_plot_empty_and_one_row():
    history, forecast = history_and_forecast(["a"], periods=5, horizon=1)
    decode(forecast_report_plot(history, forecast, "one row"))
    decode(forecast_report_plot(history.iloc[0:0], forecast, "no history"))
    decode(forecast_report_plot(history, forecast.iloc[0:0], "no forecast"))


# --- cluster summary -----------------------------------------------------------------------


def test_cluster_summary_plot_reflects_the_clusters():
    good = cluster_summary_plot(cluster_summary([0.6, 0.7, 0.8]), "clusters")
    bad = cluster_summary_plot(cluster_summary([1.5, 1.7, 1.2]), "clusters")
    assert differ(good, bad)


def test_cluster_summary_plot_mixed_nominal_levels():
    summary = cluster_summary([0.8, 0.9]).assign(nominal=[0.8, 0.9])
    decode(cluster_summary_plot(summary, "mixed nominal"))


def test_cluster_summary_plot_empty_and_one_row():
    decode(cluster_summary_plot(cluster_summary([]), "empty"))
    decode(cluster_summary_plot(cluster_summary([0.9]), "one cluster"))


# --- existing plots ------------------------------------------------------------------------


def cluster_result(k: int) -> ClusterResult:
    ks = [2, 3, 4, 5]
    return ClusterResult(
        assignments=pd.Series([f"cluster_{i % k}" for i in range(10)]),
        k=k,
        elbow_k=3,
        inertia={j: 100.0 / j for j in ks},
        davies_bouldin={j: 0.5 + 0.1 * j for j in ks},
        smallest_cluster={j: 2 for j in ks},
    )


def test_k_selection_plot_marks_the_chosen_k():
    assert differ(k_selection_plot(cluster_result(2)), k_selection_plot(cluster_result(4)))


def test_loss_curve_plot_reflects_the_history():
    history = [EpochRecord(epoch, 1.0 / epoch, 1.2 / epoch, 0.1) for epoch in range(1, 6)]
    first = loss_curve_plot(history, best_epoch=5)
    assert differ(first, loss_curve_plot(history, best_epoch=2))
    decode(loss_curve_plot(history[:1], best_epoch=1))


def test_forecast_vs_actual_plot_renders_and_survives_empty_predictions():
    history, forecast = history_and_forecast(["a", "b"])
    predictions = forecast.assign(actual=forecast["forecast"] + 1, seasonal_naive=10.0)
    decode(forecast_vs_actual_plot(predictions, history, "held out"))
    decode(forecast_vs_actual_plot(predictions.iloc[0:0], history, "empty"))


@pytest.mark.parametrize("scipy_available", [True, False])
def test_normal_quantiles_with_and_without_scipy(monkeypatch, scipy_available):
    if not scipy_available:
        monkeypatch.setitem(sys.modules, "scipy.stats", None)  # import now raises ImportError
    quantiles = plots._normal_quantiles(np.array([0.025, 0.5, 0.975]))
    np.testing.assert_allclose(quantiles, [-1.959964, 0.0, 1.959964], atol=1e-5)
