"""The pool of forecasters: statistical members, the choice per SKU, the honest figures."""

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.errors import ConfigurationError, ModelNotFoundError
from forecast_assets.core.pool.pool import PoolOptions, forecast_pool, judge_pool
from forecast_assets.core.pool.selection import (
    ENSEMBLE,
    SelectionOptions,
    SkuChoice,
    choose,
    keep_previous,
    pool_backtest,
)
from forecast_assets.core.pool.statistical import (
    AUTO_ETS,
    INTERMITTENT,
    NAIVE,
    SEASONAL_NAIVE,
    THETA,
    DemandShape,
    StatisticalCandidates,
    statistical_members,
)
from forecast_assets.core.pool.stored import load_choice, save_choice

STATISTICAL_ONLY = PoolOptions(boosted=False, neural=False)
DEFAULT_SELECTION = PoolOptions().selection()


def make_panel(values: np.ndarray, freq: str = "W-FRI") -> SalesPanel:
    skus = pd.Index([f"s{i}" for i in range(len(values))])
    dates = pd.date_range("2022-01-07", periods=values.shape[1], freq=freq)
    return SalesPanel(values.astype(float), skus, dates, freq, pd.DataFrame(index=skus))


def seasonal_panel(n_skus: int = 12, periods: int = 60, season: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(periods)
    level = rng.uniform(20, 200, size=(n_skus, 1))
    pattern = 1 + 0.5 * np.sin(2 * np.pi * t / season)[None, :]
    noise = rng.normal(0, 0.05, size=(n_skus, periods))
    return make_panel(np.maximum(level * (pattern + noise), 0))


class FixedGroup:
    """Candidates whose forecasts are given: f(values, origin, horizon) per name."""

    def __init__(self, **rules) -> None:
        self.rules = rules

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.rules)

    def forecast(self, panel: SalesPanel, origins: Sequence[int], horizon: int):
        out = {}
        for name, rule in self.rules.items():
            out[name] = np.stack([rule(panel.values, o, horizon) for o in origins])
        return out


def truth(values, origin, horizon):
    """A look-ahead oracle, only for tests: what actually sold (0 beyond the data)."""
    stop = min(origin + horizon, values.shape[1])
    future = np.zeros((len(values), horizon))
    future[:, : stop - origin] = values[:, origin:stop]
    return future


def last_value(values, origin, horizon):
    return np.repeat(values[:, origin - 1 : origin], horizon, axis=1)


def test_statistical_members_forecast_only_from_the_history_before_each_origin() -> None:
    panel = seasonal_panel()
    origins, horizon = [40, 44, 48], 4
    members = (NAIVE, SEASONAL_NAIVE, THETA, "zero")
    before = StatisticalCandidates(members, season=4).forecast(panel, origins, horizon)
    changed = panel.values.copy()
    changed[:, 44:] *= 10  # everything from the second origin on
    after = StatisticalCandidates(members, season=4).forecast(make_panel(changed), origins, horizon)
    for name in members:
        assert before[name].shape == (3, panel.n_skus, horizon)
        np.testing.assert_allclose(before[name][:2], after[name][:2])
        if name != "zero":
            assert not np.allclose(before[name][2], after[name][2])
    # Seasonal naive repeats the last season before the origin.
    np.testing.assert_allclose(before[SEASONAL_NAIVE][0], panel.values[:, 36:40])


def test_a_sku_without_history_before_an_origin_gets_no_forecast_there() -> None:
    values = seasonal_panel(n_skus=3).values
    values[0, :30] = np.nan  # starts at period 30
    out = StatisticalCandidates((NAIVE, THETA), season=4).forecast(make_panel(values), [20, 50], 4)
    assert np.isnan(out[NAIVE][0, 0]).all() and np.isfinite(out[NAIVE][0, 1:]).all()
    assert np.isfinite(out[THETA][1]).all()


def test_members_follow_the_demand_shape() -> None:
    regular = statistical_members(DemandShape(12, intermittent_share=0.0, median_length=60))
    assert AUTO_ETS in regular and not set(INTERMITTENT) & set(regular)
    # AutoETS only where its per-SKU search is cheap: a small cluster.
    large = DemandShape(12, intermittent_share=0.0, median_length=60, points=90_000)
    assert AUTO_ETS not in statistical_members(large) and THETA in statistical_members(large)
    sparse = statistical_members(DemandShape(season=12, intermittent_share=0.8, median_length=60))
    assert set(INTERMITTENT) <= set(sparse) and AUTO_ETS not in sparse
    # A season of 52 weeks makes AutoETS's search too dear; too short a history, no season.
    weekly = statistical_members(DemandShape(season=52, intermittent_share=0.0, median_length=40))
    assert AUTO_ETS not in weekly and SEASONAL_NAIVE not in weekly


def test_on_an_intermittent_cluster_an_intermittent_method_serves() -> None:
    rng = np.random.default_rng(3)
    demand = rng.poisson(2.0, size=(30, 72)) * (rng.random((30, 72)) < 0.15)
    panel = make_panel(demand, freq="MS")
    shape = DemandShape.of(panel.values, 12)
    assert shape.intermittent_share > 0.9
    origins = [54, 60, 66]
    groups = [StatisticalCandidates(statistical_members(shape), 12)]
    pool = judge_pool(panel, origins, 6, 12, groups, STATISTICAL_ONLY, confidence=0.9)
    weights = dict(zip(pool.backtest.names, pool.served.ensemble, strict=True))
    assert sum(weights[name] for name in INTERMITTENT) > 0.5, weights


def test_the_reported_choice_never_sees_the_scoring_fold() -> None:
    panel = seasonal_panel()
    origins, horizon = [40, 44, 48], 4

    def good_until_the_last_fold(values, origin, horizon):
        return truth(values, origin, horizon) * (1.0 if origin < 48 else 3.0)

    def good_only_on_the_last_fold(values, origin, horizon):
        return truth(values, origin, horizon) * (1.0 if origin == 48 else 0.3)

    group = FixedGroup(early=good_until_the_last_fold, late=good_only_on_the_last_fold)
    pool = judge_pool(panel, origins, horizon, 4, [group], STATISTICAL_ONLY, 0.9)
    assert pool.scoring_fold == 2
    # Chosen on folds 0 and 1 only: "early" serves in the reported choice, and the figures
    # are its (bad) scoring-fold error, not the perfect "late" it would pick with hindsight.
    assert pool.reported.describe() == "early 1"
    assert pool.scoring_metrics()["mase"] > 1.0
    # Changing everything about the scoring fold leaves the reported choice as it was.
    other = FixedGroup(early=good_until_the_last_fold, late=lambda v, o, h: truth(v, o, h) * 0.3)
    again = judge_pool(panel, origins, horizon, 4, [other], STATISTICAL_ONLY, 0.9)
    np.testing.assert_array_equal(again.reported.weights, pool.reported.weights)


def test_a_sabotaged_candidate_is_never_chosen() -> None:
    panel = seasonal_panel(n_skus=20)
    group = FixedGroup(
        naive=last_value,
        sabotaged=lambda v, o, h: truth(v, o, h) + 1e6,
        noisy_truth=lambda v, o, h: truth(v, o, h) * 1.1,
    )
    pool = judge_pool(panel, [40, 44, 48], 4, 4, [group], STATISTICAL_ONLY, 0.9)
    index = pool.backtest.names.index("sabotaged")
    for choice in (pool.served, pool.reported):
        assert choice.ensemble[index] == 0
        assert (choice.weights[:, index] == 0).all()
        assert "sabotaged" not in choice.labels
    result = forecast_pool(pool, panel, 4, [group])
    assert (result.forecast < 1e5).all()


def test_a_sku_leaves_its_cluster_only_with_evidence_from_every_fold() -> None:
    panel = seasonal_panel(n_skus=6)
    origins, horizon = [36, 40, 44, 48], 4

    def special(values, origin, horizon):
        out = truth(values, origin, horizon) * 1.5  # poor for most SKUs
        out[0] = truth(values, origin, horizon)[0]  # perfect for SKU 0 on every fold
        if origin != 40:  # better on average for SKU 1, but worse on one fold
            out[1] = truth(values, origin, horizon)[1]
        return out

    group = FixedGroup(base=lambda v, o, h: truth(v, o, h) * 1.2, special=special)
    backtest = pool_backtest(panel, origins, horizon, 4, group.forecast(panel, origins, horizon))
    choice = choose(backtest, range(4), SelectionOptions(ensemble_rounds=10, min_gain=0.1))
    assert choice.describe() == "base 1"
    assert choice.labels[0] == "special"
    assert (choice.labels[1:] == ENSEMBLE).all()


def test_greedy_ensemble_combines_complementary_candidates() -> None:
    panel = seasonal_panel(n_skus=10)
    group = FixedGroup(
        high=lambda v, o, h: truth(v, o, h) * 1.3, low=lambda v, o, h: truth(v, o, h) * 0.7
    )
    backtest = pool_backtest(panel, [40, 44, 48], 4, 4, group.forecast(panel, [40, 44, 48], 4))
    choice = choose(backtest, range(3), DEFAULT_SELECTION)
    np.testing.assert_allclose(choice.ensemble, [0.5, 0.5])
    combined = choice.combine(backtest.forecasts)
    np.testing.assert_allclose(combined, backtest.actual, rtol=1e-9)


def test_a_sku_with_three_observations_gets_a_forecast() -> None:
    values = seasonal_panel(n_skus=8).values
    values[0, :-3] = np.nan  # three periods of history
    panel = make_panel(values)
    groups = [StatisticalCandidates((NAIVE, SEASONAL_NAIVE, THETA), 4)]
    pool = judge_pool(panel, [48, 52, 56], 4, 4, groups, STATISTICAL_ONLY, 0.9)
    result = forecast_pool(pool, panel, 4, groups)
    assert np.isfinite(result.forecast).all()
    assert (result.lower <= result.forecast).all() and (result.forecast <= result.upper).all()
    assert result.labels[0]


def test_conformal_intervals_cover_near_the_nominal_share() -> None:
    rng = np.random.default_rng(5)
    level = rng.uniform(50, 100, size=(200, 1))
    values = level + rng.normal(0, 5, size=(200, 70))
    panel = make_panel(values)
    group = FixedGroup(mean=lambda v, o, h: np.repeat(level, h, axis=1))
    pool = judge_pool(panel, [52, 56, 60, 64], 6, 1, [group], STATISTICAL_ONLY, 0.9)
    assert 0.85 <= pool.scoring_metrics()["coverage"] <= 0.95


def test_pool_options_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="pool"):
        PoolOptions(min_gain=1.5)


def test_statistical_members_fit_only_the_recent_history_they_are_given() -> None:
    panel = seasonal_panel()
    members = (NAIVE, THETA)
    recent = StatisticalCandidates(members, season=4, max_history=16).forecast(panel, [48], 4)
    changed = panel.values.copy()
    changed[:, :32] *= 5  # only periods more than 16 before the origin
    again = StatisticalCandidates(members, season=4, max_history=16).forecast(
        make_panel(changed), [48], 4
    )
    everything = StatisticalCandidates(members, season=4).forecast(make_panel(changed), [48], 4)
    np.testing.assert_allclose(recent[THETA], again[THETA])
    assert not np.allclose(recent[THETA], everything[THETA])


def test_a_sku_keeps_what_served_it_unless_the_new_choice_wins() -> None:
    panel = seasonal_panel(n_skus=4)
    origins, horizon = [40, 44, 48], 4
    group = FixedGroup(
        good=lambda v, o, h: truth(v, o, h) * 1.05,
        poor=lambda v, o, h: truth(v, o, h) * 1.5,
    )
    backtest = pool_backtest(panel, origins, horizon, 4, group.forecast(panel, origins, horizon))
    new = choose(backtest, range(3), DEFAULT_SELECTION)
    assert new.describe() == "good 1"
    # Before: SKU 0 served by "poor", SKU 1 by a member that is gone, SKU 2 by "good", and
    # SKU 3 was not in the cluster.
    names = ("poor", "retired", "good")
    weights = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0, 0, 0]])
    previous = SkuChoice(
        names, np.array([0, 0, 1.0]), weights, np.array(["poor", "retired", "good", ""])
    )
    served, kept = keep_previous(backtest, new, previous, range(3))
    # "poor" loses to the new choice; "good" ties it and stays; nothing else can be kept.
    assert kept.tolist() == [False, False, True, False]
    assert served.labels[0] == ENSEMBLE and served.labels[2] == "good"
    # A previous choice that wins is kept.
    better = FixedGroup(good=lambda v, o, h: truth(v, o, h) * 1.3, poor=truth)
    backtest = pool_backtest(panel, origins, horizon, 4, better.forecast(panel, origins, horizon))
    worse_new = SkuChoice(
        ("good", "poor"), np.array([1.0, 0]), np.tile([1.0, 0], (4, 1)), np.full(4, ENSEMBLE)
    )
    served, kept = keep_previous(backtest, worse_new, previous, range(3))
    assert kept[0] and served.labels[0] == "poor"
    np.testing.assert_allclose(served.combine(backtest.forecasts)[:, 0], backtest.actual[:, 0])


def test_the_stored_choice_reads_back_for_todays_skus(tmp_path) -> None:
    choice = SkuChoice(
        ("naive", "theta"),
        np.array([0.3, 0.7]),
        np.array([[0.3, 0.7], [1.0, 0.0]]),
        np.array([ENSEMBLE, "naive"]),
    )
    path = tmp_path / "cluster_0.choice.json"
    save_choice(path, choice, pd.Index(["a", "b"]), "2026-01-01T00:00:00+00:00")
    again = load_choice(path, pd.Index(["b", "new", "a"]))
    np.testing.assert_allclose(again.weights, [[1.0, 0.0], [0.0, 0.0], [0.3, 0.7]])
    assert again.labels.tolist() == ["naive", "", ENSEMBLE]
    assert load_choice(tmp_path / "none.json", pd.Index(["a"])) is None
    path.write_text("{not json")
    with pytest.raises(ModelNotFoundError, match=r"cluster_0\.choice\.json"):
        load_choice(path, pd.Index(["a"]))
