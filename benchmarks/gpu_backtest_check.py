"""GPU check of the evaluation path (core only, no Dagster): an ensemble trained on CUDA,
refit, gated and backtested there; the same weights backtested on the CPU must agree.

    python benchmarks/gpu_backtest_check.py        (prints one JSON line)
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forecast_assets.core.data.encoding import CategoricalEncoder
from forecast_assets.core.data.features import build_features, fit_scalers, period_split
from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.evaluation import evaluate_cluster, run_backtest
from forecast_assets.core.models.artifact import ServingPaths
from forecast_assets.core.training.serve import GateConfig, ModelSpec, serve_cluster
from forecast_assets.core.training.trainer import TrainingConfig


def panel(n_skus: int = 200, periods: int = 400, season: int = 7) -> SalesPanel:
    rng = np.random.default_rng(0)
    t = np.arange(periods)
    level = rng.uniform(5, 50, size=(n_skus, 1))
    profile = 1 + 0.5 * np.sin(2 * np.pi * t / season)[None, :]
    values = np.maximum(level * profile + rng.normal(0, 3, size=(n_skus, periods)), 0)
    skus = pd.Index([f"s{i:03d}" for i in range(n_skus)], name="sku")
    attributes = pd.DataFrame({"store": ["a", "b"] * (n_skus // 2)}, index=skus)
    dates = pd.date_range("2024-01-01", periods=periods, freq="D")
    return SalesPanel(values=values, skus=skus, dates=dates, freq="D", attributes=attributes)


def main() -> None:
    data = panel()
    split = period_split(data, horizon=14, validation_periods=28, folds=3, step=7)
    scalers = fit_scalers(data, split)
    encoded = build_features(
        data, scalers, CategoricalEncoder(onehot_columns=["store"]), 56, 14, split
    )
    config = TrainingConfig(epochs=6, batch_size=256, learning_rate=3e-3, seed=1, device="cuda")
    options = {"members": ("lightweight", "mixer"), "season_length": 7}
    spec = ModelSpec("ensemble", options, config, refit=True, export_onnx=False)
    gate = GateConfig(season=7, threshold=1.0, device="cuda", engine="torch")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        paths = ServingPaths(Path(folder) / "models", Path(folder) / "checkpoints")
        served = serve_cluster("c", encoded, scalers, spec, None, gate, paths)
    candidate, decision, refit = served.candidate, served.gate, served.model
    report = evaluate_cluster(
        "c", refit, served.backtest, encoded, scalers, 0.9, device="cuda", engine="torch"
    )
    cuda_seconds = time.perf_counter() - started
    on_cpu = run_backtest(candidate, encoded, scalers, 7, device="cpu", engine="torch")
    on_cuda = run_backtest(candidate, encoded, scalers, 7, device="cuda", engine="torch")
    gap = float(np.abs(on_cpu.forecast - on_cuda.forecast).max())
    print(
        json.dumps(
            {
                "device": torch.cuda.get_device_name(0),
                "trained_on": candidate.training.device,
                "gate": decision.served,
                "relative_mase": round(decision.candidate_relative_mase, 4),
                "backtest_mase": round(report.metrics["mase"], 4),
                "seasonal_naive_mase": round(report.baseline["mase"], 4),
                "coverage": round(report.coverage, 4),
                "refit_windows": refit.refit.windows if refit.refit else None,
                "cpu_vs_cuda_max_abs_forecast_gap": gap,
                "seconds": round(cuda_seconds, 1),
            }
        )
    )
    assert decision.served == "candidate" and gap < 1e-2 * float(np.abs(on_cpu.forecast).max())


if __name__ == "__main__":
    main()
