"""Train the largest cluster of the embedded example on the CPU and, when there is one, on a
CUDA device, with the same data and settings; print seconds per epoch and accuracy side by side,
for each model family asked for, and check that its ONNX export forecasts like torch.

Uses the core only (no Dagster), so it runs wherever PyTorch, pandas and scikit-learn are:
    python benchmarks/training_device.py [--skus 300] [--epochs 20] [--types lightweight mixer]
With $OUT set, the results are also written to $OUT/training_device.json.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forecast_assets.core.clustering import cluster_skus, compute_metafeatures
from forecast_assets.core.data.encoding import CategoricalEncoder
from forecast_assets.core.data.features import build_features, fit_scalers, period_split
from forecast_assets.core.data.generator import generate_sales
from forecast_assets.core.data.loader import ColumnSpec, standardize_sales
from forecast_assets.core.data.resample import resample_sales
from forecast_assets.core.evaluation import evaluate_cluster, run_backtest
from forecast_assets.core.inference.forecast import forecast_cluster
from forecast_assets.core.inference.serving import export_for_serving
from forecast_assets.core.training.cluster_model import train_cluster_model
from forecast_assets.core.training.trainer import TrainingConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skus", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--types", nargs="+", default=["lightweight"], help="model families")
    args = parser.parse_args()

    spec = ColumnSpec(categorical_columns=("store", "category"), multilabel_columns=("tags",))
    sales = standardize_sales(generate_sales(args.skus, 900, seed=42), spec, "example")
    panel = resample_sales(sales, "D", 120, spec.attribute_columns).panel
    clusters = cluster_skus(compute_metafeatures(panel, 7), 2, 6, 5, seed=42)
    largest = max(clusters.sizes, key=clusters.sizes.get)
    cluster = panel.select(list(clusters.assignments.index[clusters.assignments == largest]))
    split = period_split(cluster, horizon=14, validation_periods=28)
    scalers = fit_scalers(cluster, split)
    encoder = CategoricalEncoder(spec.categorical_columns, spec.multilabel_columns)
    encoded = build_features(cluster, scalers, encoder, 56, 14, split)

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = {}
    for model_type in args.types:
        for device in devices:
            results[f"{model_type}/{device}"] = train_and_serve(
                model_type, device, encoded, scalers, largest, args.epochs
            )
    summary = {
        "cluster": largest,
        "skus": encoded.n_skus,
        "train_windows": len(encoded.train),
        **results,
    }
    if "cuda" in devices:
        for model_type in args.types:
            cpu, cuda = results[f"{model_type}/cpu"], results[f"{model_type}/cuda"]
            summary[f"{model_type}: cpu_over_cuda_epoch_time"] = (
                cpu["median_epoch_seconds"] / cuda["median_epoch_seconds"]
            )
    print(json.dumps(summary, indent=2))
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "training_device.json").write_text(json.dumps(summary, indent=2))


def train_and_serve(model_type, device, encoded, scalers, cluster, epochs) -> dict:
    """Train one family on one device, evaluate it, forecast with torch on that device and
    with onnxruntime from its ONNX export, and compare the two forecasts."""
    config = TrainingConfig(
        epochs=epochs, patience=epochs, max_windows_per_epoch=12800, device=device
    )
    model = train_cluster_model(encoded, model_type, {"season_length": 7}, config)
    tested = run_backtest(model, encoded, scalers, 7, device=device, engine="torch")
    report = evaluate_cluster(
        cluster, model, tested, encoded, scalers, 0.9, device=device, engine="torch"
    )
    eager = forecast_cluster(
        cluster, model, encoded, scalers, report.intervals, device=device, engine="torch"
    )
    with tempfile.TemporaryDirectory() as folder:
        files = export_for_serving(model, Path(folder), cluster)
    served = None
    if model.onnx is not None:
        served = forecast_cluster(
            cluster, model, encoded, scalers, report.intervals, engine="onnxruntime"
        )
    return {
        "device_used": model.training.device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "parameters": model.parameter_count,
        "median_epoch_seconds": statistics.median(r.seconds for r in model.training.history),
        "epochs": len(model.training.history),
        "best_validation_loss": model.training.best_validation_loss,
        "mase": report.metrics["mase"],
        "mase_seasonal_naive": report.baseline["mase"],
        "forecast_rows": len(eager),
        "export_problems": files.problems,
        "onnx_vs_torch_max_abs_diff": (
            float((served["forecast"] - eager["forecast"]).abs().max())
            if served is not None
            else None
        ),
    }


if __name__ == "__main__":
    main()
