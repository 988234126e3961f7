"""PNG plots for the UI and the reports (matplotlib's object API: no global state, no display)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from forecast_assets.core.clustering import ClusterResult
from forecast_assets.core.training.trainer import EpochRecord


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


def forecast_vs_actual_plot(
    predictions: pd.DataFrame, history: pd.DataFrame, title: str, n_skus: int = 6
) -> bytes:
    """Recent history, the held-out actuals, the forecast with its interval and seasonal naive,
    for the ``n_skus`` SKUs with the most demand in the test horizon."""
    top = predictions.groupby("sku")["actual"].sum().nlargest(n_skus).index
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
        axis.tick_params(labelsize=7)
    for axis in axes[len(top) :]:
        axis.set_visible(False)
    axes[0].legend(fontsize=7, loc="upper left")
    figure.suptitle(title)
    return figure_png(figure)


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown that embeds a PNG inline (how the Dagster UI shows plots in metadata)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def figure_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()
