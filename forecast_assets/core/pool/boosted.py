"""The pool's global gradient-boosted candidate: one LightGBM model over every SKU.

Local models (ETS, Theta, naive) see one series at a time; a global model learns the shapes
that many SKUs share, which helps short and noisy series most. It is built as a user of
mlforecast would build it: target lags, rolling statistics of lag 1 and calendar features from
``MLForecast``, the panel's categorical attributes as LightGBM categoricals, and a per-series
standard scaling of the target so that one model fits small and large SKUs alike.

Cost stays bounded: one fit on the periods before the earliest backtest origin serves every
backtest origin (each later origin predicts from its own history through ``new_df``, with the
model unchanged), and one fit on all the data serves the origin after the data.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.pool.candidate import check_origins, history_before

MEMBER = "lightgbm"
SCALINGS = ("standard", "mean")


@dataclass(frozen=True)
class BoostedOptions:
    """Knobs of the features and the trees; the defaults were picked on the held-out horizon
    of the four benchmark sets together, not per set."""

    short_lags: int = 7
    """Lags 1..short_lags: the recent level and its momentum."""
    seasonal_multiples: tuple[int, ...] = (1, 2)
    """Lags ``k * season``, each used only where a season of history lies beyond it."""
    n_estimators: int = 300
    """Boosting rounds; with the learning rate, the budget of the fit."""
    learning_rate: float = 0.05
    """Shrinkage per tree: small enough that 300 trees do not overfit a few hundred SKUs."""
    num_leaves: int = 31
    """Tree size; LightGBM's default, enough for lag-calendar interactions."""
    min_child_samples: int = 20
    """Rows per leaf at least, so that a leaf never learns one SKU's noise."""
    colsample_bytree: float = 0.8
    """Share of features per tree, so that no single lag dominates every tree."""
    objective: str = "l1"
    """LightGBM objective on the scaled target: "l1" fits the median, which on sparse SKUs is
    the near-zero forecast that scores best, and is less pulled by one-off spikes elsewhere
    ("l2", "huber"; "tweedie" or "poisson" only with ``scaling="mean"``: nonnegative)."""
    scaling: str = "standard"
    """Per-series target scaling: "standard" (mlforecast's LocalStandardScaler: mean and std)
    or "mean" (divide by the mean demand: a scale that two observations already estimate)."""

    def __post_init__(self) -> None:
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, got {self.scaling!r}")
        if self.short_lags < 1:
            raise ValueError(f"short_lags must be >= 1, got {self.short_lags}")


def feature_lags(season: int, n_history: int, options: BoostedOptions) -> list[int]:
    """Lags that a history of ``n_history`` periods holds: a short lag needs a row beyond it,
    a seasonal lag a whole season beyond it (else it is NaN on almost every row)."""
    short = [lag for lag in range(1, options.short_lags + 1) if lag < n_history]
    seasonal = [k * season for k in options.seasonal_multiples if (k + 1) * season <= n_history]
    return sorted(set(short) | set(seasonal)) or [1]


def rolling_windows(season: int, n_history: int) -> tuple[int, ...]:
    """Windows of the rolling mean and std of lag 1: a month-like 4, the season, and a quarter
    of a long season (13 weeks of 52) or four short ones (28 days of 7); each only where the
    history is longer than the window."""
    windows = {4, season}
    if season >= 12:
        windows.add(season // 4)
    if season <= 7:
        windows.add(4 * season)
    return tuple(sorted(w for w in windows if 2 <= w < n_history))


def calendar_features(freq: str) -> list[str]:
    """Date features that vary within a year at ``freq``: the seasonal position the lags may
    miss when the history is short."""
    code = pd.tseries.frequencies.to_offset(freq).name.split("-")[0].lstrip("0123456789")
    if code.startswith("W"):
        return ["week", "month"]
    if code.endswith("MS") or code.endswith("ME") or code in {"M", "BM", "SM"}:
        return ["month"]
    if code.startswith("Q") or code.startswith("BQ"):
        return ["quarter"]
    if code in {"D", "B", "C"}:
        return ["dayofweek", "day", "month", "week"]
    if code in {"h", "H", "bh", "BH"}:
        return ["hour", "dayofweek"]
    return []


class BoostedCandidate:
    """One global LightGBM model (via mlforecast) as a pool member named ``lightgbm``."""

    def __init__(
        self,
        season: int,
        seed: int = 0,
        threads: int = 1,
        options: BoostedOptions | None = None,
    ) -> None:
        if season < 1:
            raise ValueError(f"season must be >= 1, got {season}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.season = season
        self.seed = seed
        self.threads = threads
        self.options = options or BoostedOptions()

    @property
    def names(self) -> tuple[str, ...]:
        return (MEMBER,)

    def forecast(
        self, panel: SalesPanel, origins: Sequence[int], horizon: int
    ) -> dict[str, np.ndarray]:
        """[len(origins), n_skus, horizon] floored at 0; origin ``o`` sees periods < o only."""
        check_origins(panel, origins, horizon)
        out = np.full((len(origins), panel.n_skus, horizon), np.nan)
        if not len(origins):
            return {MEMBER: out}
        long = _long_frame(panel)
        static = list(long.columns[3:])
        backtest = sorted({o for o in origins if o < panel.n_periods and _has_history(panel, o)})
        if backtest:
            cut = backtest[0]
            model = self._fit(long[long["ds"] < panel.dates[cut]], static, cut, panel.freq)
            for origin in backtest:
                forecast = self._predict(model, panel, long, origin, horizon, fitted_until=cut)
                out[[i for i, o in enumerate(origins) if o == origin]] = forecast
        if panel.n_periods in origins:
            model = self._fit(long, static, panel.n_periods, panel.freq)
            end = panel.n_periods
            forecast = self._predict(model, panel, long, end, horizon, fitted_until=end)
            out[[i for i, o in enumerate(origins) if o == panel.n_periods]] = forecast
        return {MEMBER: out}

    def _fit(self, train: pd.DataFrame, static: list[str], n_history: int, freq: str) -> Any:
        """One MLForecast fitted on ``train`` (the long rows of the periods before a cut)."""
        import lightgbm as lgb
        from mlforecast import MLForecast
        from mlforecast.lag_transforms import RollingMean, RollingStd

        options = self.options
        windows = rolling_windows(self.season, n_history)
        model = lgb.LGBMRegressor(
            objective=options.objective,
            n_estimators=options.n_estimators,
            learning_rate=options.learning_rate,
            num_leaves=options.num_leaves,
            min_child_samples=options.min_child_samples,
            colsample_bytree=options.colsample_bytree,
            random_state=self.seed,
            n_jobs=self.threads,
            deterministic=True,  # same numbers from the same call, whatever the threads do
            force_row_wise=True,
            verbosity=-1,
        )
        rolling = [RollingMean(window_size=w) for w in windows]
        rolling += [RollingStd(window_size=w) for w in windows]
        forecaster = MLForecast(
            models={MEMBER: model},
            freq=freq,
            lags=feature_lags(self.season, n_history, options),
            lag_transforms={1: rolling} if rolling else None,
            date_features=calendar_features(freq),
            target_transforms=[_scaler(options.scaling)],
            num_threads=1,  # feature updates are cheap next to the trees
        )
        # dropna=False: a lag the early rows lack is missing for LightGBM, not a dropped row,
        # so the seasonal lags do not cost the first seasons of every series.
        forecaster.fit(train, static_features=static, dropna=False)
        return forecaster

    def _predict(
        self,
        forecaster: Any,
        panel: SalesPanel,
        long: pd.DataFrame,
        origin: int,
        horizon: int,
        fitted_until: int,
    ) -> np.ndarray:
        """[n_skus, horizon] from the history before ``origin``; NaN rows where there is none."""
        with warnings.catch_warnings():
            # Short series lack the longer lags: missing values LightGBM handles, not a fault.
            warnings.filterwarnings("ignore", message="Found null values", category=UserWarning)
            if origin == fitted_until:
                predicted = forecaster.predict(h=horizon)
            else:
                history = long[long["ds"] < panel.dates[origin]]
                predicted = forecaster.predict(h=horizon, new_df=history)
        rows, _ = history_before(panel, origin)
        predicted = predicted.sort_values(["unique_id", "ds"], kind="stable")
        ids = predicted["unique_id"].to_numpy()[::horizon]
        if not np.array_equal(ids, rows):
            raise RuntimeError(f"mlforecast forecast SKUs {ids[:5]}... not those observed")
        out = np.full((panel.n_skus, horizon), np.nan)
        out[rows] = np.maximum(predicted[MEMBER].to_numpy().reshape(len(rows), horizon), 0.0)
        # A SKU whose history is constant (never sold, or one observation) has no scale, and
        # the scaler then unscales with 1, in the SKU's units: an all-zero SKU would get the
        # model's noise around 0. Its history says one thing only: that constant.
        history = panel.values[rows, :origin]
        low, high = np.nanmin(history, axis=1), np.nanmax(history, axis=1)
        constant = low == high
        out[rows[constant]] = low[constant, None]
        return out


def _has_history(panel: SalesPanel, origin: int) -> bool:
    return len(history_before(panel, origin)[0]) > 0


def _long_frame(panel: SalesPanel) -> pd.DataFrame:
    """mlforecast's long form: ``unique_id`` (the SKU's row), ``ds``, ``y``, then the static
    attributes as categoricals (named by position, as LightGBM refuses some characters).

    Rows start at each SKU's first observation: the NaNs before it are periods before the SKU
    existed, not zero demand. A NaN after it (the panel has none by contract) counts as 0, so
    that every series stays on the regular grid that its lags assume."""
    first = panel.first_index
    period = np.arange(panel.n_periods)
    keep = period[None, :] >= first[:, None]
    row, column = np.nonzero(keep)
    frame = pd.DataFrame(
        {
            "unique_id": row,
            "ds": panel.dates[column],
            "y": np.nan_to_num(panel.values[row, column], nan=0.0),
        }
    )
    for position, name in enumerate(panel.attributes.columns):
        categories = pd.Categorical(panel.attributes[name].to_numpy())
        frame[f"attribute_{position}"] = categories[row]
    return frame


def _scaler(scaling: str) -> Any:
    from mlforecast.target_transforms import LocalStandardScaler

    return LocalStandardScaler() if scaling == "standard" else _mean_scaler()


def _mean_scaler() -> Any:
    """mlforecast target transform dividing each series by its mean demand (1 where that is 0),
    as DeepAR scales: mlforecast ships no such scaler, and its API takes one."""
    from mlforecast.target_transforms import BaseTargetTransform

    class LocalMeanScaler(BaseTargetTransform):
        def fit_transform(self, df: pd.DataFrame) -> pd.DataFrame:
            means = df.groupby(self.id_col, observed=True)[self.target_col].mean()
            self.scale_ = means.where(means > 0, 1.0)
            return self.update(df)

        def update(self, df: pd.DataFrame) -> pd.DataFrame:
            scale = df[self.id_col].map(self.scale_).fillna(1.0).to_numpy()
            return df.assign(**{self.target_col: df[self.target_col].to_numpy() / scale})

        def inverse_transform(self, df: pd.DataFrame) -> pd.DataFrame:
            scale = df[self.id_col].map(self.scale_).fillna(1.0).to_numpy()
            columns = [c for c in df.columns if c not in (self.id_col, self.time_col)]
            return df.assign(**{c: df[c].to_numpy() * scale for c in columns})

    return LocalMeanScaler()
