"""Judging the pool on the rolling-origin folds and choosing what serves each SKU.

Every candidate forecasts the same fold origins. A fold's score of a forecast for a SKU is
the mean of its MASE and RMSSE on that fold (scaled on the history before the fold's
origin), so that neither a median-type nor a mean-type forecast wins by the metric alone.

The choice, made on some folds and never on others:
- the cluster's combination: greedy ensemble selection (Caruana et al., 2004): starting
  from the best single candidate, add with replacement the candidate that most lowers the
  cluster's mean score of the averaged forecast; the counts are the weights;
- each SKU is served by the combination unless one candidate beats it for that SKU on every
  choosing fold and by a clear margin overall; with the folds disagreeing, the SKU stays
  with its cluster (the noise guard).

The reported accuracy comes from a choice made without the scoring fold, applied to it
(``PoolSelection``); what serves is the same procedure on every fold.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.inference.intervals import ResidualQuantiles, residual_quantiles
from forecast_assets.core.metrics import seasonal_naive_scale, squared_difference_scale

ENSEMBLE = "ensemble"
PREVIOUS = "previous"  # the weights that served a SKU before, kept


@dataclass(frozen=True)
class SelectionOptions:
    """How the choice guards against noise (the defaults are ``PoolOptions``')."""

    ensemble_rounds: int  # additions of greedy ensemble selection (weights in 1/rounds)
    min_gain: float  # a SKU leaves its cluster's combination only for this gain or more


@dataclass
class PoolBacktest:
    """Every candidate's forecasts at the fold origins, with what sold."""

    names: tuple[str, ...]
    skus: pd.Index
    origins: tuple[int, ...]  # period indices of the fold origins
    forecasts: np.ndarray  # [n_candidates, n_folds, n_skus, horizon], NaN where unavailable
    actual: np.ndarray  # [n_folds, n_skus, horizon], NaN for a SKU not yet observed
    mase_scale: np.ndarray  # [n_folds, n_skus] on the history before each origin
    rmsse_scale: np.ndarray  # [n_folds, n_skus]

    @property
    def n_folds(self) -> int:
        return len(self.origins)

    def candidate(self, name: str) -> np.ndarray:
        return self.forecasts[self.names.index(name)]

    def scores(self, forecast: np.ndarray) -> np.ndarray:
        """[n_folds, n_skus] mean of MASE and RMSSE of ``forecast`` [n_folds, n_skus, h];
        NaN where the SKU is not observed or has no usable scale or no forecast."""
        error = forecast - self.actual
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mase = np.mean(np.abs(error), axis=-1) / self.mase_scale
            rmsse = np.sqrt(np.mean(error**2, axis=-1) / self.rmsse_scale)
        return (mase + rmsse) / 2


def pool_backtest(
    panel: SalesPanel,
    origins: Sequence[int],
    horizon: int,
    season: int,
    forecasts: Mapping[str, np.ndarray],
) -> PoolBacktest:
    """The pool's forecasts ``name -> [n_folds, n_skus, horizon]`` at ``origins`` next to the
    actuals of each fold."""
    steps = np.arange(horizon)
    actual = np.stack([panel.values[:, o + steps] for o in origins])
    mase_scale, rmsse_scale = [], []
    for origin in origins:
        history = panel.values[:, :origin]
        mase_scale.append(_positive(seasonal_naive_scale(history, season)))
        rmsse_scale.append(_positive(squared_difference_scale(history)))
    names = tuple(forecasts)
    stacked = np.stack([np.asarray(forecasts[n], dtype=float) for n in names])
    expected = (len(names), len(origins), panel.n_skus, horizon)
    if stacked.shape != expected:
        raise ValueError(f"candidate forecasts have shape {stacked.shape}, expected {expected}")
    return PoolBacktest(
        names=names,
        skus=panel.skus,
        origins=tuple(int(o) for o in origins),
        forecasts=stacked,
        actual=actual,
        mase_scale=np.stack(mase_scale),
        rmsse_scale=np.stack(rmsse_scale),
    )


def _positive(scale: np.ndarray) -> np.ndarray:
    # A zero scale (a constant history) cannot scale an error: such SKU-folds score NaN and
    # take no part in any choice.
    return np.where(np.isfinite(scale) & (scale > 0), scale, np.nan)


@dataclass(frozen=True)
class SkuChoice:
    """What serves each SKU: weights over the candidates, per SKU."""

    names: tuple[str, ...]
    ensemble: np.ndarray  # [n_candidates] the cluster's combination, summing to 1
    weights: np.ndarray  # [n_skus, n_candidates] each row sums to 1
    labels: np.ndarray  # [n_skus] str: ENSEMBLE or the name of the one candidate serving

    def combine(self, forecasts: np.ndarray) -> np.ndarray:
        """[..., n_skus, h] forecast of the choice from ``forecasts`` [n_candidates, ...,
        n_skus, h]. A candidate with no forecast for a SKU gives its weight to the others."""
        weights = self.weights.T.reshape(
            (len(self.names),) + (1,) * (forecasts.ndim - 3) + (len(self.weights), 1)
        )
        available = np.isfinite(forecasts)
        share = np.where(available, weights, 0.0)
        total = share.sum(axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            value = (np.where(available, forecasts, 0.0) * share).sum(axis=0) / total
        return np.where(total > 0, value, np.nan)

    def used(self) -> tuple[str, ...]:
        """The candidates with weight for some SKU: those the forecast must run."""
        return tuple(n for n, w in zip(self.names, self.weights.max(axis=0), strict=True) if w > 0)

    def mix(self) -> dict[str, int]:
        """SKUs per label, the largest first."""
        labels, counts = np.unique(self.labels, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        return {str(labels[i]): int(counts[i]) for i in order}

    def describe(self, weights: np.ndarray | None = None) -> str:
        """The cluster's combination (or ``weights``) in words: 'theta 0.6, lightweight 0.4'."""
        weights = self.ensemble if weights is None else weights
        order = np.argsort(-weights, kind="stable")
        return ", ".join(f"{self.names[i]} {weights[i]:.2g}" for i in order if weights[i] > 0)


def choose(backtest: PoolBacktest, folds: Sequence[int], options: SelectionOptions) -> SkuChoice:
    """The choice made on ``folds`` (indices into the backtest's folds) alone."""
    names, n_skus = backtest.names, backtest.actual.shape[1]
    folds = list(folds)
    if not folds:
        # Nothing to choose on: the plain mean of every candidate looks at no fold.
        ensemble = np.full(len(names), 1.0 / len(names))
        return SkuChoice(names, ensemble, np.tile(ensemble, (n_skus, 1)), np.full(n_skus, ENSEMBLE))
    ensemble = greedy_ensemble(backtest, folds, options.ensemble_rounds)
    weights = np.tile(ensemble, (n_skus, 1))
    labels = np.full(n_skus, ENSEMBLE, dtype=object)
    combined = SkuChoice(names, ensemble, weights, labels)
    base = backtest.scores(combined.combine(backtest.forecasts))[folds]  # [F, S]
    single = np.stack([backtest.scores(backtest.forecasts[c])[folds] for c in range(len(names))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        base_mean = np.nanmean(base, axis=0)
        single_mean = np.nanmean(single, axis=1)  # [C, S]
    observed = np.isfinite(base)  # [F, S]
    # A candidate qualifies for a SKU where it was scored on every fold the SKU was, beat the
    # combination on each of them, and by ``min_gain`` on the mean.
    scored = np.isfinite(single) | ~observed[None]
    wins = (single < base[None]) | ~observed[None]
    qualifies = (
        scored.all(axis=1)
        & wins.all(axis=1)
        & observed.any(axis=0)[None]
        & (single_mean <= (1 - options.min_gain) * base_mean[None])
    )
    best = np.where(qualifies, single_mean, np.inf).argmin(axis=0)
    switch = qualifies[best, np.arange(n_skus)]
    weights[switch] = 0.0
    weights[np.flatnonzero(switch), best[switch]] = 1.0
    labels[switch] = np.asarray(names, dtype=object)[best[switch]]
    return SkuChoice(names, ensemble, weights, labels.astype(str))


def keep_previous(
    backtest: PoolBacktest, new: SkuChoice, previous: SkuChoice, folds: Sequence[int]
) -> tuple[SkuChoice, np.ndarray]:
    """``new``, except for the SKUs where what served before (its weights moved onto today's
    members; a member gone gives its weight to the others) scores at least as well on
    ``folds``: they keep it. So a new model, new weights or a newly chosen method replace
    what served a SKU only by winning. Returns the choice and the mask of SKUs that kept
    their previous one."""
    index = {name: i for i, name in enumerate(backtest.names)}
    weights = np.zeros_like(new.weights)
    for j, name in enumerate(previous.names):
        if name in index:
            weights[:, index[name]] += previous.weights[:, j]
    total = weights.sum(axis=1)
    usable = total > 0
    weights[usable] /= total[usable, None]
    before = SkuChoice(backtest.names, new.ensemble, weights, previous.labels)
    folds = list(folds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a SKU no fold scored
        old_score = np.nanmean(backtest.scores(before.combine(backtest.forecasts))[folds], axis=0)
        new_score = np.nanmean(backtest.scores(new.combine(backtest.forecasts))[folds], axis=0)
    keep = usable & ~(new_score < old_score)
    single = np.isin(previous.labels, backtest.names)
    labels = np.where(single, previous.labels, PREVIOUS)
    return (
        SkuChoice(
            new.names,
            new.ensemble,
            np.where(keep[:, None], weights, new.weights),
            np.where(keep, labels, new.labels).astype(str),
        ),
        keep,
    )


def greedy_ensemble(backtest: PoolBacktest, folds: Sequence[int], rounds: int) -> np.ndarray:
    """Weights over the candidates by greedy ensemble selection on ``folds``."""
    forecasts = backtest.forecasts[:, list(folds)]
    actual_scores = _FoldScorer(backtest, folds)
    counts = np.zeros(len(backtest.names))
    total = np.zeros(forecasts.shape[1:])
    weight = np.zeros(forecasts.shape[1:])
    for _ in range(max(rounds, 1)):
        best, best_score = -1, np.inf
        for c in range(len(backtest.names)):
            available = np.isfinite(forecasts[c])
            candidate_total = total + np.where(available, forecasts[c], 0.0)
            candidate_weight = weight + available
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.where(candidate_weight > 0, candidate_total / candidate_weight, np.nan)
            score = actual_scores.mean(mean)
            if score < best_score:
                best, best_score = c, score
        if best < 0:
            break
        counts[best] += 1
        available = np.isfinite(forecasts[best])
        total += np.where(available, forecasts[best], 0.0)
        weight += available
    if counts.sum() == 0:  # no candidate scored anywhere: the plain mean
        return np.full(len(backtest.names), 1.0 / len(backtest.names))
    return counts / counts.sum()


class _FoldScorer:
    """The cluster's mean score on some folds, over the SKU-folds every candidate can be
    scored on, so that no candidate wins by skipping hard SKUs."""

    def __init__(self, backtest: PoolBacktest, folds: Sequence[int]) -> None:
        self.backtest = backtest
        self.folds = list(folds)

    def mean(self, forecast: np.ndarray) -> float:
        actual = self.backtest.actual[self.folds]
        error = forecast - actual
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mase = np.mean(np.abs(error), axis=-1) / self.backtest.mase_scale[self.folds]
            rmsse = np.sqrt(np.mean(error**2, axis=-1) / self.backtest.rmsse_scale[self.folds])
            scored = np.isfinite(self.backtest.mase_scale[self.folds]) & np.isfinite(
                self.backtest.rmsse_scale[self.folds]
            )
            scored &= np.isfinite(actual).all(axis=-1)
            score = (mase + rmsse) / 2
            if not scored.any():
                return np.inf
            value = score[scored]
            # A forecast missing where others exist counts as the worst.
            return float(np.inf if np.isnan(value).any() else value.mean())


def conformal_intervals(
    backtest: PoolBacktest,
    folds: Sequence[int],
    confidence: float,
    options: SelectionOptions,
) -> ResidualQuantiles:
    """Split-conformal quantiles per horizon step of the residuals of the choice on
    ``folds``, cross-fitted: each fold's residuals are those of the choice made on the other
    folds, so that no residual comes from a choice that saw it (a choice fits its own folds
    better than the future). Each SKU's residuals are divided by its MASE scale, so that
    SKUs of every size pool."""
    folds = list(folds)
    horizon = backtest.actual.shape[-1]
    parts = []
    for fold in folds:
        choice = choose(backtest, [f for f in folds if f != fold], options)
        combined = choice.combine(backtest.forecasts[:, [fold]])[0]  # [S, h]
        parts.append((backtest.actual[fold] - combined) / backtest.mase_scale[fold][:, None])
    residuals = np.concatenate(parts) if parts else np.zeros((0, horizon))
    residuals = residuals[np.isfinite(residuals).all(axis=1)]
    if len(residuals) == 0:
        residuals = np.zeros((1, horizon))
    return residual_quantiles(residuals, confidence)
