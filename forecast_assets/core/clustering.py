"""Metafeatures that describe each SKU's demand shape, and clustering SKUs by them.

Everything works on the whole [n_skus, n_periods] matrix at once: no loop over SKUs.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import davies_bouldin_score
from sklearn.preprocessing import StandardScaler

from forecast_assets.core.data.panel import SalesPanel

logger = logging.getLogger(__name__)

# Metafeatures fed to k-means, with a log applied to the heavy-tailed ones.
CLUSTERING_FEATURES = {
    "level": True,
    "cv": True,
    "zero_share": False,
    "adi": True,
    "trend": False,
    "seasonal_strength": False,
    "acf1": False,
}

# Metafeatures take the panel this many [SKU x period] cells at a time (about 16 MB of
# float64 per temporary array).
_BLOCK_CELLS = 2_000_000


def compute_metafeatures(panel: SalesPanel, season: int) -> pd.DataFrame:
    """Per-SKU demand shape, one row per SKU.

    - ``n_periods``: periods since the first sale; ``level``: mean demand; ``std``.
    - ``cv``: coefficient of variation (std / mean).
    - ``zero_share``: share of periods without demand (intermittency).
    - ``adi``: average demand interval, periods per period with demand (Syntetos-Boylan).
    - ``cv2_nonzero``: squared CV of the non-zero demand sizes (Syntetos-Boylan).
    - ``trend``: least-squares slope times the series length, relative to the level
      (0.5 means the fitted line rises by half the level over the history).
    - ``seasonal_strength``: 1 - var(remainder) / var(detrended), in [0, 1], for ``season``
      (Wang, Smith & Hyndman 2006); 0 when there are fewer than two full seasons.
    - ``acf1``: lag-1 autocorrelation.

    Every feature is a reduction over one SKU's row, so the matrix is taken a block of rows
    at a time: the numbers are the same, and the temporary arrays stay a few times the size
    of a block instead of the whole panel.
    """
    y = panel.values
    n_skus = len(y)
    rows = max(2, _BLOCK_CELLS // max(y.shape[1], 1)) if y.flags.c_contiguous else n_skus
    starts = list(range(0, n_skus, rows)) or [0]
    if len(starts) > 1 and n_skus - starts[-1] == 1:
        # numpy sums a single row in another order than a block of rows (the column picks of
        # the seasonal profile): no block of one row, so that the numbers match the whole.
        starts.pop()
    ends = [*starts[1:], n_skus]
    blocks = [_metafeature_columns(y[a:b], season) for a, b in zip(starts, ends, strict=True)]
    columns = {name: np.concatenate([block[name] for block in blocks]) for name in blocks[0]}
    return pd.DataFrame(columns, index=panel.skus)


def _metafeature_columns(y: np.ndarray, season: int) -> dict[str, np.ndarray]:
    """The metafeatures of the rows of ``y``, by name."""
    observed = ~np.isnan(y)
    n = observed.sum(axis=1).astype(float)
    level = np.nanmean(y, axis=1)
    std = np.nanstd(y, axis=1)
    nonzero = observed & (y > 0)
    n_nonzero = nonzero.sum(axis=1)
    sizes = np.where(nonzero, y, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        size_mean = np.nanmean(np.where(n_nonzero[:, None] > 0, sizes, 0.0), axis=1)
        size_std = np.nanstd(np.where(n_nonzero[:, None] > 0, sizes, 0.0), axis=1)
        return {
            "n_periods": n,
            "level": level,
            "std": std,
            "cv": _safe_ratio(std, level),
            "zero_share": 1.0 - n_nonzero / np.maximum(n, 1),
            "adi": n / np.maximum(n_nonzero, 1),
            "cv2_nonzero": _safe_ratio(size_std, size_mean) ** 2,
            "trend": _relative_trend(y, observed, level),
            "seasonal_strength": _seasonal_strength(y, observed, season),
            "acf1": _lag1_autocorrelation(y, observed, level),
        }


@dataclass(frozen=True)
class ClusterResult:
    """SKU -> cluster key, and how k was chosen."""

    assignments: pd.Series  # index sku, value cluster key ("cluster_0", ...)
    k: int
    elbow_k: int
    inertia: dict[int, float]  # every k tried
    davies_bouldin: dict[int, float]  # every k tried with at least two clusters
    smallest_cluster: dict[int, int]  # every k tried

    @property
    def keys(self) -> list[str]:
        return sorted(self.assignments.unique(), key=lambda key: int(key.rsplit("_", 1)[1]))

    @property
    def sizes(self) -> dict[str, int]:
        counts = self.assignments.value_counts()
        return {key: int(counts[key]) for key in self.keys}


def cluster_skus(
    metafeatures: pd.DataFrame, k_min: int, k_max: int, min_cluster_size: int, seed: int
) -> ClusterResult:
    """Cluster SKUs by k-means on standardized metafeatures, choosing k by elbow and
    Davies-Bouldin.

    Rule: try every k in [k_min, k_max] (capped by the number of SKUs); drop the ks whose
    smallest cluster has fewer than ``min_cluster_size`` SKUs; the elbow of the inertia
    curve (Kneedle: the point farthest below the chord from first to last) bounds how many
    clusters are worth having; among the kept ks up to the elbow, the lowest Davies-Bouldin
    index wins. Too few SKUs for any kept k gives a single cluster.
    Clusters are numbered by ascending mean level, so ``cluster_0`` is the slowest-moving.
    """
    x = _feature_matrix(metafeatures)
    n = len(x)
    inertia: dict[int, float] = {}
    davies_bouldin: dict[int, float] = {}
    smallest: dict[int, int] = {}
    labels_by_k: dict[int, np.ndarray] = {}
    for k in range(max(k_min, 1), min(k_max, n - 1) + 1):
        model = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x)
        labels_by_k[k] = model.labels_
        inertia[k] = float(model.inertia_)
        smallest[k] = int(np.bincount(model.labels_, minlength=k).min())
        if k >= 2:
            davies_bouldin[k] = float(davies_bouldin_score(x, model.labels_))
    allowed = [k for k in labels_by_k if smallest[k] >= min_cluster_size and k in davies_bouldin]
    if not allowed:
        logger.info(
            "no k in [%d, %d] gives clusters of %d SKUs; using one cluster",
            k_min,
            k_max,
            min_cluster_size,
        )
        labels = np.zeros(n, dtype=int)
        chosen = elbow = 1
    else:
        elbow = kneedle_elbow({k: inertia[k] for k in allowed})
        chosen = min((k for k in allowed if k <= elbow), key=lambda k: (davies_bouldin[k], k))
        labels = labels_by_k[chosen]
    ordered = _order_by_level(labels, metafeatures["level"].to_numpy())
    names = np.array([f"cluster_{c}" for c in range(len(np.unique(ordered)))], dtype=object)
    assignments = pd.Series(names[ordered], index=metafeatures.index, name="cluster")
    return ClusterResult(assignments, chosen, elbow, inertia, davies_bouldin, smallest)


def kneedle_elbow(curve: dict[int, float]) -> int:
    """The k where a decreasing curve bends most: farthest below the chord from end to end."""
    ks = np.array(sorted(curve))
    if len(ks) < 3:
        return int(ks[-1])
    y = np.array([curve[k] for k in ks])
    x_norm = (ks - ks[0]) / (ks[-1] - ks[0])
    span = y[0] - y[-1]
    if span <= 0:
        return int(ks[0])
    y_norm = (y - y[-1]) / span
    below_chord = (1.0 - x_norm) - y_norm
    return int(ks[int(np.argmax(below_chord))])


def _feature_matrix(metafeatures: pd.DataFrame) -> np.ndarray:
    columns = []
    for name, use_log in CLUSTERING_FEATURES.items():
        values = metafeatures[name].to_numpy(dtype=float)
        columns.append(np.log1p(np.maximum(values, 0)) if use_log else values)
    matrix = np.nan_to_num(np.stack(columns, axis=1), nan=0.0, posinf=0.0, neginf=0.0)
    return StandardScaler().fit_transform(matrix)


def _order_by_level(labels: np.ndarray, level: np.ndarray) -> np.ndarray:
    clusters, index = np.unique(labels, return_inverse=True)
    means = np.array([np.nanmean(level[labels == c]) for c in clusters])  # one per cluster
    rank = np.empty(len(clusters), dtype=np.int64)
    rank[np.argsort(means, kind="stable")] = np.arange(len(clusters))
    return rank[index]


def _safe_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(np.abs(b) > 1e-12, a / np.where(np.abs(b) > 1e-12, b, 1.0), 0.0)


def _relative_trend(y: np.ndarray, observed: np.ndarray, level: np.ndarray) -> np.ndarray:
    t = np.where(observed, np.arange(y.shape[1])[None, :], np.nan)
    t_centered = t - np.nanmean(t, axis=1, keepdims=True)
    y_centered = y - level[:, None]
    slope = _safe_ratio(
        np.nansum(t_centered * y_centered, axis=1), np.nansum(t_centered**2, axis=1)
    )
    return _safe_ratio(slope * observed.sum(axis=1), level)


def _lag1_autocorrelation(y: np.ndarray, observed: np.ndarray, level: np.ndarray) -> np.ndarray:
    centered = np.where(observed, y - level[:, None], np.nan)
    numerator = np.nansum(centered[:, 1:] * centered[:, :-1], axis=1)
    return _safe_ratio(numerator, np.nansum(centered**2, axis=1))


def _seasonal_strength(y: np.ndarray, observed: np.ndarray, season: int) -> np.ndarray:
    n_skus, n_periods = y.shape
    strength = np.zeros(n_skus)
    if season < 2:
        return strength
    # Remove a linear trend, then a seasonal profile (mean per position in the season).
    level = np.nanmean(y, axis=1)
    t = np.where(observed, np.arange(n_periods)[None, :], np.nan)
    t_centered = t - np.nanmean(t, axis=1, keepdims=True)
    slope = _safe_ratio(
        np.nansum(t_centered * (y - level[:, None]), axis=1), np.nansum(t_centered**2, axis=1)
    )
    detrended = y - level[:, None] - slope[:, None] * t_centered
    # Positions count back from the last period so every SKU shares the same phase.
    position = (np.arange(n_periods) - (n_periods - 1)) % season
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # positions a young SKU never reached
        profile = np.stack(
            [np.nanmean(detrended[:, position == p], axis=1) for p in range(season)], axis=1
        )
    remainder = detrended - profile[:, position]
    var_detrended = np.nanvar(detrended, axis=1)
    ratio = _safe_ratio(np.nanvar(remainder, axis=1), var_detrended)
    strength = np.clip(1.0 - ratio, 0.0, 1.0)
    strength[var_detrended <= 1e-12] = 0.0
    strength[observed.sum(axis=1) < 2 * season] = 0.0
    return strength
