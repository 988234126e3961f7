"""Demand-shape metafeatures and clustering SKUs by them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast_assets.core import clustering
from forecast_assets.core.clustering import (
    CLUSTERING_FEATURES,
    cluster_skus,
    compute_metafeatures,
    kneedle_elbow,
)
from forecast_assets.core.data.panel import SalesPanel


def panel_of(rows: dict[str, np.ndarray]) -> SalesPanel:
    skus = pd.Index(list(rows), name="sku")
    values = np.stack([np.asarray(v, dtype=float) for v in rows.values()])
    dates = pd.date_range("2020-01-05", periods=values.shape[1], freq="W-FRI")
    return SalesPanel(
        values=values, skus=skus, dates=dates, freq="W-FRI", attributes=pd.DataFrame(index=skus)
    )


# --- metafeatures ---------------------------------------------------------------------------


def test_constant_series() -> None:
    features = compute_metafeatures(panel_of({"flat": np.full(24, 5.0)}), season=4).loc["flat"]

    assert features["n_periods"] == 24
    assert features["level"] == pytest.approx(5.0)
    assert features["std"] == pytest.approx(0.0)
    assert features["cv"] == pytest.approx(0.0)
    assert features["zero_share"] == pytest.approx(0.0)
    assert features["adi"] == pytest.approx(1.0)
    assert features["trend"] == pytest.approx(0.0)
    assert features["seasonal_strength"] == pytest.approx(0.0)


def test_intermittent_series_by_hand() -> None:
    # NaN before the first sale do not count; 8 observed periods, 3 with demand.
    y = np.array([np.nan, np.nan, 4.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 6.0])

    features = compute_metafeatures(panel_of({"lumpy": y}), season=4).loc["lumpy"]

    assert features["n_periods"] == 8
    assert features["zero_share"] == pytest.approx(5 / 8)
    assert features["adi"] == pytest.approx(8 / 3)
    # level 12 / 8 = 1.5; squared deviations: 4 -> 6.25, 2 -> 0.25, 6 -> 20.25, five zeros
    # -> 5 * 2.25; population variance 38 / 8.
    level = 1.5
    variance = (6.25 + 0.25 + 20.25 + 5 * 2.25) / 8
    assert features["level"] == pytest.approx(level)
    assert features["cv"] == pytest.approx(np.sqrt(variance) / level)
    # Sizes 4, 2, 6: mean 4, population std sqrt(8/3): cv^2 = (8/3) / 16.
    assert features["cv2_nonzero"] == pytest.approx((8 / 3) / 16)


def test_seasonal_series_is_strongly_seasonal_and_noise_is_not() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(96)
    seasonal = 20.0 + 10.0 * np.sin(2 * np.pi * t / 12)
    noise = 20.0 + rng.normal(0.0, 3.0, size=96)

    features = compute_metafeatures(panel_of({"seasonal": seasonal, "noise": noise}), season=12)

    assert features.loc["seasonal", "seasonal_strength"] > 0.95
    assert features.loc["noise", "seasonal_strength"] < 0.4
    assert 0.0 <= features.loc["noise", "seasonal_strength"] <= 1.0


def test_seasonal_strength_needs_two_full_seasons() -> None:
    t = np.arange(20)  # fewer than 2 * 12 periods
    seasonal = 20.0 + 10.0 * np.sin(2 * np.pi * t / 12)

    features = compute_metafeatures(panel_of({"short": seasonal}), season=12)

    assert features.loc["short", "seasonal_strength"] == 0.0


def test_upward_trend_is_positive_and_relative_to_level() -> None:
    t = np.arange(10, dtype=float)
    up = 10.0 + t  # slope 1, level 14.5, length 10 -> trend 10 / 14.5
    down = 30.0 - 2.0 * t

    features = compute_metafeatures(panel_of({"up": up, "down": down}), season=4)

    assert features.loc["up", "trend"] == pytest.approx(10 / 14.5)
    assert features.loc["down", "trend"] < 0


def test_lag_one_autocorrelation_signs() -> None:
    alternating = np.tile([1.0, 3.0], 10)
    smooth = np.concatenate([np.full(10, 1.0), np.full(10, 3.0)])

    features = compute_metafeatures(panel_of({"alt": alternating, "smooth": smooth}), season=4)

    # Alternating: centered values -1, 1, ...: products -1 (19 of them) over sum of squares 20.
    assert features.loc["alt", "acf1"] == pytest.approx(-19 / 20)
    # Two plateaus: 18 products +1 and one -1 over 20.
    assert features.loc["smooth", "acf1"] == pytest.approx(17 / 20)


def test_metafeatures_have_one_row_per_sku_with_the_clustering_columns() -> None:
    panel = panel_of({"a": np.ones(8), "b": np.arange(8.0), "c": np.zeros(8)})

    features = compute_metafeatures(panel, season=4)

    assert list(features.index) == ["a", "b", "c"]
    assert set(CLUSTERING_FEATURES) <= set(features.columns)
    assert np.isfinite(features[list(CLUSTERING_FEATURES)].to_numpy()).all()


# --- kneedle elbow ----------------------------------------------------------------------------


def test_kneedle_elbow_on_a_known_curve() -> None:
    curve = {1: 100.0, 2: 20.0, 3: 15.0, 4: 12.0, 5: 10.0}

    # x normalized: 0, .25, .5, .75, 1; y normalized (y - 10) / 90: 1, .111, .056, .022, 0.
    # (1 - x) - y: 0, .639, .444, .228, 0 -> the bend is at k = 2.
    assert kneedle_elbow(curve) == 2


def test_kneedle_elbow_later_bend() -> None:
    curve = {2: 100.0, 3: 90.0, 4: 80.0, 5: 20.0, 6: 18.0, 7: 16.0}

    # x: 0, .2, .4, .6, .8, 1; y: 1, .881, .762, .048, .024, 0.
    # (1 - x) - y: 0, -.081, -.162, .352, .176, 0 -> k = 5.
    assert kneedle_elbow(curve) == 5


def test_kneedle_elbow_short_or_flat_curves() -> None:
    assert kneedle_elbow({2: 10.0, 3: 5.0}) == 3  # too short to bend: largest k
    assert kneedle_elbow({2: 5.0, 3: 5.0, 4: 5.0}) == 2  # no decrease: smallest k


# --- clustering -------------------------------------------------------------------------------


def metafeatures_frame(
    groups: list[dict[str, float]], per_group: int, seed: int = 0
) -> pd.DataFrame:
    """Metafeature rows around each group's centre, with a little noise."""
    rng = np.random.default_rng(seed)
    rows, index = [], []
    for g, centre in enumerate(groups):
        for i in range(per_group):
            rows.append(
                {name: value * (1 + 0.02 * rng.standard_normal()) for name, value in centre.items()}
            )
            index.append(f"g{g}-{i}")
    return pd.DataFrame(rows, index=pd.Index(index, name="sku"))


# Listed out of level order on purpose: fast movers first, slow intermittent last.
GROUPS = [
    {
        "level": 500.0,
        "cv": 0.2,
        "zero_share": 0.0,
        "adi": 1.0,
        "trend": 0.1,
        "seasonal_strength": 0.8,
        "acf1": 0.7,
    },
    {
        "level": 40.0,
        "cv": 0.6,
        "zero_share": 0.1,
        "adi": 1.1,
        "trend": -0.3,
        "seasonal_strength": 0.3,
        "acf1": 0.3,
    },
    {
        "level": 1.0,
        "cv": 2.5,
        "zero_share": 0.8,
        "adi": 5.0,
        "trend": 0.0,
        "seasonal_strength": 0.0,
        "acf1": 0.0,
    },
]


def test_cluster_skus_recovers_well_separated_groups() -> None:
    features = metafeatures_frame(GROUPS, per_group=10)

    result = cluster_skus(features, k_min=2, k_max=6, min_cluster_size=3, seed=0)

    assert result.k == 3
    group = features.index.str.split("-").str[0]
    # Each generated group lands in exactly one cluster, and each cluster holds one group.
    for g in ("g0", "g1", "g2"):
        assert result.assignments[group == g].nunique() == 1
    assert result.assignments.nunique() == 3
    assert result.sizes == {"cluster_0": 10, "cluster_1": 10, "cluster_2": 10}
    assert set(result.inertia) == {2, 3, 4, 5, 6}
    assert set(result.davies_bouldin) == {2, 3, 4, 5, 6}


def test_clusters_are_numbered_by_ascending_level() -> None:
    features = metafeatures_frame(GROUPS, per_group=10)

    result = cluster_skus(features, k_min=2, k_max=6, min_cluster_size=3, seed=0)

    # g2 is the slowest mover, g0 the fastest.
    assert set(result.assignments[features.index.str.startswith("g2")]) == {"cluster_0"}
    assert set(result.assignments[features.index.str.startswith("g1")]) == {"cluster_1"}
    assert set(result.assignments[features.index.str.startswith("g0")]) == {"cluster_2"}
    assert result.keys == ["cluster_0", "cluster_1", "cluster_2"]
    assert result.assignments.index.equals(features.index)


def test_min_cluster_size_rules_out_small_clusters() -> None:
    # Two groups of 10 and a group of 2: with min_cluster_size 3 the 2-SKU group cannot be its
    # own cluster.
    big = metafeatures_frame(GROUPS, per_group=10)
    features = pd.concat(
        [big[~big.index.str.startswith("g2")], big[big.index.str.startswith("g2")].iloc[:2]]
    )

    result = cluster_skus(features, k_min=2, k_max=5, min_cluster_size=3, seed=0)

    assert min(result.sizes.values()) >= 3
    assert result.smallest_cluster[result.k] >= 3
    # Without the limit the tiny group is found as a cluster of its own.
    free = cluster_skus(features, k_min=2, k_max=5, min_cluster_size=1, seed=0)
    assert free.k == 3
    assert min(free.sizes.values()) == 2


def test_few_skus_fall_back_to_one_cluster() -> None:
    features = metafeatures_frame(GROUPS, per_group=1)  # 3 SKUs

    result = cluster_skus(features, k_min=2, k_max=6, min_cluster_size=2, seed=0)

    assert result.k == 1
    assert set(result.assignments) == {"cluster_0"}
    assert result.sizes == {"cluster_0": 3}


def test_two_skus_fall_back_to_one_cluster() -> None:
    features = metafeatures_frame(GROUPS[:2], per_group=1)

    result = cluster_skus(features, k_min=2, k_max=6, min_cluster_size=1, seed=0)

    assert result.k == 1
    assert result.inertia == {}
    assert set(result.assignments) == {"cluster_0"}


def test_metafeatures_do_not_depend_on_the_block_of_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    y = rng.poisson(rng.lognormal(0.0, 1.0, (53, 1)), (53, 40)).astype(float)
    y[np.arange(40)[None, :] < rng.integers(0, 40, 53)[:, None]] = np.nan  # late starts
    panel = panel_of({f"s{i}": row for i, row in enumerate(y)})
    whole = compute_metafeatures(panel, season=4)

    for rows in (2, 3, 13, 52):  # 52 would leave a last block of one row
        monkeypatch.setattr(clustering, "_BLOCK_CELLS", rows * 40)
        pd.testing.assert_frame_equal(
            compute_metafeatures(panel, season=4), whole, check_exact=True
        )
