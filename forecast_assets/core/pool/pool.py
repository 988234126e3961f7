"""The pool of one cluster: which candidates run, their backtest, the choice per SKU, the
intervals, and the forecast that serves.

The serving step (``core/training/serve.py``) judges the pool on the backtest's fold
origins, where the neural family's forecasts come from the gate's own backtest, and keeps
the result; the forecast step fits the chosen statistical and boosted members again on the
latest history (they are cheap to fit, and so a refresh with new sales needs no retraining)
and combines them per SKU with the served neural model's forecast.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pydantic import Field

from forecast_assets.core.config import CoreConfig
from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.errors import InsufficientDataError
from forecast_assets.core.inference.intervals import ResidualQuantiles, interval_bounds
from forecast_assets.core.metrics import seasonal_naive_scale, squared_difference_scale
from forecast_assets.core.pool.candidate import CandidateGroup
from forecast_assets.core.pool.selection import (
    ENSEMBLE,
    PREVIOUS,
    PoolBacktest,
    SelectionOptions,
    SkuChoice,
    choose,
    conformal_intervals,
    keep_previous,
    pool_backtest,
)
from forecast_assets.core.pool.statistical import (
    DemandShape,
    StatisticalCandidates,
    statistical_members,
)

BOOSTED = "lightgbm"


class PoolOptions(CoreConfig):
    """The pool of forecasters judged per cluster and chosen per SKU."""

    section_name = "pool"

    enabled: bool = Field(
        True,
        description="judge a pool of forecasters on the backtest and choose per SKU; off: "
        "the cluster's model (or seasonal naive when it fails the gate) serves every SKU",
    )
    statistical: bool = Field(
        True, description="statsforecast members (naive, seasonal, Theta, ETS, intermittent)"
    )
    boosted: bool = Field(True, description="a global LightGBM model on lag and calendar features")
    neural: bool = Field(True, description="the cluster's trained neural model joins the pool")
    min_gain: float = Field(
        0.5,
        ge=0,
        lt=1,
        description="a SKU leaves its cluster's combination for one candidate only when that "
        "candidate wins on every choosing fold and lowers the mean error by this share",
    )
    ensemble_rounds: int = Field(
        10, ge=1, description="additions of greedy ensemble selection (weights in 1/rounds)"
    )
    intermittent_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="intermittent-demand members run when this share of a cluster's SKUs "
        "has a mean interval between demands above 1.32 periods",
    )
    ets_max_season: int = Field(
        24, ge=1, description="AutoETS runs only for seasons up to this length (its cost)"
    )
    ets_max_points: int = Field(
        20_000,
        ge=0,
        description="AutoETS runs only where the cluster's SKUs hold at most this many "
        "periods together (within max_history): it costs about a second per thousand",
    )
    max_history: int | None = Field(
        156,
        ge=2,
        description="recent periods the statistical members fit on (their cost grows with "
        "the history); empty: all",
    )

    def selection(self) -> SelectionOptions:
        return SelectionOptions(ensemble_rounds=self.ensemble_rounds, min_gain=self.min_gain)


@dataclass(frozen=True)
class PoolRun:
    """Everything a cluster's pool needs besides the data."""

    options: PoolOptions
    season: int
    confidence: float
    folds: int = 3  # rolling origins, the last the scoring fold
    step: int = 1  # periods between origins
    seed: int = 0
    threads: int = 1
    nonnegative: bool = True

    def groups(self, panel: SalesPanel) -> list[CandidateGroup]:
        return candidate_groups(panel, self.season, self.options, self.seed, self.threads)

    def origins(self, n_periods: int, horizon: int) -> list[int]:
        """The fold origins, the last forecasting the final ``horizon`` periods, ``step``
        apart; as many of ``folds`` as leave some history before the first."""
        origins = [n_periods - horizon - k * self.step for k in reversed(range(self.folds))]
        kept = [o for o in origins if o >= 2]
        if not kept:
            raise InsufficientDataError(
                f"{n_periods} periods leave no history before a {horizon}-period backtest fold"
            )
        return kept


@dataclass
class PoolResult:
    """A cluster's pool after judging: the choice that serves, the honest figures of the
    choice made without the scoring fold, and the intervals."""

    backtest: PoolBacktest
    served: SkuChoice  # chosen on every fold: what the forecast combines
    reported: SkuChoice  # chosen without the scoring fold: what the figures judge
    scoring_fold: int | None  # None with one fold: the figures are then of the plain mean
    intervals: ResidualQuantiles  # of ``served`` on every fold, for the forecast
    report_intervals: ResidualQuantiles  # of ``reported`` on the choosing folds
    statistical: tuple[str, ...]  # the statsforecast members that ran
    boosted: bool
    neural: str | None  # the neural family in the pool, if any
    season: int
    judged_at: str
    seconds: dict[str, float] = field(default_factory=dict)
    kept_previous: int = 0  # SKUs that kept what served them before: the new choice lost

    def member_groups(self, run: PoolRun) -> list[CandidateGroup]:
        """The statistical and boosted members that were judged, to fit again when
        forecasting (the demand shape of newer history may differ; the choice does not)."""
        groups: list[CandidateGroup] = []
        if self.statistical:
            groups.append(
                StatisticalCandidates(self.statistical, self.season, run.options.max_history)
            )
        if self.boosted:
            from forecast_assets.core.pool.boosted import BoostedCandidate

            groups.append(BoostedCandidate(season=self.season, seed=run.seed, threads=run.threads))
        return groups

    def scoring_forecast(self) -> np.ndarray:
        """[n_skus, h] of the reported choice on the scoring fold (the last)."""
        fold = self.scoring_fold if self.scoring_fold is not None else self.backtest.n_folds - 1
        return self.reported.combine(self.backtest.forecasts)[fold]

    def scoring_metrics(self) -> dict[str, float]:
        """MASE, RMSSE (means over SKUs) and interval coverage of the reported choice on the
        scoring fold, which took no part in the choice."""
        fold = self.scoring_fold if self.scoring_fold is not None else self.backtest.n_folds - 1
        forecast = self.scoring_forecast()
        actual = self.backtest.actual[fold]
        scale = self.backtest.mase_scale[fold]
        lower, upper = interval_bounds(
            forecast, interval_scale_of(scale), self.report_intervals, nonnegative=False
        )
        observed = np.isfinite(actual).all(axis=1)
        inside = (actual >= lower) & (actual <= upper)
        return {
            **_fold_accuracy(self.backtest, fold, forecast),
            "coverage": float(inside[observed].mean()) if observed.any() else float("nan"),
        }

    def scoring_by_sku(self) -> pd.DataFrame:
        """Per SKU observed on the scoring fold: MASE, RMSSE, the share of its actuals inside
        the intervals, and how many actuals that share is of."""
        fold = self.scoring_fold if self.scoring_fold is not None else self.backtest.n_folds - 1
        forecast = self.scoring_forecast()
        actual = self.backtest.actual[fold]
        error = forecast - actual
        lower, upper = interval_bounds(
            forecast,
            interval_scale_of(self.backtest.mase_scale[fold]),
            self.report_intervals,
            nonnegative=False,
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            frame = pd.DataFrame(
                {
                    "sku": self.backtest.skus,
                    "mase": np.mean(np.abs(error), axis=1) / self.backtest.mase_scale[fold],
                    "rmsse": np.sqrt(np.mean(error**2, axis=1) / self.backtest.rmsse_scale[fold]),
                    "coverage": ((actual >= lower) & (actual <= upper)).mean(axis=1),
                    "points": actual.shape[1],
                    "served_by": self.label_of(),
                }
            )
        return frame[np.isfinite(actual).all(axis=1)]

    def candidate_table(self) -> pd.DataFrame:
        """Each candidate's accuracy on the scoring fold, and how many SKUs it serves."""
        fold = self.scoring_fold if self.scoring_fold is not None else self.backtest.n_folds - 1
        rows = []
        for index, name in enumerate(self.backtest.names):
            accuracy = _fold_accuracy(self.backtest, fold, self.backtest.forecasts[index, fold])
            rows.append(
                {
                    "candidate": name,
                    **accuracy,
                    "ensemble_weight": float(self.served.ensemble[index]),
                    "skus_alone": int((self.served.labels == name).sum()),
                }
            )
        return pd.DataFrame(rows).sort_values("mase", ignore_index=True)

    def label_of(self) -> np.ndarray:
        """What serves each SKU as the forecast table names it."""
        ensemble = f"{ENSEMBLE}: {self.served.describe()}"
        labels = np.where(self.served.labels == ENSEMBLE, ensemble, self.served.labels)
        for row in np.flatnonzero(self.served.labels == PREVIOUS):
            labels[row] = f"{PREVIOUS}: {self.served.describe(self.served.weights[row])}"
        return labels

    def to_markdown(self, cluster: str) -> str:
        metrics = self.scoring_metrics()
        fold_note = (
            f"fold {self.scoring_fold} (the last), which took no part in the choice"
            if self.scoring_fold is not None
            else "the only fold; with one fold nothing is held out, so these figures are "
            "of the plain mean of all candidates, which looks at no fold"
        )
        mix = ", ".join(f"{name} {count}" for name, count in self.served.mix().items())
        table = self.candidate_table()
        rows = "\n".join(
            f"| {r.candidate} | {r.mase:.3f} | {r.rmsse:.3f} | {r.ensemble_weight:.2f} | "
            f"{r.skus_alone} |"
            for r in table.itertuples()
        )
        return (
            f"### Pool of forecasters of {cluster}\n\n"
            f"Candidates: {', '.join(self.backtest.names)}. The cluster's combination is "
            f"{self.served.describe()}; SKUs served: {mix}.\n\n"
            f"The choice made without the scoring fold scores MASE {metrics['mase']:.3f}, "
            f"RMSSE {metrics['rmsse']:.3f} on {fold_note}; its intervals cover "
            f"{metrics['coverage']:.1%} (nominal {self.intervals.confidence:.0%}).\n\n"
            "| candidate | MASE | RMSSE | weight in the combination | SKUs it serves alone "
            "|\n|---|---|---|---|---|\n"
            f"{rows}\n"
        )


def _fold_accuracy(backtest: PoolBacktest, fold: int, forecast: np.ndarray) -> dict[str, float]:
    actual = backtest.actual[fold]
    error = forecast - actual
    with np.errstate(invalid="ignore", divide="ignore"):
        mase = np.mean(np.abs(error), axis=1) / backtest.mase_scale[fold]
        rmsse = np.sqrt(np.mean(error**2, axis=1) / backtest.rmsse_scale[fold])
    return {"mase": _nanmean(mase), "rmsse": _nanmean(rmsse)}


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def candidate_groups(
    panel: SalesPanel, season: int, options: PoolOptions, seed: int = 0, threads: int = 1
) -> list[CandidateGroup]:
    """The statistical and boosted members worth running for ``panel``'s cluster."""
    groups: list[CandidateGroup] = []
    if options.statistical:
        recent = panel.values[:, -options.max_history :] if options.max_history else panel.values
        shape = DemandShape.of(recent, season)
        members = statistical_members(
            shape, options.intermittent_share, options.ets_max_season, options.ets_max_points
        )
        groups.append(StatisticalCandidates(members, season, options.max_history))
    if options.boosted:
        from forecast_assets.core.pool.boosted import BoostedCandidate

        groups.append(BoostedCandidate(season=season, seed=seed, threads=threads))
    return groups


def judge_pool(
    panel: SalesPanel,
    origins: Sequence[int],
    horizon: int,
    season: int,
    groups: Sequence[CandidateGroup],
    options: PoolOptions,
    confidence: float,
    neural: Mapping[str, np.ndarray] | None = None,
    nonnegative: bool = True,
    judged_at: str = "",
    previous: SkuChoice | None = None,
) -> PoolResult:
    """Forecast ``origins`` with every candidate, choose per SKU (once without the last
    fold, for the figures, and once on every fold, for the forecast) and calibrate the
    intervals. ``neural`` adds forecasts made elsewhere (the gate's backtest). With
    ``previous`` (the choice that served, aligned to the panel's SKUs), a SKU keeps it unless
    the new choice beats it on the folds."""
    seconds: dict[str, float] = {}
    forecasts: dict[str, np.ndarray] = {}
    for group in groups:
        started = time.perf_counter()
        forecasts.update(group.forecast(panel, origins, horizon))
        seconds[",".join(group.names)] = time.perf_counter() - started
    forecasts.update(neural or {})
    if not forecasts:
        raise ValueError("the pool has no candidate: enable pool.statistical or pool.boosted")
    if nonnegative:
        forecasts = {name: np.maximum(values, 0.0) for name, values in forecasts.items()}
    backtest = pool_backtest(panel, origins, horizon, season, forecasts)
    every_fold = list(range(backtest.n_folds))
    scoring = backtest.n_folds - 1 if backtest.n_folds > 1 else None
    choosing = every_fold[:-1]
    selection = options.selection()
    served = choose(backtest, every_fold, selection)
    kept = np.zeros(len(panel.skus), dtype=bool)
    if previous is not None:
        served, kept = keep_previous(backtest, served, previous, every_fold)
    # The previous choice saw the periods of today's scoring fold: the figures never use it.
    reported = choose(backtest, choosing, selection)
    return PoolResult(
        backtest=backtest,
        served=served,
        reported=reported,
        scoring_fold=scoring,
        intervals=conformal_intervals(backtest, every_fold, confidence, selection),
        # With one fold the plain mean is calibrated on that fold: nothing else exists.
        report_intervals=conformal_intervals(
            backtest, choosing or every_fold, confidence, selection
        ),
        statistical=next((g.names for g in groups if isinstance(g, StatisticalCandidates)), ()),
        boosted=BOOSTED in forecasts,
        neural=next(iter(neural), None) if neural else None,
        season=season,
        judged_at=judged_at,
        seconds=seconds,
        kept_previous=int(kept.sum()),
    )


@dataclass
class PoolForecast:
    """The pool's forecast of the periods after the data, per SKU."""

    forecast: np.ndarray  # [n_skus, h]
    lower: np.ndarray
    upper: np.ndarray
    labels: np.ndarray  # [n_skus] what serves each SKU


def forecast_pool(
    pool: PoolResult,
    panel: SalesPanel,
    horizon: int,
    groups: Sequence[CandidateGroup],
    neural: Mapping[str, np.ndarray] | None = None,
    nonnegative: bool = True,
) -> PoolForecast:
    """Fit the members the served choice uses on all of ``panel`` and combine their
    forecasts per SKU; ``neural`` holds the served neural model's forecast [n_skus, h]."""
    used = set(pool.served.used())
    final: dict[str, np.ndarray] = {}
    for group in groups:
        if used & set(group.names):
            out = group.forecast(panel, [panel.n_periods], horizon)
            final.update({name: values[0] for name, values in out.items()})
    final.update(neural or {})
    missing = sorted(used - set(final))
    if missing:
        raise ValueError(f"the pool's choice uses {missing}, which gave no forecast")
    nan = np.full((panel.n_skus, horizon), np.nan)
    stacked = np.stack([final.get(name, nan) for name in pool.backtest.names])
    if nonnegative:
        stacked = np.maximum(stacked, 0.0)
    forecast = pool.served.combine(stacked[:, None])[0]
    forecast = np.where(np.isfinite(forecast), forecast, _last_value(panel)[:, None])
    scale = interval_scale_of(seasonal_naive_scale(panel.values, pool.season), panel.values)
    lower, upper = interval_bounds(forecast, scale, pool.intervals, nonnegative)
    return PoolForecast(forecast, lower, upper, pool.label_of())


def interval_scale_of(scale: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
    """The per-SKU unit of the interval residuals: the MASE scale; where it is zero (a
    constant history), the lag-1 RMSSE scale's root, then the mean level, then 1."""
    unit = np.where(np.isfinite(scale) & (scale > 0), scale, np.nan)
    if values is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a SKU with no observation
            fallbacks = (
                np.sqrt(squared_difference_scale(values)),
                np.nanmean(np.abs(values), axis=1) if values.shape[1] else unit,
            )
        for fallback in fallbacks:
            unit = np.where(np.isnan(unit) & (fallback > 0), fallback, unit)
    return np.where(np.isnan(unit), 1.0, unit)


def _last_value(panel: SalesPanel) -> np.ndarray:
    # A SKU no member could forecast (none observed) repeats its last value, else zero.
    last = pd.DataFrame(panel.values).ffill(axis=1).iloc[:, -1].to_numpy()
    return np.nan_to_num(last, nan=0.0)
