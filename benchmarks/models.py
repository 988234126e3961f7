"""Every model family at its default size on this machine: parameters, training windows/s,
inference series/s in torch eager and onnxruntime (batch 1 and 1024), and peak memory.

Each family runs in its own process so that its peak memory is its own. Times are medians of
several repeats; torch and onnxruntime are measured side by side in the same process.
    python benchmarks/models.py [--types standard advanced lightweight mixer] [--repeats 5]
With $OUT set, the results are also written to $OUT/models.json.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forecast_assets.core.inference.export import OnnxForecaster, example_inputs, export_onnx
from forecast_assets.core.models.base import MODEL_INPUTS
from forecast_assets.core.models.losses import ForecastLoss
from forecast_assets.core.models.registry import available_model_types, build_model

# The embedded example's shapes: daily data, eight weeks in, two weeks out.
SIZES = dict(n_skus=300, n_static=10, n_time_features=8, window=56, horizon=14, season_length=7)
TRAIN_BATCH = 256


def median_seconds(run, calls: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean seconds per call of ``calls`` calls."""
    run()  # warm-up
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            run()
        samples.append((time.perf_counter() - started) / calls)
    return statistics.median(samples)


def measure(model_type: str, repeats: int) -> dict[str, object]:
    torch.manual_seed(0)
    model = build_model(model_type, **SIZES)
    result: dict[str, object] = {
        "type": model_type,
        "parameters": model.parameter_count(),
        "torch_threads": torch.get_num_threads(),
    }

    batch = example_inputs(model, batch=TRAIN_BATCH)
    target = torch.randn(TRAIN_BATCH, SIZES["horizon"])
    loss_fn = ForecastLoss({"mae": 1.0}, model.quantiles, SIZES["season_length"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    zero = torch.zeros(TRAIN_BATCH)

    def train_step() -> None:
        optimizer.zero_grad()
        loss_fn(model(*batch), target, batch[0], zero).backward()
        optimizer.step()

    model.train()
    step = median_seconds(train_step, calls=10, repeats=repeats)
    result["train_windows_per_s"] = TRAIN_BATCH / step
    model.eval()

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        path = export_onnx(model, Path(folder) / "model.onnx")
        result["onnx_export_s"] = time.perf_counter() - started
        served = OnnxForecaster(path)
    for size, calls in ((1, 200), (1024, 5)):
        inputs = example_inputs(model, batch=size, seed=1)
        feed = {name: t.numpy() for name, t in zip(MODEL_INPUTS, inputs, strict=True)}

        def eager(inputs=inputs) -> None:
            with torch.inference_mode():
                model(*inputs)

        def onnx(feed=feed) -> None:
            served.predict(feed)

        torch_s = median_seconds(eager, calls, repeats)
        onnx_s = median_seconds(onnx, calls, repeats)
        result[f"torch_series_per_s_b{size}"] = size / torch_s
        result[f"onnx_series_per_s_b{size}"] = size / onnx_s
        result[f"onnx_speedup_b{size}"] = torch_s / onnx_s
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def table(results: list[dict[str, object]]) -> str:
    header = (
        "| type | parameters | train windows/s | torch b1 series/s | onnxruntime b1 | speedup b1 "
        "| torch b1024 series/s | onnxruntime b1024 | speedup b1024 | peak RSS MB |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [
        f"| {r['type']} | {r['parameters']:,} | {r['train_windows_per_s']:,.0f} "
        f"| {r['torch_series_per_s_b1']:,.0f} | {r['onnx_series_per_s_b1']:,.0f} "
        f"| {r['onnx_speedup_b1']:.1f}x | {r['torch_series_per_s_b1024']:,.0f} "
        f"| {r['onnx_series_per_s_b1024']:,.0f} | {r['onnx_speedup_b1024']:.1f}x "
        f"| {r['peak_rss_mb']:.0f} |"
        for r in results
    ]
    return "\n".join([header, *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--types", nargs="+", default=available_model_types())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one type, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.repeats)))
        return

    results = []
    for model_type in args.types:
        child = subprocess.run(
            [sys.executable, __file__, "--one", model_type, "--repeats", str(args.repeats)],
            check=True,
            capture_output=True,
            text=True,
        )
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(f"{model_type}: done", file=sys.stderr)
    print(f"{os.cpu_count()} CPUs, torch {torch.__version__}, sizes {SIZES}")
    print(table(results))
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "models.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
