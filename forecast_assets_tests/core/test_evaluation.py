"""Rolling-origin backtest, the accuracy gate, and the forecast table's checks."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from forecast_assets.core.data.encoding import CategoricalEncoder
from forecast_assets.core.data.features import build_features, fit_scalers, period_split
from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.data.scaling import ScalerManager
from forecast_assets.core.data.windows import EncodedPanel, PeriodSplit
from forecast_assets.core.errors import InsufficientDataError, ModelNotFoundError
from forecast_assets.core.evaluation import (
    accuracy_gate,
    combined_markdown,
    combined_summary,
    evaluate_cluster,
    run_backtest,
)
from forecast_assets.core.inference.forecast import (
    FORECAST_COLUMNS,
    forecast_completeness_problems,
)
from forecast_assets.core.metrics import seasonal_naive_forecast
from forecast_assets.core.models.artifact import (
    ClusterModel,
    RefitInfo,
    TrainingResult,
    load_cluster_model,
    save_cluster_model,
    seasonal_naive_model,
)
from forecast_assets.core.models.registry import build_model

SEASON = 7
HORIZON = 7
WINDOW = 21
N_SKUS = 12
N_PERIODS = 140


def weekly_panel(n_skus: int = N_SKUS, periods: int = N_PERIODS, seed: int = 0) -> SalesPanel:
    """Level x weekly profile + noise; two SKUs start late."""
    rng = np.random.default_rng(seed)
    t = np.arange(periods)
    level = rng.uniform(5, 50, size=(n_skus, 1))
    profile = 1 + 0.5 * np.sin(2 * np.pi * t / SEASON)[None, :]
    values = np.maximum(level * profile + rng.normal(0, 2, size=(n_skus, periods)), 0)
    values[0, :30] = np.nan
    values[1, :60] = np.nan
    skus = pd.Index([f"s{i:02d}" for i in range(n_skus)], name="sku")
    attributes = pd.DataFrame({"store": ["a", "b"] * (n_skus // 2)}, index=skus)
    dates = pd.date_range("2024-01-01", periods=periods, freq="D")
    return SalesPanel(values=values, skus=skus, dates=dates, freq="D", attributes=attributes)


def encode(
    panel: SalesPanel, folds: int = 3, step: int = 3, validation: int = 14
) -> tuple[EncodedPanel, ScalerManager]:
    split = period_split(panel, HORIZON, validation, folds, step)
    scalers = fit_scalers(panel, split)
    encoder = CategoricalEncoder(onehot_columns=["store"])
    return build_features(panel, scalers, encoder, WINDOW, HORIZON, split), scalers


def as_cluster_model(module, encoded: EncodedPanel, trained_at: str) -> ClusterModel:
    return ClusterModel(
        model_type="lightweight",
        hyperparameters=dict(module.hyperparameters),
        state_dict={k: v.detach().clone() for k, v in module.state_dict().items()},
        skus=list(encoded.skus),
        trained_at=trained_at,
        training=TrainingResult(
            best_epoch=1, best_validation_loss=0.0, stopped_early=False, device="cpu"
        ),
    )


def untrained_lightweight(encoded: EncodedPanel, trained_at: str = "2026-01-01T00:00:00+00:00"):
    torch.manual_seed(0)
    module = build_model(
        "lightweight",
        n_skus=encoded.n_skus,
        n_static=encoded.n_static_features,
        n_time_features=encoded.n_time_features,
        window=encoded.window,
        horizon=encoded.horizon,
        season_length=SEASON,
    )
    return as_cluster_model(module, encoded, trained_at)


def sabotaged(model: ClusterModel, shift: float = 1e4) -> ClusterModel:
    """The same model with its output shifted by ``shift`` scaled units: far off everywhere."""
    broken = copy.deepcopy(model)
    broken.state_dict["autoregressive.bias"] = broken.state_dict["autoregressive.bias"] + shift
    broken.trained_at = "2026-02-02T00:00:00+00:00"
    return broken


# --- the split ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("folds", "step", "validation"), [(1, 1, 14), (3, 3, 14), (4, 7, 7), (2, 1, 10), (5, 2, 21)]
)
def test_no_training_or_validation_target_reaches_a_backtest_fold(folds, step, validation):
    encoded, _ = encode(weekly_panel(), folds, step, validation)
    split = encoded.split
    fold_targets = {
        (int(row), int(origin) + h)
        for row, origin in zip(encoded.test.rows, encoded.test.origins, strict=True)
        for h in range(HORIZON)
    }
    for windows in (encoded.train, encoded.validation):
        targets = {
            (int(row), int(origin) + h)
            for row, origin in zip(windows.rows, windows.origins, strict=True)
            for h in range(HORIZON)
        }
        assert not targets & fold_targets
        assert max(windows.origins) + HORIZON <= split.test_start
    assert max(encoded.train.origins) + HORIZON <= split.train_end
    # The scalers are fitted before the validation periods (split.train_end), too.
    assert split.fold_origins == [split.test_start + f * step for f in range(folds)]
    assert split.fold_origins[-1] == N_PERIODS - HORIZON


def test_backtest_windows_are_every_sku_at_every_fold_origin():
    encoded, _ = encode(weekly_panel(), folds=3, step=3)
    origins = sorted(set(encoded.test.origins.tolist()))
    assert origins == [N_PERIODS - 13, N_PERIODS - 10, N_PERIODS - 7]
    assert len(encoded.test) == 3 * N_SKUS


def test_split_too_short_for_the_backtest_is_refused():
    with pytest.raises(InsufficientDataError, match="3 folds"):
        PeriodSplit(n_periods=30, horizon=7, validation_periods=14, folds=3, step=5).check()


# --- the backtest ---------------------------------------------------------------------


def test_seasonal_naive_model_repeats_the_last_season():
    encoded, scalers = encode(weekly_panel())
    naive = seasonal_naive_model(encoded, SEASON)
    tested = run_backtest(naive, encoded, scalers, SEASON)
    # Its backtest forecasts are exactly the seasonal naive forecasts of the metrics module.
    np.testing.assert_allclose(
        tested.predictions["forecast"], tested.predictions["seasonal_naive"], atol=1e-6 * 50
    )
    assert tested.relative_mase == pytest.approx(1.0, abs=1e-6)
    origin = encoded.split.test_origin
    history = encoded.raw[2:3, :origin]
    expected = seasonal_naive_forecast(history, HORIZON, SEASON)[0]
    last = tested.predictions[(tested.predictions["sku"] == "s02")]
    last = last[last["fold"] == 2]
    np.testing.assert_allclose(last["forecast"], expected, rtol=1e-5)


def test_backtest_reports_per_fold_step_and_sku():
    encoded, scalers = encode(weekly_panel())
    model = untrained_lightweight(encoded)
    tested = run_backtest(model, encoded, scalers, SEASON)
    assert list(tested.by_fold["fold"]) == [0, 1, 2]
    assert list(tested.by_fold["origin"]) == list(encoded.dates[encoded.split.fold_origins])
    assert list(tested.by_step["step"]) == list(range(1, HORIZON + 1))
    assert set(tested.by_sku.index) == set(encoded.skus)
    assert len(tested.predictions) == 3 * N_SKUS * HORIZON
    # Mean over folds, fold by fold.
    assert tested.metrics["mase"] == pytest.approx(tested.by_fold["mase"].mean())
    assert tested.baseline["mase"] == pytest.approx(tested.by_fold["mase_seasonal_naive"].mean())
    # Each prediction's actual is the panel's value at its date.
    row = tested.predictions.iloc[-1]
    sku_row = list(encoded.skus).index(row["sku"])
    period = list(encoded.dates).index(row["date"])
    assert row["actual"] == pytest.approx(encoded.raw[sku_row, period])


def test_evaluation_measures_interval_coverage_on_the_backtest():
    encoded, scalers = encode(weekly_panel())
    naive = seasonal_naive_model(encoded, SEASON)
    tested = run_backtest(naive, encoded, scalers, SEASON)
    report = evaluate_cluster("cluster_0", naive, tested, encoded, scalers, confidence=0.9)
    assert "lower" not in tested.predictions  # the gate's backtest is left as it was
    inside = (report.predictions["actual"] >= report.predictions["lower"]) & (
        report.predictions["actual"] <= report.predictions["upper"]
    )
    assert report.coverage == pytest.approx(inside.mean())
    assert len(report.coverage_by_fold) == 3
    assert report.interval_width > 0
    markdown = report.to_markdown()
    assert "Rolling-origin backtest: 3 fold(s)" in markdown
    assert "| fold | origin |" in markdown
    summary = combined_summary({"cluster_0": report})
    assert summary.loc[0, "mase"] == pytest.approx(report.metrics["mase"])
    assert "cluster_0" in combined_markdown({"cluster_0": report})


# --- the gate -------------------------------------------------------------------------


def test_gate_rejects_a_bad_model_and_serves_seasonal_naive_without_a_previous_one():
    encoded, scalers = encode(weekly_panel())
    bad = sabotaged(untrained_lightweight(encoded))
    served, decision, tested = accuracy_gate(bad, None, encoded, scalers, SEASON, threshold=1.0)
    assert not decision.promoted and decision.served == "seasonal_naive"
    assert served.model_type == "seasonal_naive"
    assert decision.candidate_relative_mase > 100
    assert "rejected" in decision.reason and "seasonal naive serves" in decision.reason
    assert tested.relative_mase == pytest.approx(1.0, abs=1e-6)


def test_gate_keeps_the_previous_model_when_the_new_one_is_worse():
    encoded, scalers = encode(weekly_panel())
    previous = untrained_lightweight(encoded)
    previous_relative = run_backtest(previous, encoded, scalers, SEASON).relative_mase
    threshold = previous_relative * 2  # the previous model passes this gate, the bad one not
    bad = sabotaged(previous)
    served, decision, _ = accuracy_gate(bad, previous, encoded, scalers, SEASON, threshold)
    assert decision.served == "previous" and served is previous
    assert decision.previous_trained_at == previous.trained_at
    assert previous.trained_at in decision.reason


def test_gate_promotes_a_model_below_the_threshold():
    encoded, scalers = encode(weekly_panel())
    candidate = untrained_lightweight(encoded)
    relative = run_backtest(candidate, encoded, scalers, SEASON).relative_mase
    served, decision, _ = accuracy_gate(
        candidate, None, encoded, scalers, SEASON, threshold=relative * 1.01
    )
    assert decision.promoted and served is candidate
    _, refused, _ = accuracy_gate(candidate, None, encoded, scalers, SEASON, threshold=relative)
    assert not refused.promoted  # the gate asks for strictly below


def test_gate_ignores_a_previous_model_of_other_skus_or_one_that_fails_too():
    encoded, scalers = encode(weekly_panel())
    other_encoded, _ = encode(weekly_panel(n_skus=10))
    foreign = untrained_lightweight(other_encoded)
    bad = sabotaged(untrained_lightweight(encoded))
    _, decision, _ = accuracy_gate(bad, foreign, encoded, scalers, SEASON, threshold=1.0)
    assert decision.served == "seasonal_naive" and "other SKUs" in decision.reason
    _, decision, _ = accuracy_gate(bad, sabotaged(bad), encoded, scalers, SEASON, threshold=1.0)
    assert decision.served == "seasonal_naive" and "does not pass either" in decision.reason


def test_served_model_round_trips_and_a_corrupt_file_is_named(tmp_path):
    encoded, _ = encode(weekly_panel())
    model = untrained_lightweight(encoded)
    path = save_cluster_model(tmp_path / "cluster_0.served.pt", model)
    loaded = load_cluster_model(path)
    assert loaded.trained_at == model.trained_at and loaded.fits(encoded)
    assert load_cluster_model(tmp_path / "none.pt") is None
    path.write_bytes(b"not a model")
    with pytest.raises(ModelNotFoundError, match=r"cluster_0\.served\.pt"):
        load_cluster_model(path)


# --- forecast table checks ------------------------------------------------------------


def forecast_table(skus=("a", "b", "c"), horizon: int = 3) -> pd.DataFrame:
    dates = pd.date_range("2025-01-01", periods=horizon, freq="D")
    table = pd.DataFrame(
        {
            "sku": np.repeat(list(skus), horizon),
            "date": np.tile(dates, len(skus)),
            "forecast": 5.0,
            "lower": 3.0,
            "upper": 7.0,
            "cluster": "cluster_0",
            "model": "lightweight",
            "trained_at": pd.Timestamp("2025-01-01", tz="UTC"),
        }
    )
    return table[list(FORECAST_COLUMNS)]


ASSIGNMENTS = pd.Series("cluster_0", index=pd.Index(["a", "b", "c"], name="sku"))


def test_a_complete_forecast_table_has_no_problems():
    table = forecast_table()
    assert forecast_completeness_problems(table, ASSIGNMENTS, horizon=3) == []


def test_completeness_check_fires_on_a_missing_sku_and_a_duplicate():
    missing = forecast_table(skus=("a", "b"))
    problems = forecast_completeness_problems(missing, ASSIGNMENTS, horizon=3)
    assert (
        problems and "1 clustered SKU(s) have no forecast" in problems[0] and "'c'" in problems[0]
    )
    doubled = pd.concat([forecast_table(), forecast_table().iloc[:1]])
    assert any(
        "more than once" in p for p in forecast_completeness_problems(doubled, ASSIGNMENTS, 3)
    )
    short = forecast_table().iloc[1:]
    assert any("lack some" in p for p in forecast_completeness_problems(short, ASSIGNMENTS, 3))


# --- refit ----------------------------------------------------------------------------


def test_refit_learns_from_every_period_and_is_judged_by_its_candidate():
    from forecast_assets.core.training.cluster_model import refit_cluster_model, train_cluster_model
    from forecast_assets.core.training.trainer import TrainingConfig

    encoded, scalers = encode(weekly_panel())
    everything = encoded.all_windows()
    last_target = everything.origins.max() + HORIZON
    assert last_target == N_PERIODS  # the refit sees the last period...
    assert len(everything) > len(encoded.train) + len(encoded.validation)  # ...and the backtest
    config = TrainingConfig(epochs=3, batch_size=64, max_windows_per_epoch=256, seed=1)
    options = {"channels": 8, "season_length": SEASON}
    candidate = train_cluster_model(encoded, "lightweight", options, config)
    refit = refit_cluster_model(candidate, encoded, options, config)
    assert refit.refit_from is candidate and refit.evaluated is candidate
    assert refit.refit == RefitInfo(epochs=candidate.training.best_epoch, windows=len(everything))
    assert len(refit.training.history) == candidate.training.best_epoch
    changed = [
        k for k in refit.state_dict if not torch.equal(refit.state_dict[k], candidate.state_dict[k])
    ]
    assert changed
    tested = run_backtest(candidate, encoded, scalers, SEASON)
    judged = evaluate_cluster("c", refit, tested, encoded, scalers, confidence=0.9)
    direct = evaluate_cluster("c", candidate, tested, encoded, scalers, confidence=0.9)
    assert judged.metrics == direct.metrics and judged.coverage == direct.coverage
    assert judged.refit is not None and "refit on all the data" in judged.to_markdown()
    naive = seasonal_naive_model(encoded, SEASON)
    with pytest.raises(ValueError, match="backtest is of a seasonal_naive model"):
        evaluate_cluster(
            "c", refit, run_backtest(naive, encoded, scalers, SEASON), encoded, scalers, 0.9
        )
