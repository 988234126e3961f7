"""Statistical and intermittent-demand candidates, fitted per SKU by statsforecast.

Which members run follows the cluster's demand shape and their cost: seasonal members only
when the season is longer than one period, intermittent-demand members only when enough
SKUs have many zero periods, and AutoETS only where its search is cheap (short seasons,
regular demand). Every member is statsforecast's own model; a SKU a member cannot fit (too
short for its season, say) gets statsforecast's fallback, the naive forecast, and is marked
so that the selection knows it is not that member's own forecast.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.pool.candidate import check_origins, history_before

NAIVE = "naive"
SEASONAL_NAIVE = "seasonal_naive"
SEASONAL_WINDOW_AVERAGE = "seasonal_window_average"
THETA = "theta"
AUTO_ETS = "auto_ets"
CROSTON_SBA = "croston_sba"
TSB = "tsb"
ADIDA = "adida"
IMAPA = "imapa"
ZERO = "zero"

# Members for intermittent demand; they forecast a rate, so they also suit slow movers.
INTERMITTENT = (CROSTON_SBA, TSB, ADIDA, IMAPA, ZERO)


@dataclass(frozen=True)
class DemandShape:
    """What decides the statistical members of a cluster."""

    season: int
    intermittent_share: float  # share of SKUs whose periods are mostly zero (ADI > 1.32)
    median_length: int  # observed periods of the median SKU
    points: int = 0  # observed periods of all SKUs together: what a per-SKU fit costs

    @classmethod
    def of(cls, values: np.ndarray, season: int) -> DemandShape:
        """The shape of ``values`` [n_skus, n_periods] (NaN before each SKU's start)."""
        observed = ~np.isnan(values)
        lengths = observed.sum(axis=1)
        nonzero = (np.nan_to_num(values) > 0).sum(axis=1)
        # Average inter-demand interval (Syntetos and Boylan): periods per nonzero period.
        interval = np.divide(lengths, nonzero, out=np.full(len(lengths), np.inf), where=nonzero > 0)
        return cls(
            season=season,
            intermittent_share=float(np.mean(interval > 1.32)) if len(lengths) else 0.0,
            median_length=int(np.median(lengths)) if len(lengths) else 0,
            points=int(lengths.sum()),
        )


def statistical_members(
    shape: DemandShape,
    intermittent_share: float = 0.1,
    ets_max_season: int = 24,
    ets_max_points: int = 20_000,
) -> tuple[str, ...]:
    """The members worth running for a cluster of ``shape`` (``points`` counted on the
    history the members fit on)."""
    members = [NAIVE]
    seasonal = shape.season > 1 and shape.median_length > shape.season
    if seasonal:
        members += [SEASONAL_NAIVE, SEASONAL_WINDOW_AVERAGE]
    members.append(THETA)
    intermittent = shape.intermittent_share >= intermittent_share
    # AutoETS searches its error, trend and season forms per SKU: affordable with a short
    # season and a small cluster (about a second per thousand periods fitted), and pointless
    # where many periods are zero (the intermittent members fit there).
    affordable = shape.season <= ets_max_season and shape.points <= ets_max_points
    if affordable and not intermittent:
        members.append(AUTO_ETS)
    if intermittent:
        members += list(INTERMITTENT)
    return tuple(members)


class StatisticalCandidates:
    """The statsforecast members of a cluster's pool, fitted together per origin."""

    def __init__(self, members: Sequence[str], season: int, max_history: int | None = None) -> None:
        unknown = sorted(set(members) - set(FITTED_MEMBERS) - {ZERO})
        if unknown:
            raise ValueError(f"unknown statistical members {unknown}")
        self.members = tuple(members)
        self.season = season
        # Each member fits on at most this many recent periods: their cost grows with the
        # length of the history, and the recent periods are what they forecast from.
        self.max_history = max_history

    @property
    def names(self) -> tuple[str, ...]:
        return self.members

    def forecast(
        self, panel: SalesPanel, origins: Sequence[int], horizon: int
    ) -> dict[str, np.ndarray]:
        check_origins(panel, origins, horizon)
        out = {
            name: np.full((len(origins), panel.n_skus, horizon), np.nan) for name in self.members
        }
        fitted = [m for m in self.members if m != ZERO]
        for index, origin in enumerate(origins):
            rows, first = history_before(panel, origin)
            if ZERO in out:
                out[ZERO][index, rows] = 0.0
            if not fitted or len(rows) == 0:
                continue
            for name, values in self._fit_predict(panel, rows, first, origin, horizon).items():
                out[name][index, rows] = values
        return out

    def _fit_predict(
        self, panel: SalesPanel, rows: np.ndarray, first: np.ndarray, origin: int, horizon: int
    ) -> dict[str, np.ndarray]:
        # Imported here: statsforecast's import is not needed to load the package.
        from statsforecast import StatsForecast
        from statsforecast.models import Naive

        start = first[rows]
        if self.max_history is not None:
            start = np.maximum(start, origin - self.max_history)
        lengths = origin - start
        ids = np.repeat(np.arange(len(rows)), lengths)
        periods = np.concatenate([np.arange(begin, origin) for begin in start])
        frame = pd.DataFrame(
            {
                "unique_id": ids,
                "ds": panel.dates[periods],
                "y": panel.values[rows.repeat(lengths), periods],
            }
        )
        members = [m for m in self.members if m != ZERO]
        models = [_statsforecast_model(name, self.season) for name in members]
        engine = StatsForecast(models=models, freq=panel.freq, n_jobs=1, fallback_model=Naive())
        with warnings.catch_warnings():
            # Fits of near-constant series warn about their own numerics, SKU by SKU.
            warnings.simplefilter("ignore")
            result = engine.forecast(df=frame, h=horizon)
        result = result.sort_values(["unique_id", "ds"])
        return {
            name: result[name].to_numpy(dtype=float).reshape(len(rows), horizon) for name in members
        }


def _statsforecast_model(name: str, season: int) -> object:
    """statsforecast's model for the member ``name``, reporting under that name."""
    from statsforecast import models

    builders = {
        NAIVE: lambda: models.Naive(),
        SEASONAL_NAIVE: lambda: models.SeasonalNaive(season),
        # The mean of the same period in the last two seasons: steadier than one season.
        SEASONAL_WINDOW_AVERAGE: lambda: models.SeasonalWindowAverage(season, window_size=2),
        THETA: lambda: models.Theta(season_length=season),
        AUTO_ETS: lambda: models.AutoETS(season_length=season),
        CROSTON_SBA: lambda: models.CrostonSBA(),
        # Smoothing of the demand size and of the demand probability: the usual small values.
        TSB: lambda: models.TSB(alpha_d=0.1, alpha_p=0.1),
        ADIDA: lambda: models.ADIDA(),
        IMAPA: lambda: models.IMAPA(),
    }
    model = builders[name]()
    model.alias = name
    return model


# Members statsforecast fits; the zero forecast needs no fit.
FITTED_MEMBERS = (
    NAIVE,
    SEASONAL_NAIVE,
    SEASONAL_WINDOW_AVERAGE,
    THETA,
    AUTO_ETS,
    CROSTON_SBA,
    TSB,
    ADIDA,
    IMAPA,
)
