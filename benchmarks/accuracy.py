"""Accuracy of forecast_assets next to its peers on the four real data sets of the benchmark
protocol (../shared/docs/BENCHMARK.md): MASE, sMAPE, RMSSE, 90% interval coverage, fit +
predict seconds, peak memory and the number of series scored, per data set and method.

    python benchmarks/accuracy.py --quick                # smoke test: 40 series a set, all methods
    python benchmarks/accuracy.py --methods peers        # every peer on every set
    python benchmarks/accuracy.py --datasets stallion --methods forecast_assets
    python benchmarks/accuracy.py --datasets stallion --project-types mixer advanced
    python benchmarks/accuracy.py --project-variant long=training.epochs=60,model.type=mixer
    python benchmarks/accuracy.py --table-only           # rewrite RESULTS.md from the cache
(python = .venv/bin/python, from the project root)

The last ``h`` periods of every series are held out; every method fits on the rest and
forecasts ``h`` periods. Each (data set, method) runs in its own child process, so its peak
memory is that process's ru_maxrss; fit + predict is timed as wall time after the imports,
the median of 3 runs when the first run takes under 60 s, else that one run (--quick: always
one run). Point forecasts and bounds are floored at zero for every method (all four sets are
demand; the project floors its own). Results are cached as JSON under
``benchmarks/results/<data set>/<method>.json`` (``benchmarks/results/quick/`` for --quick),
and the table is always written from the whole cache: a run of some methods or data sets
still writes the full table to ``benchmarks/RESULTS.md``.

The project row (``forecast_assets``) runs the real Dagster graph in process: the training
part goes to a temporary Parquet file, ``benchmarks/settings/<data set>.yaml`` gets its
``data.path`` and ``output.dir`` replaced, and ingest, every cluster partition and
``forecasts`` are materialized on a temporary instance, as ``forecast_assets.demo`` does.
``run_project(dataset, settings_overrides)`` does the same from Python; ``--project-types``
and ``--project-variant`` add rows named ``forecast_assets[<label>]``.

The peers need the ``bench`` extra:
    .venv/bin/pip install -c constraints.txt statsforecast mlforecast lightgbm neuralforecast
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import yaml

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

from datasets import LOADERS, Dataset, load_dataset, panel, split  # noqa: E402

from forecast_assets.core import metrics  # noqa: E402
from forecast_assets.settings import deep_merge  # noqa: E402

RESULTS_DIR = BENCH_DIR / "results"
SETTINGS_DIR = BENCH_DIR / "settings"
RESULTS_FILE = BENCH_DIR / "RESULTS.md"
QUICK_SERIES = 40
REPEAT_BELOW_S = 60.0
LEVEL = 90
MACHINE = "2 CPU cores, 24 GB, no GPU"
# One process per method: statsforecast fits one series at a time (n_jobs=1), so peak memory
# is the child's own; its per-series loop would scale to both cores with n_jobs=2.
STATS_JOBS = 1
THREADS = 2  # LightGBM and torch threads
# OpenMP threads that spin while they wait (the default) lose 5-10x when another process
# holds one of the two cores: LightGBM took 6 s instead of 0.6 s for the same fit here while
# other work ran. Every child waits passively, so timings survive a busy machine.
CHILD_ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}


class Forecast(NamedTuple):
    """``frame``: unique_id, ds, forecast, lower, upper (NaN without an interval); ``info``:
    what the method wants said next to its row."""

    frame: pd.DataFrame
    info: dict[str, Any]


@dataclass(frozen=True)
class Method:
    name: str
    run: Callable[[Dataset, pd.DataFrame, bool], Forecast]
    setup: Callable[[], None] = lambda: None  # imports, kept out of the timing
    datasets: tuple[str, ...] | None = None  # None: every data set
    peer: bool = True
    overrides: dict[str, Any] = field(default_factory=dict)  # project variants only


# ----------------------------------------------------------------------------- peers


def _future_dates(data: Dataset, train: pd.DataFrame) -> pd.DataFrame:
    """unique_id, ds of the ``h`` periods after each series' training part."""
    last = train.groupby("unique_id")["ds"].max()
    rows = [
        pd.DataFrame(
            {
                "unique_id": uid,
                "ds": pd.date_range(end, periods=data.horizon + 1, freq=data.freq)[1:],
            }
        )
        for uid, end in last.items()
    ]
    return pd.concat(rows, ignore_index=True)


def _standard_columns(out: pd.DataFrame, point: str, prefix: str, level: bool) -> pd.DataFrame:
    """A peer's output in Forecast.frame's columns."""
    return pd.DataFrame(
        {
            "unique_id": out["unique_id"].astype(str).to_numpy(),
            "ds": pd.to_datetime(out["ds"]).to_numpy(),
            "forecast": out[point].to_numpy(dtype="float64"),
            "lower": out[f"{prefix}-lo-{LEVEL}"].to_numpy(dtype="float64") if level else np.nan,
            "upper": out[f"{prefix}-hi-{LEVEL}"].to_numpy(dtype="float64") if level else np.nan,
        }
    )


def _import_statsforecast() -> None:
    import statsforecast  # noqa: F401


def _statsforecast(
    data: Dataset, train: pd.DataFrame, model: Any, intervals: bool = True
) -> tuple[pd.DataFrame, Any]:
    from statsforecast import StatsForecast

    forecaster = StatsForecast(models=[model], freq=data.freq, n_jobs=STATS_JOBS)
    forecaster.fit(train)
    out = forecaster.predict(h=data.horizon, level=[LEVEL] if intervals else None)
    name = str(model)
    return _standard_columns(out, name, name, intervals), forecaster


def seasonal_naive(data: Dataset, train: pd.DataFrame, quick: bool) -> Forecast:
    from statsforecast.models import SeasonalNaive

    frame, _ = _statsforecast(data, train, SeasonalNaive(season_length=data.season))
    return Forecast(frame, {})


def naive(data: Dataset, train: pd.DataFrame, quick: bool) -> Forecast:
    from statsforecast.models import Naive

    frame, _ = _statsforecast(data, train, Naive())
    return Forecast(frame, {})


def auto_ets(data: Dataset, train: pd.DataFrame, quick: bool) -> Forecast:
    from statsforecast.models import AutoETS

    frame, forecaster = _statsforecast(data, train, AutoETS(season_length=data.season))
    # Which ETS form won per series (E, T, S, damped): statsforecast fits seasonal ETS for
    # seasons above 24 too (since early 2023; R's forecast::ets drops the season there),
    # provided the series is longer than one season.
    components = pd.Series([fitted.model_["components"] for fitted in forecaster.fitted_[:, 0]])
    seasonal = components.str[2] != "N"
    return Forecast(
        frame,
        {
            "seasonal_share": float(seasonal.mean()),
            "components": components.value_counts().head(6).to_dict(),
            "note": f"seasonal ETS chosen for {seasonal.mean():.0%} of series (m={data.season})",
        },
    )


def auto_theta(data: Dataset, train: pd.DataFrame, quick: bool) -> Forecast:
    from statsforecast.models import AutoTheta

    frame, _ = _statsforecast(data, train, AutoTheta(season_length=data.season))
    return Forecast(frame, {})


def croston_optimized(data: Dataset, train: pd.DataFrame, quick: bool) -> Forecast:
    from statsforecast.models import CrostonOptimized

    frame, _ = _statsforecast(data, train, CrostonOptimized(), intervals=False)
    return Forecast(frame, {"note": "no native intervals"})


def adida(data: Dataset, train: pd.DataFrame, quick: bool) -> Forecast:
    from statsforecast.models import ADIDA

    frame, _ = _statsforecast(data, train, ADIDA(), intervals=False)
    return Forecast(frame, {"note": "no native intervals"})


def zero(data: Dataset, train: pd.DataFrame, quick: bool) -> Forecast:
    frame = _future_dates(data, train).assign(forecast=0.0, lower=np.nan, upper=np.nan)
    return Forecast(frame, {"note": "baseline for intermittent demand"})


def _week_of_year(dates: pd.DatetimeIndex) -> np.ndarray:
    return dates.isocalendar().week.to_numpy(dtype="int64")


# Features of the LightGBM peer per data set: target lags, rolling means of lag 1, calendar
# features, and the conformal windows (as many as the short series allow).
LIGHTGBM_FEATURES: dict[str, dict[str, Any]] = {
    "walmart_store_sales": {
        "lags": [1, 2, 3, 4, 8, 13, 26, 52],
        "rolling": [4, 13],
        "date_features": ["month", _week_of_year],
        "conformal_windows": 3,
    },
    "stallion": {
        "lags": list(range(1, 13)),
        "rolling": [3, 6],
        "date_features": ["month"],
        "conformal_windows": 3,
    },
    "carparts": {
        "lags": [1, 2, 3, 6, 12],
        "rolling": [3, 6, 12],
        "date_features": ["month"],
        "conformal_windows": 2,
    },
    "store_item_demand": {
        "lags": [1, 2, 3, 4, 5, 6, 7, 14, 21, 28],
        "rolling": [7, 28],
        "date_features": ["dayofweek", "month", "day", _week_of_year],
        "conformal_windows": 4,
    },
}


def _import_lightgbm() -> None:
    import lightgbm  # noqa: F401
    import mlforecast  # noqa: F401


def lightgbm(data: Dataset, train: pd.DataFrame, quick: bool) -> Forecast:
    import lightgbm as lgb
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean
    from mlforecast.target_transforms import LocalStandardScaler
    from mlforecast.utils import PredictionIntervals

    features = LIGHTGBM_FEATURES[data.name]
    model = lgb.LGBMRegressor(
        n_estimators=50 if quick else 500,
        learning_rate=0.05,
        num_leaves=63,
        n_jobs=THREADS,
        random_state=0,
        verbosity=-1,
    )
    forecaster = MLForecast(
        models={"lightgbm": model},
        freq=data.freq,
        lags=features["lags"],
        lag_transforms={1: [RollingMean(window_size=w) for w in features["rolling"]]},
        date_features=features["date_features"],
        target_transforms=[LocalStandardScaler()],  # one global model over many scales
        num_threads=1,  # feature updates are cheap next to the trees
    )
    windows = features["conformal_windows"]
    forecaster.fit(
        train,
        static_features=[],
        prediction_intervals=PredictionIntervals(n_windows=windows, h=data.horizon),
    )
    out = forecaster.predict(h=data.horizon, level=[LEVEL])  # recursive over the horizon
    return Forecast(
        _standard_columns(out, "lightgbm", "lightgbm", True),
        {"note": f"recursive; conformal intervals from {windows} windows"},
    )


# NHITS input window per data set: a small multiple of h that covers at least a season where
# the history allows (Walmart: 64 weeks = 8 h, so a window sees last year's same weeks).
NHITS_INPUT: dict[str, int] = {
    "walmart_store_sales": 64,
    "stallion": 18,
    "carparts": 24,
    "store_item_demand": 84,
}
NHITS_STEPS = 1000


def _import_neuralforecast() -> None:
    import neuralforecast.models  # noqa: F401


def nhits(data: Dataset, train: pd.DataFrame, quick: bool) -> Forecast:
    import logging

    import torch
    from neuralforecast import NeuralForecast
    from neuralforecast.losses.pytorch import MQLoss
    from neuralforecast.models import NHITS

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning_fabric").setLevel(logging.ERROR)
    torch.set_num_threads(THREADS)
    steps = 20 if quick else NHITS_STEPS
    model = NHITS(
        h=data.horizon,
        input_size=NHITS_INPUT[data.name],
        # Quantile heads for the 5% / 50% / 95% levels: the median is the point forecast
        # (the pinball loss at 0.5 is half the MAE, NHITS's default loss), so the 90%
        # interval costs no extra training.
        loss=MQLoss(level=[LEVEL]),
        max_steps=steps,
        scaler_type="robust",
        random_seed=1,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
    )
    forecaster = NeuralForecast(models=[model], freq=data.freq)
    forecaster.fit(df=train)
    out = forecaster.predict().reset_index()
    return Forecast(
        _standard_columns(out, "NHITS-median", "NHITS", True),
        {"note": f"input {NHITS_INPUT[data.name]}, {steps} steps, MQLoss median"},
    )


# --------------------------------------------------------------------------- project


def _import_project() -> None:
    import dagster  # noqa: F401

    import forecast_assets.demo  # noqa: F401  (builds the default Definitions on import)


def _set_path(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for name in parents:
        target = target.setdefault(name, {})
    target[leaf] = value


def project_settings(
    data: Dataset, folder: Path, quick: bool, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``benchmarks/settings/<data set>.yaml`` with the run's data path and output folder,
    the quick-run shortcuts and ``overrides`` (nested mapping) applied."""
    settings = yaml.safe_load((SETTINGS_DIR / f"{data.name}.yaml").read_text())
    settings["data"]["path"] = str(folder / "sales.parquet")
    settings["output"]["dir"] = str(folder / "output")
    if quick:
        settings = deep_merge(
            settings,
            {
                "training": {"epochs": 2, "max_windows_per_epoch": 2048},
                # Two clusters at least: with a single cluster partition the forecasts job
                # gets one value instead of a dict and fails (a project bug).
                "clustering": {"k_max": 3, "min_cluster_size": 1},
            },
        )
    settings = deep_merge(settings, overrides or {})
    if settings.get("forecast", {}).get("confidence", 0.9) != LEVEL / 100:
        raise ValueError(f"forecast.confidence must be {LEVEL / 100}: the table scores that level")
    return settings


def project_input(data: Dataset, train: pd.DataFrame) -> pd.DataFrame:
    """The training part in the project's long format: key columns, date, quantity."""
    long = train.merge(data.keys, on="unique_id", how="left")
    return long.rename(columns={"ds": "date", "y": "quantity"})[
        [*data.key_columns, "date", "quantity"]
    ]


def _project_keys(data: Dataset, separator: str) -> dict[str, str]:
    """The project's SKU id (key columns joined by data.sku_separator) -> unique_id."""
    columns = list(data.key_columns)
    key = data.keys[columns[0]].astype(str)
    for column in columns[1:]:
        key = key + separator + data.keys[column].astype(str)
    return dict(zip(key, data.keys["unique_id"], strict=True))


def forecast_project(
    data: Dataset, train: pd.DataFrame, quick: bool, overrides: dict[str, Any] | None = None
) -> Forecast:
    """Run the project's whole asset graph on ``train`` and return its published forecasts;
    series the project filtered out get the seasonal naive forecast (and no interval)."""
    import dagster as dg

    from forecast_assets.definitions import build_definitions
    from forecast_assets.demo import run_graph

    with tempfile.TemporaryDirectory(prefix="forecast_assets_bench_") as name:
        folder = Path(name)
        project_input(data, train).to_parquet(folder / "sales.parquet", index=False)
        settings = project_settings(data, folder, quick, overrides)
        settings_file = folder / "settings.yaml"
        settings_file.write_text(yaml.safe_dump(settings, sort_keys=False))
        for variable in [v for v in os.environ if v.startswith("FORECAST_")]:
            del os.environ[variable]  # the developer's overrides must not leak in
        os.environ["FORECAST_SETTINGS"] = str(settings_file)
        definitions = build_definitions(str(settings_file))
        home = folder / "dagster_home"
        home.mkdir()
        with dg.instance_for_test(temp_dir=str(home)) as instance:
            try:
                clusters = run_graph(definitions, instance)
            except SystemExit as exc:  # run_graph exits on a failed run, after printing it
                raise RuntimeError("a run of the project's graph failed (see the log)") from exc
            # What the gate decided per cluster, and the backtest it decided on.
            summary = definitions.load_asset_value("evaluation_summary", instance=instance)
            per_cluster = summary[
                ["cluster", "model", "skus", "served", "mase", "mase_seasonal_naive"]
            ].round(4)
        table = pd.read_parquet(folder / "output" / "forecasts.parquet")

    separator = settings["data"].get("sku_separator", "-")
    to_id = _project_keys(data, separator)
    unknown = sorted(set(table["sku"]) - set(to_id))
    if unknown:
        raise ValueError(f"the project forecast SKUs the data does not have: {unknown[:5]}")
    frame = pd.DataFrame(
        {
            "unique_id": table["sku"].map(to_id).to_numpy(),
            "ds": pd.to_datetime(table["date"]).to_numpy(),
            "forecast": table["forecast"].to_numpy(dtype="float64"),
            "lower": table["lower"].to_numpy(dtype="float64"),
            "upper": table["upper"].to_numpy(dtype="float64"),
        }
    )
    expected = _future_dates(data, train)
    if set(frame["ds"]) != set(expected["ds"]):
        raise ValueError(
            f"the project forecast {sorted(set(frame['ds']))[:3]}..., "
            f"the test periods are {sorted(set(expected['ds']))[:3]}..."
        )
    dropped = sorted(set(data.keys["unique_id"]) - set(frame["unique_id"]))
    if dropped:
        frame = pd.concat([frame, _seasonal_naive_fill(data, train, dropped)], ignore_index=True)
    info: dict[str, Any] = {
        "clusters": len(clusters),
        "models": sorted(table["model"].unique().tolist()),
        "filled_with_seasonal_naive": len(dropped),
        "filled_examples": dropped[:10],
        "overrides": overrides or {},
        "note": f"{len(clusters)} clusters, {'/'.join(sorted(table['model'].unique()))}",
        "clusters_backtest": per_cluster.to_dict(orient="records"),
    }
    if dropped:
        info["note"] += (
            f"; {len(dropped)} series filtered out by the project, scored with seasonal naive "
            "(no interval)"
        )
    return Forecast(frame, info)


def _seasonal_naive_fill(data: Dataset, train: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    history = panel(train[train["unique_id"].isin(ids)], pd.Index(ids))
    values = metrics.seasonal_naive_forecast(history, data.horizon, data.season)
    dates = _future_dates(data, train[train["unique_id"].isin(ids)])
    dates = dates.sort_values(["unique_id", "ds"], kind="stable")
    return dates.assign(forecast=values.ravel(), lower=np.nan, upper=np.nan)


def run_project(
    dataset: str,
    settings_overrides: dict[str, Any] | None = None,
    quick: bool = False,
    label: str | None = None,
) -> dict[str, Any]:
    """Run forecast_assets on ``dataset``'s training part, score it on the held-out periods
    and return the result row (as cached under benchmarks/results). ``settings_overrides``
    is a nested mapping merged into benchmarks/settings/<dataset>.yaml, e.g.
    ``{"model": {"type": "mixer"}}``. Peak memory is this process's."""
    name = f"forecast_assets[{label}]" if label else "forecast_assets"
    method = _project_method(name, settings_overrides or {})
    return evaluate(dataset, method, quick)


def _project_method(name: str, overrides: dict[str, Any]) -> Method:
    def run(data: Dataset, train: pd.DataFrame, quick: bool) -> Forecast:
        return forecast_project(data, train, quick, overrides)

    return Method(name, run, _import_project, peer=False, overrides=overrides)


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("SeasonalNaive", seasonal_naive, _import_statsforecast),
        Method("Naive", naive, _import_statsforecast),
        Method("AutoETS", auto_ets, _import_statsforecast),
        Method("AutoTheta", auto_theta, _import_statsforecast),
        Method("CrostonOptimized", croston_optimized, _import_statsforecast, ("carparts",)),
        Method("ADIDA", adida, _import_statsforecast, ("carparts",)),
        Method("Zero", zero, datasets=("carparts",)),
        Method("LightGBM", lightgbm, _import_lightgbm),
        Method("NHITS", nhits, _import_neuralforecast),
        _project_method("forecast_assets", {}),
    ]
}


# --------------------------------------------------------------------------- scoring


def _rmsse(actual: np.ndarray, forecast: np.ndarray, history: np.ndarray) -> tuple[float, int]:
    """M5's RMSSE per series, sqrt(mean (y - f)^2 / mean (y_t - y_{t-1})^2) with the in-sample
    differences from each series' first observed value on, averaged over series; series with
    a zero or undefined scale are left out and counted. Used where forecast_assets.core.metrics
    has no ``rmsse`` (older checkouts)."""
    with np.errstate(invalid="ignore"):
        scale = np.nanmean((history[:, 1:] - history[:, :-1]) ** 2, axis=1)
    usable = np.isfinite(scale) & (scale > 0)
    if not usable.any():
        return float("nan"), len(scale)
    per_series = np.sqrt(np.mean((actual - forecast) ** 2, axis=1)[usable] / scale[usable])
    return float(np.mean(per_series)), int((~usable).sum())


def _matrix(frame: pd.DataFrame, column: str, ids: pd.Index, dates: pd.Index) -> np.ndarray:
    wide = frame.pivot(index="unique_id", columns="ds", values=column)
    return wide.reindex(index=ids, columns=dates).to_numpy(dtype="float64")


def score(
    data: Dataset, train: pd.DataFrame, test: pd.DataFrame, forecast: pd.DataFrame
) -> dict[str, Any]:
    """Metrics of ``forecast`` against the held-out ``test``, every series of ``data``."""
    ids = pd.Index(data.keys["unique_id"])
    dates = pd.Index(np.sort(test["ds"].unique()))
    actual = _matrix(test, "y", ids, dates)
    history = panel(train, ids)
    point = _matrix(forecast, "forecast", ids, dates)
    if np.isnan(actual).any():
        raise ValueError("the test periods are not common to every series")
    if np.isnan(point).any():
        missing = int(np.isnan(point).any(axis=1).sum())
        raise ValueError(f"{missing} series have no forecast for some test period")
    point = np.maximum(point, 0.0)
    lower = np.maximum(_matrix(forecast, "lower", ids, dates), 0.0)
    upper = np.maximum(_matrix(forecast, "upper", ids, dates), 0.0)
    rmsse = getattr(metrics, "rmsse", None) or _rmsse
    mase_value, mase_skipped = metrics.mase(actual, point, history, data.season)
    rmsse_value, rmsse_skipped = rmsse(actual, point, history)
    with_interval = ~(np.isnan(lower) | np.isnan(upper)).any(axis=1)
    coverage = (
        metrics.interval_coverage(actual[with_interval], lower[with_interval], upper[with_interval])
        if with_interval.any()
        else None
    )
    return {
        "mase": mase_value,
        "smape": metrics.smape(actual, point),
        "rmsse": rmsse_value,
        "coverage90": coverage,
        "series": len(ids),
        "series_with_interval": int(with_interval.sum()),
        "mase_left_out": mase_skipped,
        "rmsse_left_out": rmsse_skipped,
        "rmsse_source": "forecast_assets.core.metrics" if rmsse is not _rmsse else "local",
    }


def evaluate(dataset: str, method: Method, quick: bool) -> dict[str, Any]:
    """Load, split, time ``method``'s fit + predict and score it: one result row."""
    data = load_dataset(dataset, QUICK_SERIES if quick else None)
    train, test = split(data)
    method.setup()
    seconds: list[float] = []
    while True:
        started = time.perf_counter()
        forecast = method.run(data, train, quick)
        seconds.append(time.perf_counter() - started)
        if quick or seconds[0] >= REPEAT_BELOW_S or len(seconds) == 3:
            break
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "dataset": dataset,
        "method": method.name,
        "quick": quick,
        **score(data, train, test, forecast.frame),
        "seconds": statistics.median(seconds),
        "seconds_runs": seconds,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "info": forecast.info,
        "data_note": data.note,
        "horizon": data.horizon,
        "season": data.season,
        "freq": data.freq,
    }


# ---------------------------------------------------------------------- orchestration


def versions() -> dict[str, str]:
    names = [
        "statsforecast",
        "mlforecast",
        "lightgbm",
        "neuralforecast",
        "torch",
        "dagster",
        "pandas",
        "numpy",
    ]
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["python"] = platform.python_version()
    found["forecast_assets"] = _project_revision()
    return found


def _project_revision() -> str:
    """The checkout's commit, marked when forecast_assets/ has uncommitted changes."""
    root = BENCH_DIR.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "forecast_assets"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{commit}{' + uncommitted changes' if changes else ''}" if commit else "unknown"


def result_path(dataset: str, method: str, quick: bool) -> Path:
    return (RESULTS_DIR / "quick" if quick else RESULTS_DIR) / dataset / f"{method}.json"


def run_in_child(dataset: str, method: Method, quick: bool, command: str) -> dict[str, Any]:
    """Evaluate one (data set, method) in a fresh Python process and cache its result."""
    path = result_path(dataset, method.name, quick)
    path.parent.mkdir(parents=True, exist_ok=True)
    arguments = [sys.executable, __file__, "--child", dataset, method.name, "--result", str(path)]
    if method.overrides:
        arguments += ["--overrides", json.dumps(method.overrides)]
    if quick:
        arguments.append("--quick")
    log_path = path.with_suffix(".log")  # kept when the child fails
    path.unlink(missing_ok=True)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with log_path.open("w") as log:
        child = subprocess.run(
            arguments, stdout=log, stderr=subprocess.STDOUT, text=True, env=CHILD_ENV
        )
    wall = time.perf_counter() - started
    if child.returncode != 0 or not path.exists():
        lines = log_path.read_text().strip().splitlines() or ["no output"]
        result = {"dataset": dataset, "method": method.name, "quick": quick}
        result["error"] = f"exit {child.returncode}: {lines[-1][:300]} (log: {log_path.name})"
    else:
        result = json.loads(path.read_text())
        log_path.unlink()
    result.update(
        {
            # Other work on the machine slows every timing: the load average tells.
            "load_average_before": load_before,
            "load_average_after": os.getloadavg()[0],
            "child_wall_s": wall,
            "measured": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": command,
            "versions": versions(),
        }
    )
    path.write_text(json.dumps(result, indent=2, default=str))
    return result


def cached_results(quick: bool) -> list[dict[str, Any]]:
    """Every cached row, in data set order, then registry order, then variants by name."""
    root = RESULTS_DIR / "quick" if quick else RESULTS_DIR
    order = {name: i for i, name in enumerate(METHODS)}
    rows = []
    for dataset in LOADERS:
        files = sorted((root / dataset).glob("*.json"))
        found = [json.loads(file.read_text()) for file in files]
        found.sort(key=lambda r: (order.get(r["method"], len(order)), r["method"]))
        rows.extend(found)
    return rows


def _number(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return f"{value:,.{digits}f}"


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| data set | method | MASE | sMAPE | RMSSE | coverage 90% | fit+predict s | runs "
        "| peak MB | series | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(
                f"| {r['dataset']} | {r['method']} | failed | | | | | | | | {r['error']} |"
            )
            continue
        coverage = "-" if r["coverage90"] is None else f"{r['coverage90']:.1%}"
        if r["coverage90"] is not None and r["series_with_interval"] < r["series"]:
            coverage += f" ({r['series_with_interval']:,} series)"
        notes = [r["info"].get("note", "")] if r["info"].get("note") else []
        if r["mase_left_out"] or r["rmsse_left_out"]:
            notes.append(
                f"zero scale, left out: {r['mase_left_out']} (MASE), {r['rmsse_left_out']} (RMSSE)"
            )
        lines.append(
            f"| {r['dataset']} | {r['method']} | {_number(r['mase'], 3)} "
            f"| {_number(r['smape'], 1)} | {_number(r['rmsse'], 3)} | {coverage} "
            f"| {_number(r['seconds'], 1)} | {len(r['seconds_runs'])} "
            f"| {_number(r['peak_rss_mb'], 0)} | {r['series']:,} | {'; '.join(notes)} |"
        )
    return "\n".join(lines)


def write_report(rows: list[dict[str, Any]], path: Path, quick: bool) -> None:
    runs = "\n".join(
        f"- {r['dataset']} / {r['method']}: {r.get('measured', '?')}, load average "
        f"{r.get('load_average_before', float('nan')):.1f} before, "
        f"{r.get('load_average_after', float('nan')):.1f} after; `{r.get('command', '?')}`"
        for r in rows
    )
    current = versions()
    project_revisions = sorted(
        {
            r["versions"]["forecast_assets"]
            for r in rows
            if "versions" in r and not (r["method"] in METHODS and METHODS[r["method"]].peer)
        }
    )
    title = f"quick smoke test, {QUICK_SERIES} random series per set" if quick else "full"
    # The reading of the table is written by hand (it needs judgement) and kept beside it.
    notes_file = BENCH_DIR / "RESULTS_NOTES.md"
    notes = f"\n{notes_file.read_text()}\n" if notes_file.exists() and not quick else ""
    library_versions = ", ".join(f"{name} {version}" for name, version in current.items())
    text = f"""# Accuracy benchmark ({title})

Written by `benchmarks/accuracy.py` on {datetime.date.today().isoformat()} from the cached
results under `benchmarks/results/{"quick/" if quick else ""}`; protocol:
`../shared/docs/BENCHMARK.md`. Machine: {MACHINE} ({platform.machine()}, Python
{platform.python_version()}). Library versions now: {library_versions}.
forecast_assets revision of the project rows: {", ".join(project_revisions) or "none"}.

Each row is one child process: fit + predict wall time after the imports (the median of 3 runs
when the first run took under 60 s, else one run: the `runs` column), peak memory = that
process's ru_maxrss. Forecasts and bounds are floored at 0 for every method. MASE with the
season m of the protocol (W 52, MS 12, D 7), sMAPE in percent (0/0 = 0), RMSSE as in M5;
means over series, every series of the set scored by every method. How each method is set
up, and what the notes mean: `benchmarks/README.md`, section `accuracy.py`.

{table(rows)}
{notes}
When and how each row was measured (load average of the 2-core machine around the child):

{runs}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``label=key.path=value,key.path=value`` -> (label, nested overrides)."""
    label, _, assignments = text.partition("=")
    if not label or not assignments:
        raise argparse.ArgumentTypeError(f"expected label=key.path=value,..., got {text!r}")
    overrides: dict[str, Any] = {}
    for assignment in assignments.split(","):
        key, _, value = assignment.partition("=")
        if not key or not _:
            raise argparse.ArgumentTypeError(f"expected key.path=value, got {assignment!r}")
        _set_path(overrides, key.strip(), yaml.safe_load(value))
    return label, overrides


def child_main(args: argparse.Namespace) -> None:
    dataset, name = args.child
    overrides = json.loads(args.overrides) if args.overrides else {}
    method = METHODS.get(name) or _project_method(name, overrides)
    result = evaluate(dataset, method, args.quick)
    Path(args.result).write_text(json.dumps(result, indent=2, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", choices=list(LOADERS), default=list(LOADERS))
    parser.add_argument(
        "--methods",
        nargs="+",
        help=f"any of {', '.join(METHODS)}, or 'peers' / 'project' / 'all' "
        "(default: all, or none besides the variants when variants are given)",
    )
    parser.add_argument(
        "--project-types",
        nargs="+",
        default=[],
        help="extra project rows forecast_assets[<type>] with model.type: <type>",
    )
    parser.add_argument(
        "--project-variant",
        action="append",
        default=[],
        type=_parse_variant,
        help="extra project row forecast_assets[label]: label=key.path=value,key.path=value",
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SERIES} series per set")
    parser.add_argument("--table-only", action="store_true", help="rewrite the table only")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--overrides", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return

    variants = [(t, {"model": {"type": t}}) for t in args.project_types]
    variants += args.project_variant
    chosen = args.methods or ([] if variants else ["all"])
    methods: list[Method] = []
    for name in chosen:
        if name == "all":
            methods += list(METHODS.values())
        elif name == "peers":
            methods += [m for m in METHODS.values() if m.peer]
        elif name == "project":
            methods.append(METHODS["forecast_assets"])
        elif name in METHODS:
            methods.append(METHODS[name])
        else:
            parser.error(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    methods += [_project_method(f"forecast_assets[{lab}]", o) for lab, o in variants]
    methods = list({m.name: m for m in methods}.values())

    command = shlex.join(["python", "benchmarks/accuracy.py", *sys.argv[1:]])
    if not args.table_only:
        started = time.perf_counter()
        for dataset in args.datasets:
            for method in methods:
                if method.datasets is not None and dataset not in method.datasets:
                    continue
                print(f"{dataset} / {method.name} ...", end=" ", flush=True, file=sys.stderr)
                result = run_in_child(dataset, method, args.quick, command)
                status = result.get("error") or (
                    f"MASE {result['mase']:.3f}, {result['seconds']:.1f}s, "
                    f"{result['peak_rss_mb']:.0f} MB"
                )
                print(f"{status} ({result['child_wall_s']:.0f}s in all)", file=sys.stderr)
        print(f"all runs: {time.perf_counter() - started:.0f}s", file=sys.stderr)

    rows = cached_results(args.quick)
    report = RESULTS_DIR / "quick" / "RESULTS.md" if args.quick else RESULTS_FILE
    write_report(rows, report, args.quick)
    print(table(rows))
    print(f"\nwritten to {report}", file=sys.stderr)


if __name__ == "__main__":
    main()
