"""PNG plots for the UI and the reports (matplotlib's object API: no global state, no display)."""

from __future__ import annotations

import base64
import io
import re
from statistics import NormalDist

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from forecast_assets.core.clustering import ClusterResult
from forecast_assets.core.models.artifact import EpochRecord


def k_selection_plot(result: ClusterResult) -> bytes:
    """Inertia (elbow) and Davies-Bouldin index against k, with the chosen k marked."""
    figure = Figure(figsize=(8, 3.5), layout="constrained")
    left, right = figure.subplots(1, 2)
    ks = sorted(result.inertia)
    left.plot(ks, [result.inertia[k] for k in ks], marker="o")
    left.set(title="Elbow: k-means inertia", xlabel="k", ylabel="inertia")
    left.axvline(result.elbow_k, color="grey", linestyle=":", label=f"elbow k={result.elbow_k}")
    db_ks = sorted(result.davies_bouldin)
    right.plot(db_ks, [result.davies_bouldin[k] for k in db_ks], marker="o", color="tab:orange")
    right.set(title="Davies-Bouldin (lower is better)", xlabel="k", ylabel="index")
    for axis in (left, right):
        axis.axvline(result.k, color="tab:red", linestyle="--", label=f"chosen k={result.k}")
        axis.legend(loc="best", fontsize=8)
    return figure_png(figure)


def loss_curve_plot(history: list[EpochRecord], best_epoch: int) -> bytes:
    figure = Figure(figsize=(6, 3.5), layout="constrained")
    axis = figure.subplots()
    epochs = [r.epoch for r in history]
    axis.plot(epochs, [r.train_loss for r in history], marker=".", label="train")
    axis.plot(epochs, [r.validation_loss for r in history], marker=".", label="validation")
    axis.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch {best_epoch}")
    axis.set(title="Training loss (scaled units)", xlabel="epoch", ylabel="loss")
    axis.legend(fontsize=8)
    return figure_png(figure)


def optimization_history_plot(
    trials: pd.DataFrame, title: str, direction: str = "minimize"
) -> bytes:
    """Each trial's value (pruned ones at their last reported loss) and the running best of
    the completed trials. ``trials`` has one row per trial with ``number``, ``state``
    (COMPLETE, PRUNED, FAIL, ...) and ``value``."""
    figure = Figure(figsize=(6, 3.5), layout="constrained")
    axis = figure.subplots()
    states = trials["state"] if len(trials) else pd.Series(dtype=str)
    for state, style in (
        ("COMPLETE", {"color": "tab:blue", "marker": "o"}),
        ("PRUNED", {"color": "tab:grey", "marker": "x"}),
    ):
        rows = trials[states == state]
        if len(rows):
            axis.scatter(rows["number"], rows["value"], label=state.lower(), **style)
    complete = trials[states == "COMPLETE"]
    if len(complete):
        values = pd.Series(complete["value"].to_numpy())
        running = values.cummin() if direction == "minimize" else values.cummax()
        axis.step(complete["number"], running, where="post", color="tab:red", label="best so far")
        axis.legend(fontsize=8)
    else:
        _no_data(axis, "no completed trial")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set(title=title, xlabel="trial", ylabel="validation loss")
    return figure_png(figure)


def forecast_vs_actual_plot(
    predictions: pd.DataFrame, history: pd.DataFrame, title: str, n_skus: int = 6
) -> bytes:
    """Recent history, the held-out actuals, the forecast with its interval and seasonal naive,
    for the ``n_skus`` SKUs with the most demand in the test horizon."""
    top = predictions.groupby("sku")["actual"].sum().nlargest(n_skus).index
    if len(top) == 0:
        return _no_data_png(title, "no predictions")
    figure = Figure(figsize=(12, 2.2 * int(np.ceil(len(top) / 2))), layout="constrained")
    axes = np.atleast_1d(figure.subplots(int(np.ceil(len(top) / 2)), 2, squeeze=False)).ravel()
    for axis, sku in zip(axes, top, strict=False):
        past = history[history["sku"] == sku]
        test = predictions[predictions["sku"] == sku]
        axis.plot(past["date"], past["quantity"], color="black", linewidth=0.8, label="history")
        axis.plot(test["date"], test["actual"], color="black", marker=".", label="actual")
        axis.plot(test["date"], test["forecast"], color="tab:blue", marker=".", label="forecast")
        axis.fill_between(
            test["date"],
            test["lower"],
            test["upper"],
            color="tab:blue",
            alpha=0.2,
            label="interval",
        )
        axis.plot(
            test["date"],
            test["seasonal_naive"],
            color="tab:orange",
            linestyle="--",
            label="seasonal naive",
        )
        axis.set_title(str(sku), fontsize=9)
        _concise_dates(axis)
        axis.tick_params(labelsize=7)
    for axis in axes[len(top) :]:
        axis.set_visible(False)
    axes[0].legend(fontsize=7, loc="upper left")
    figure.suptitle(title)
    return figure_png(figure)


SCATTER_MAX_POINTS = 20_000
SCATTER_SEED = 0


def prediction_quality_plot(predictions: pd.DataFrame, title: str) -> bytes:
    """Four diagnostics of point forecasts against actuals (columns ``actual``, ``forecast``):
    predicted vs actual with the y = x line, the residual histogram, residuals vs predicted,
    and a normal Q-Q plot of standardized residuals. Residual = actual - forecast. The scatter
    panels show at most ``SCATTER_MAX_POINTS`` rows, drawn with a fixed seed."""
    actual = pd.to_numeric(predictions["actual"], errors="coerce").to_numpy(dtype=float)
    forecast = pd.to_numeric(predictions["forecast"], errors="coerce").to_numpy(dtype=float)
    finite = np.isfinite(actual) & np.isfinite(forecast)
    actual, forecast = actual[finite], forecast[finite]
    residual = actual - forecast
    n = len(residual)
    if n > SCATTER_MAX_POINTS:
        rng = np.random.default_rng(SCATTER_SEED)
        shown = np.sort(rng.choice(n, size=SCATTER_MAX_POINTS, replace=False))
    else:
        shown = np.arange(n)
    alpha = float(np.clip(300 / max(len(shown), 1), 0.05, 0.8))
    figure = Figure(figsize=(10, 8), layout="constrained")
    (scatter, histogram), (versus, qq) = figure.subplots(2, 2)
    sample_note = f" ({len(shown):,} of {n:,} shown)" if len(shown) < n else ""

    scatter.set(title=f"Predicted vs actual{sample_note}", xlabel="forecast", ylabel="actual")
    histogram.set(title="Residuals (actual - forecast)", xlabel="residual", ylabel="count")
    versus.set(title="Residuals vs predicted", xlabel="forecast", ylabel="residual")
    qq.set(
        title="Normal Q-Q of standardized residuals",
        xlabel="theoretical normal quantile",
        ylabel="standardized residual",
    )
    figure.suptitle(f"{title} (n = {n:,})")
    if n == 0:
        for axis in (scatter, histogram, versus, qq):
            _no_data(axis)
        return figure_png(figure)

    low = float(min(actual.min(), forecast.min()))
    high = float(max(actual.max(), forecast.max()))
    if high <= low:
        low, high = low - 1.0, high + 1.0
    scatter.scatter(forecast[shown], actual[shown], s=6, alpha=alpha, edgecolors="none")
    scatter.plot([low, high], [low, high], color="tab:red", linewidth=1, label="y = x")
    scatter.set_xlim(low, high)
    scatter.set_ylim(low, high)
    scatter.legend(fontsize=8, loc="upper left")

    mean = float(residual.mean())
    spread = float(residual.std(ddof=1)) if n > 1 else 0.0
    histogram.hist(residual, bins=int(np.clip(np.sqrt(n), 5, 50)), color="tab:blue", alpha=0.8)
    histogram.axvline(0.0, color="black", linewidth=0.8)
    histogram.axvline(
        mean, color="tab:red", linestyle="--", label=f"mean {mean:.3g}, sd {spread:.3g}"
    )
    histogram.legend(fontsize=8)

    versus.scatter(forecast[shown], residual[shown], s=6, alpha=alpha, edgecolors="none")
    versus.axhline(0.0, color="tab:red", linewidth=1)

    sample = residual[shown]
    standardized = np.sort((sample - mean) / spread) if spread > 0 else np.zeros(len(sample))
    # Blom plotting positions, so the extreme points do not land on +-inf.
    positions = (np.arange(1, len(sample) + 1) - 0.375) / (len(sample) + 0.25)
    theoretical = _normal_quantiles(positions)
    qq.scatter(theoretical, standardized, s=6, alpha=alpha, edgecolors="none")
    reference = [float(theoretical.min()) - 0.5, float(theoretical.max()) + 0.5]
    qq.plot(reference, reference, color="tab:red", linewidth=1, label="normal")
    if spread <= 0:
        qq.text(0.5, 0.9, "residuals are constant", transform=qq.transAxes, ha="center")
    qq.legend(fontsize=8, loc="upper left")
    return figure_png(figure)


def error_by_step_plot(by_step: pd.DataFrame, title: str) -> bytes:
    """Error at each forecast step (column ``step``), one line per method column. The metric
    name for the y label comes from ``by_step.attrs["metric"]`` (default MAE)."""
    metric = str(by_step.attrs.get("metric", "MAE"))
    frame = by_step.sort_values("step") if "step" in by_step.columns else by_step
    steps = frame["step"].to_numpy() if "step" in frame.columns else np.arange(1, len(frame) + 1)
    methods = _method_columns(frame, exclude={"step"})
    figure = Figure(figsize=(7, 4), layout="constrained")
    axis = figure.subplots()
    axis.set(title=title, xlabel="forecast step (periods ahead)", ylabel=metric)
    if frame.empty or not methods:
        _no_data(axis)
        return figure_png(figure)
    for method in methods:
        axis.plot(steps, frame[method].to_numpy(dtype=float), marker="o", label=_label(method))
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return figure_png(figure)


def fold_metrics_plot(by_fold: pd.DataFrame, title: str) -> bytes:
    """MASE per backtest fold (column ``fold`` or ``origin``) as grouped bars, one bar per method
    column, with the MASE = 1 reference (as good as the naive scale)."""
    key = next((c for c in ("fold", "origin") if c in by_fold.columns), None)
    labels = [str(v) for v in (by_fold[key] if key is not None else by_fold.index)]
    methods = _method_columns(by_fold, exclude={"fold", "origin"})
    width = max(6.0, 0.4 * len(labels) * max(len(methods), 1) + 2)
    figure = Figure(figsize=(min(width, 16.0), 4), layout="constrained")
    axis = figure.subplots()
    axis.set(title=title, xlabel=key or "fold", ylabel="MASE")
    if by_fold.empty or not methods:
        _no_data(axis)
        return figure_png(figure)
    _grouped_bars(axis, labels, {method: by_fold[method] for method in methods})
    axis.axhline(1.0, color="grey", linestyle=":", linewidth=1, label="MASE = 1")
    if key == "origin" or max(len(label) for label in labels) > 4:
        axis.tick_params(axis="x", labelrotation=30)
    axis.legend(fontsize=8)
    return figure_png(figure)


def forecast_report_plot(
    history: pd.DataFrame, forecast: pd.DataFrame, title: str, n_skus: int = 6
) -> bytes:
    """The future forecast for the ``n_skus`` SKUs with the most forecast demand: recent history
    (``sku``, ``date``, ``quantity``; the last four horizons of it per SKU), then the forecast
    (``sku``, ``date``, ``forecast``, ``lower``, ``upper``, optional quantiles ``p10``, ``p50``,
    ``p90``...) with its interval shaded."""
    if forecast.empty:
        return _no_data_png(title, "no forecast")
    top = forecast.groupby("sku")["forecast"].sum().nlargest(n_skus).index
    quantiles = sorted(
        (int(m.group(1)), c) for c in forecast.columns if (m := re.fullmatch(r"p(\d+)", str(c)))
    )
    outer = (
        (quantiles[0][1], quantiles[-1][1])
        if len(quantiles) >= 2 and quantiles[0][0] < 50 < quantiles[-1][0]
        else None
    )
    median = next((c for q, c in quantiles if q == 50), None)
    rows = int(np.ceil(len(top) / 2))
    figure = Figure(figsize=(12, 2.4 * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, 2, squeeze=False)).ravel()
    for axis, sku in zip(axes, top, strict=False):
        future = forecast[forecast["sku"] == sku].sort_values("date")
        future_dates = pd.to_datetime(future["date"])
        past = history[history["sku"] == sku].sort_values("date").tail(4 * len(future))
        axis.plot(
            pd.to_datetime(past["date"]),
            past["quantity"],
            color="black",
            linewidth=0.8,
            label="history",
        )
        if {"lower", "upper"} <= set(future.columns):
            axis.fill_between(
                future_dates,
                future["lower"],
                future["upper"],
                color="tab:blue",
                alpha=0.2,
                label="interval",
            )
        if outer is not None:
            axis.fill_between(
                future_dates,
                future[outer[0]],
                future[outer[1]],
                color="tab:purple",
                alpha=0.12,
                label=f"{outer[0]}-{outer[1]}",
            )
        axis.plot(future_dates, future["forecast"], color="tab:blue", marker=".", label="forecast")
        if median is not None:
            axis.plot(
                future_dates,
                future[median],
                color="tab:purple",
                linestyle="--",
                linewidth=0.9,
                label=f"median ({median})",
            )
        axis.axvline(future_dates.iloc[0], color="grey", linestyle=":", linewidth=0.8)
        axis.set_title(str(sku), fontsize=9)
        axis.set_ylabel("quantity", fontsize=8)
        _concise_dates(axis)
        axis.tick_params(labelsize=7)
    for axis in axes[len(top) :]:
        axis.set_visible(False)
    figure.legend(
        *axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=5, fontsize=8
    )
    figure.suptitle(title)
    return figure_png(figure)


def cluster_summary_plot(summary: pd.DataFrame, title: str) -> bytes:
    """Per cluster (one row each: ``cluster``, ``mase``, ``mase_seasonal_naive``, ``coverage``,
    ``nominal``): model vs seasonal-naive MASE, and empirical interval coverage against the
    nominal level. Clusters are shown in the frame's order."""
    figure = Figure(figsize=(max(10.0, 1.2 * len(summary) + 4), 4), layout="constrained")
    accuracy, coverage = figure.subplots(1, 2)
    accuracy.set(title="MASE by cluster (lower is better)", xlabel="cluster", ylabel="MASE")
    coverage.set(title="Interval coverage by cluster", xlabel="cluster", ylabel="coverage")
    figure.suptitle(title)
    if summary.empty:
        _no_data(accuracy)
        _no_data(coverage)
        return figure_png(figure)
    labels = [str(c) for c in summary["cluster"]]
    _grouped_bars(
        accuracy,
        labels,
        {"model": summary["mase"], "seasonal naive": summary["mase_seasonal_naive"]},
    )
    accuracy.axhline(1.0, color="grey", linestyle=":", linewidth=1, label="MASE = 1")
    accuracy.legend(fontsize=8)

    positions = np.arange(len(labels))
    observed = pd.to_numeric(summary["coverage"], errors="coerce").to_numpy(dtype=float)
    nominal = pd.to_numeric(summary["nominal"], errors="coerce").to_numpy(dtype=float)
    coverage.bar(positions, observed, width=0.6, color="tab:blue", label="empirical")
    levels = np.unique(nominal[np.isfinite(nominal)])
    if len(levels) == 1:
        coverage.axhline(
            levels[0], color="tab:red", linestyle="--", label=f"nominal {levels[0]:.0%}"
        )
    elif len(levels) > 1:
        coverage.hlines(nominal, positions - 0.4, positions + 0.4, color="tab:red", label="nominal")
    coverage.set_xticks(positions, labels)
    coverage.set_ylim(0, 1.05)
    coverage.yaxis.set_major_formatter(PercentFormatter(1.0))
    coverage.legend(fontsize=8, loc="best")
    if max(len(label) for label in labels) > 6:
        for axis in (accuracy, coverage):
            axis.tick_params(axis="x", labelrotation=30)
    return figure_png(figure)


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown that embeds a PNG inline (how the Dagster UI shows plots in metadata)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def figure_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _grouped_bars(axis: Axes, labels: list[str], series: dict[str, pd.Series]) -> None:
    positions = np.arange(len(labels))
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        offset = (i - (len(series) - 1) / 2) * width
        heights = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        axis.bar(positions + offset, heights, width=width, label=_label(name))
    axis.set_xticks(positions, labels)


def _method_columns(frame: pd.DataFrame, exclude: set[str]) -> list[str]:
    """Numeric (non-boolean) columns other than the key columns: one per forecasting method."""
    return [
        str(column)
        for column in frame.columns
        if column not in exclude
        and pd.api.types.is_numeric_dtype(frame[column])
        and not pd.api.types.is_bool_dtype(frame[column])
    ]


def _concise_dates(axis: Axes) -> None:
    # Full dates on every tick overlap in a half-width panel; month / day ticks do not.
    locator = AutoDateLocator(maxticks=7)
    axis.xaxis.set_major_locator(locator)
    axis.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _label(name: str) -> str:
    return name.replace("_", " ")


def _normal_quantiles(probabilities: np.ndarray) -> np.ndarray:
    try:
        from scipy.stats import norm
    except ImportError:  # scipy comes with scikit-learn, but the fallback costs nothing
        inverse = NormalDist().inv_cdf
        return np.array([inverse(float(p)) for p in probabilities])
    return np.asarray(norm.ppf(probabilities), dtype=float)


def _no_data(axis: Axes, message: str = "no data") -> None:
    axis.text(0.5, 0.5, message, transform=axis.transAxes, ha="center", va="center", color="grey")
    axis.set_xticks([])
    axis.set_yticks([])


def _no_data_png(title: str, message: str) -> bytes:
    figure = Figure(figsize=(6, 3), layout="constrained")
    axis = figure.subplots()
    axis.set_title(title)
    _no_data(axis, message)
    return figure_png(figure)
