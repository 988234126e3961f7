"""How the whole asset graph scales to an M5-sized catalogue: wall time and peak memory.

Runs the core functions the assets call, in their order, with the project's default settings
for daily data (the packaged ``default_settings.yaml``: column spec ``store, category`` +
multi-label ``tags``, ``timeseries.freq: D``, window 56, horizon 14, ``min_history``, season
7, the clustering k range, the lightweight model, ``seed``), on ``generate_catalogue`` data:

    generate     generate_catalogue(n_series, periods)            (the source extract)
    standardize  loader.standardize_sales(frame, spec)            (what raw_sales merges)
    merge        HistoryStore.merge into a temporary history       (raw_sales)
    read         HistoryStore.read                                  (raw_sales' output)
    resample     resample_sales(sales, freq, attrs, drop_zero=False) (resampled_series)
    metafeatures compute_metafeatures(panel, season)               (metafeatures)
    cluster      cluster_skus(features, k_min, k_max, ...)         (clusters)
  once per cluster partition:
    scalers      fit_scalers(cluster panel, split, method)         (scalers)
    encode       build_features(panel, scalers, encoder, ...)      (encoded_features)
    serve        serve_cluster(encoded, scalers, spec, None, ...)  (cluster_model)
                 (train, export, gate and store; its phases' seconds follow the table)
    evaluate     evaluate_cluster(..., the gate's backtest)        (evaluation_report)
    forecast     forecast_served(..., report.intervals)            (forecast_table)
  and
    combine      combine_forecasts(tables, assignments, horizon)   (forecasts)

Training has a fixed budget: ``--epochs`` (default 2; patience never stops that early) of
``training.max_windows_per_epoch`` randomly drawn windows each (12,800 in the default
settings, so an epoch costs the same at any catalogue size; ``--max-windows`` overrides it).
Validation after each epoch still scores every validation window of the cluster (15 per SKU
at the defaults). It is the first training run of a cluster: there is no previously served
model for the gate, and no tuning. Plots and Markdown reports of the assets are left out.

Each (size, repeat) runs in a fresh subprocess so that peaks do not carry over. Per stage it
reports the wall time and the peak RSS *during* the stage: the kernel's high-water mark is
reset when a stage starts (``/proc/self/clear_refs``) and read with ``getrusage`` when it
ends; where that reset is not allowed, a thread samples the RSS every 5 ms instead (it can miss
short peaks while C code holds the GIL). A per-cluster stage is one row: its seconds summed
over the clusters, its peak the highest of any cluster; the clusters' own figures follow the
table (and are in the JSON).

By default all stages share one process, as in ``execute_in_process``: a stage's peak then
includes what earlier stages left allocated ("RSS at start"; freed memory that the allocators
keep counts too). The clusters run one after the other, each through all its per-cluster
stages, and a cluster's encoded data is dropped before the next one is encoded (as separate
runs per partition would). ``--isolate-steps`` runs each asset (and each cluster partition
of a per-cluster asset) in its own process instead, as Dagster's multiprocess executor does,
handing the asset values over as pickle files like the filesystem IO manager (the load and
the store are timed as rows of their own):

    raw_sales          generate, standardize, merge, read    -> sales
    resampled_series   resample                               -> panel
    metafeatures       metafeatures                           -> metafeatures
    clusters           cluster                                -> clusters
    scalers            scalers      (per cluster)             -> scalers
    encoded_features   encode       (per cluster)             -> encoded
    cluster_model      serve        (per cluster)             -> model
    evaluation_report  evaluate     (per cluster)             -> report
    forecast_table     forecast     (per cluster)             -> table
    forecasts          combine                                -> forecasts

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scale.py [--sizes 3000 30490]
        [--repeats 3 1] [--periods 1941] [--seed 0] [--epochs 2] [--max-windows N]
        [--isolate-steps] [--tmp-dir DIR] [--no-frame-memory] [--json FILE]

New stages go into STAGES (or CLUSTER_STAGES) and STEPS; see there.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

GB = 1e9
# A stage takes the shared state (settings, frames, results of earlier stages), updates it and
# returns facts to report (counts, sizes), or None.
Stage = Callable[[dict[str, Any]], dict[str, Any] | None]


# --- stages -----------------------------------------------------------------------------------


def stage_generate(state: dict[str, Any]) -> dict[str, Any]:
    from forecast_assets.core.data.generator import generate_catalogue

    frame = generate_catalogue(state["n_series"], state["periods"], seed=state["seed"])
    state["generated"] = frame
    return {"rows": len(frame), "frame_mb": frame.memory_usage(deep=False).sum() / 1e6}


def stage_standardize(state: dict[str, Any]) -> dict[str, Any]:
    from forecast_assets.core.data.loader import standardize_sales

    spec = state["settings"].data.column_spec()
    # The generated frame is dropped once standardized, as in the asset.
    generated = state.pop("generated")
    frame = standardize_sales(generated, spec, source=state["source"])
    del generated
    state["standardized"] = frame
    return {"rows": len(frame)}


def stage_merge(state: dict[str, Any]) -> dict[str, Any]:
    from forecast_assets.core.data.history import HistoryStore, SourceRecord
    from forecast_assets.core.data.ingest import history_signature

    spec = state["settings"].data.column_spec()
    store = HistoryStore(state["history_dir"])
    frame = state.pop("standardized")
    record = SourceRecord(state["source"], rows=len(frame))
    result = store.merge([(record, frame)], history_signature(spec, state["source"]))
    del frame
    state["store"] = store
    disk = sum(f.stat().st_size for f in Path(state["history_dir"]).rglob("*.parquet"))
    return {"rows": result.rows_after, "years": len(result.years_rewritten), "disk_mb": disk / 1e6}


def stage_read(state: dict[str, Any]) -> dict[str, Any]:
    sales = state["store"].read()
    state["sales"] = sales
    return {"rows": len(sales)}


def stage_resample(state: dict[str, Any]) -> dict[str, Any]:
    from forecast_assets.core.data.resample import resample_sales

    settings = state["settings"]
    result = resample_sales(
        state.pop("sales"),  # the asset's input is not needed after this step
        settings.timeseries.freq,
        attribute_columns=settings.data.column_spec().attribute_columns,
        drop_zero=False,
    )
    state["panel"] = result.panel
    return {
        "skus": result.panel.n_skus,
        "periods": result.panel.n_periods,
        "dropped": len(result.dropped_short) + len(result.dropped_zero),
        "panel_mb": result.panel.values.nbytes / 1e6,
    }


def stage_metafeatures(state: dict[str, Any]) -> dict[str, Any]:
    from forecast_assets.core.clustering import compute_metafeatures

    features = compute_metafeatures(state["panel"], state["settings"].timeseries.season)
    state["metafeatures"] = features
    return {"skus": len(features)}


def stage_cluster(state: dict[str, Any]) -> dict[str, Any]:
    from forecast_assets.core.clustering import cluster_skus

    settings = state["settings"]
    result = cluster_skus(
        state["metafeatures"],
        settings.clustering.k_min,
        settings.clustering.k_max,
        settings.clustering.min_cluster_size,
        settings.seed,
    )
    state["clusters"] = result
    return {"k": result.k, "sizes": list(result.sizes.values()), "keys": result.keys}


# --- per-cluster stages: one call per cluster partition ----------------------------------------
# The same core calls, in the same order, as the assets in assets/per_cluster.py and
# assets/forecasts.py (their small helpers split_of, encode_cluster and training_config are
# mirrored here so that this script stays free of dagster). Plots and Markdown reports are
# left out. ``state[key]`` of a per-cluster value is a dict {cluster: value}.
ClusterStage = Callable[[dict[str, Any], str], dict[str, Any] | None]


def _cluster_panel(state: dict[str, Any], cluster: str):
    assignments = state["clusters"].assignments
    return state["panel"].select(list(assignments.index[assignments == cluster]))


def _split(settings, panel):
    from forecast_assets.core.data.features import period_split

    return period_split(
        panel,
        settings.timeseries.horizon,
        settings.validation_periods,
        settings.evaluation.folds,
        settings.backtest_step,
    )


def stage_scalers(state: dict[str, Any], cluster: str) -> dict[str, Any]:
    from forecast_assets.core.data.features import fit_scalers

    settings = state["settings"]
    panel = _cluster_panel(state, cluster)
    manager = fit_scalers(panel, _split(settings, panel), settings.scaling.method)
    state.setdefault("scalers", {})[cluster] = manager
    return {"skus": panel.n_skus}


def stage_encode(state: dict[str, Any], cluster: str) -> dict[str, Any]:
    from forecast_assets.core.data.encoding import CategoricalEncoder
    from forecast_assets.core.data.features import build_features

    settings = state["settings"]
    panel = _cluster_panel(state, cluster)
    encoder = CategoricalEncoder(
        settings.data.categorical_columns,
        settings.data.multilabel_columns,
        settings.data.multilabel_separator,
    )
    encoded = build_features(
        panel,
        state["scalers"][cluster],
        encoder,
        window=settings.timeseries.window,
        horizon=settings.timeseries.horizon,
        split=_split(settings, panel),
        stride=settings.timeseries.stride,
        min_history=settings.timeseries.min_history or 1,
    )
    state.setdefault("encoded", {})[cluster] = encoded
    arrays = (encoded.padded, encoded.raw, encoded.train.rows, encoded.train.origins)
    return {
        "skus": encoded.n_skus,
        "train_windows": len(encoded.train),
        "validation_windows": len(encoded.validation),
        "test_windows": len(encoded.test),
        "encoded_mb": sum(array.nbytes for array in arrays) / 1e6,
    }


def stage_serve(state: dict[str, Any], cluster: str) -> dict[str, Any]:
    """The serving step as cluster_model runs it (no tuning, no launch-time overrides, no
    previously served model), with the benchmark's epoch budget."""
    import dataclasses

    from forecast_assets.core.models.artifact import ServingPaths
    from forecast_assets.core.training.serve import serve_cluster
    from forecast_assets.specs import gate_config, model_spec, pool_run

    settings = state["settings"]
    encoded = state["encoded"][cluster]
    spec = model_spec(settings, cluster)
    budget = {"epochs": state["epochs"]}
    if state["max_windows"]:
        budget["max_windows_per_epoch"] = state["max_windows"]
    spec = dataclasses.replace(spec, training=spec.training.updated(**budget))
    output = Path(state["output_dir"])
    paths = ServingPaths(model_dir=output / "models", checkpoint_dir=output / "checkpoints")
    served = serve_cluster(
        cluster,
        encoded,
        state["scalers"][cluster],
        spec,
        None,
        gate_config(settings),
        paths,
        pool=pool_run(settings),
    )
    state.setdefault("model", {})[cluster] = served
    result = served.training
    return {
        "model": served.candidate.model_type,
        "parameters": served.candidate.parameter_count,
        "epochs_run": len(result.history),
        "windows_per_epoch": min(len(encoded.train), spec.training.max_windows_per_epoch or 10**12),
        "validation_windows": len(encoded.validation),
        "seconds_per_epoch": [round(record.seconds, 2) for record in result.history],
        "best_validation_loss": round(result.best_validation_loss, 4),
        "served": served.gate.served,
        "relative_mase": round(served.gate.candidate_relative_mase, 3),
        "onnx": served.exports.onnx is not None,
        "seconds_by_phase": {phase: round(value, 2) for phase, value in served.seconds.items()},
    }


def stage_evaluate(state: dict[str, Any], cluster: str) -> dict[str, Any]:
    from forecast_assets.core.evaluation import evaluate_cluster

    settings = state["settings"]
    served = state["model"][cluster]
    report = evaluate_cluster(
        cluster,
        served.model,
        served.backtest,
        state["encoded"][cluster],
        state["scalers"][cluster],
        confidence=settings.forecast.confidence,
        nonnegative=settings.nonnegative,
        device=settings.device,
        engine=settings.forecast.engine,
        gate=served.gate,
        pool=served.pool,
    )
    state.setdefault("report", {})[cluster] = report
    return {"mase": round(report.metrics["mase"], 3), "coverage": round(report.coverage, 3)}


def stage_forecast(state: dict[str, Any], cluster: str) -> dict[str, Any]:
    from forecast_assets.core.inference.predictor import engine_for
    from forecast_assets.core.pool.table import forecast_served
    from forecast_assets.specs import pool_run

    settings = state["settings"]
    model = state["model"][cluster].model
    table = forecast_served(
        cluster,
        state["model"][cluster],
        pool_run(settings),
        state["encoded"][cluster],
        state["scalers"][cluster],
        state["report"][cluster].intervals,
        device=settings.device,
        engine=settings.forecast.engine,
    )
    state.setdefault("table", {})[cluster] = table
    return {"rows": len(table), "engine": engine_for(model, settings.forecast.engine)}


def stage_combine(state: dict[str, Any]) -> dict[str, Any]:
    from forecast_assets.core.inference.forecast import combine_forecasts

    table = combine_forecasts(
        state["table"], state["clusters"].assignments, state["settings"].timeseries.horizon
    )
    state["forecasts"] = table
    return {"rows": len(table), "skus": int(table["sku"].nunique())}


STAGES: dict[str, Stage] = {
    "generate": stage_generate,
    "standardize": stage_standardize,
    "merge": stage_merge,
    "read": stage_read,
    "resample": stage_resample,
    "metafeatures": stage_metafeatures,
    "cluster": stage_cluster,
    "combine": stage_combine,
}
CLUSTER_STAGES: dict[str, ClusterStage] = {
    "scalers": stage_scalers,
    "encode": stage_encode,
    "serve": stage_serve,
    "evaluate": stage_evaluate,
    "forecast": stage_forecast,
}


@dataclass(frozen=True)
class Step:
    """One asset: its stages, the state keys it reads (other assets' values) and the key of
    the value it produces. A ``per_cluster`` asset runs once per cluster partition, its stages
    from CLUSTER_STAGES; its value is kept per cluster."""

    asset: str
    stages: tuple[str, ...]
    inputs: tuple[str, ...]
    output: str
    per_cluster: bool = False


STEPS: list[Step] = [
    Step("raw_sales", ("generate", "standardize", "merge", "read"), (), "sales"),
    Step("resampled_series", ("resample",), ("sales",), "panel"),
    Step("metafeatures", ("metafeatures",), ("panel",), "metafeatures"),
    Step("clusters", ("cluster",), ("metafeatures",), "clusters"),
    Step("scalers", ("scalers",), ("panel", "clusters"), "scalers", True),
    Step("encoded_features", ("encode",), ("panel", "clusters", "scalers"), "encoded", True),
    Step("cluster_model", ("serve",), ("encoded", "scalers"), "model", True),
    Step("evaluation_report", ("evaluate",), ("model", "encoded", "scalers"), "report", True),
    Step("forecast_table", ("forecast",), ("model", "encoded", "scalers", "report"), "table", True),
    Step("forecasts", ("combine",), ("table", "clusters"), "forecasts"),
]
# A stage gets ``state`` with the loaded ``settings`` and the values named in ``inputs``, puts
# its value under ``output`` and is timed and measured like the others. Keep in ``state`` what
# a later step reads (``panel`` is kept after metafeatures for the per-cluster steps).
PER_CLUSTER_VALUES = {step.output for step in STEPS if step.per_cluster}


# --- memory -----------------------------------------------------------------------------------


def current_rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kilobytes


class PeakMeter:
    """Peak RSS of one stage: the kernel's high-water mark reset at the start, or sampling."""

    def __init__(self) -> None:
        self.exact = self._reset_high_water_mark()
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if not self.exact:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    @staticmethod
    def _reset_high_water_mark() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
        except OSError:
            return False
        return True

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, current_rss())

    def start(self) -> None:
        if self.exact:
            self._reset_high_water_mark()
        self._peak = current_rss()

    def peak(self) -> int:
        return max(self._peak, current_rss(), max_rss() if self.exact else 0)


def frame_memory(frame: pd.DataFrame) -> dict[str, float]:
    """Bytes of a frame: the column buffers, and the Python objects behind object columns
    counted once per distinct object (pandas' deep count adds a shared str once per row)."""
    shallow = int(frame.memory_usage(deep=False).sum())
    objects = 0
    for name in frame.columns:
        column = frame[name]
        if column.dtype == object:
            distinct = {id(value): value for value in column.to_numpy()}
            objects += sum(sys.getsizeof(value) for value in distinct.values())
    return {
        "buffers_gb": shallow / GB,
        "with_objects_gb": (shallow + objects) / GB,
        "pandas_deep_gb": int(frame.memory_usage(deep=True).sum()) / GB,
    }


# --- one run (the worker subprocess) ----------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """What a worker runs: the catalogue and the training budget."""

    n_series: int
    periods: int
    seed: int
    epochs: int
    max_windows: int | None
    tmp_dir: str | None
    measure: bool


def run_stages(
    options: Options,
    step: Step | None = None,
    handoff: Path | None = None,
    cluster: str | None = None,
) -> dict:
    """Run every stage (``step`` None), or one step (of one ``cluster`` when it is per
    cluster) that loads its inputs from and stores its output in ``handoff``; returns the
    measurements."""
    from forecast_assets.settings import DEFAULT_SETTINGS_FILE, load_settings

    settings = load_settings(DEFAULT_SETTINGS_FILE)
    meter = PeakMeter()
    results: list[dict[str, Any]] = []
    frames: dict[str, dict[str, float]] = {}

    def measured(name: str, work: Callable[[], dict[str, Any] | None], where: str | None) -> None:
        rss_start = current_rss()
        meter.start()
        started = time.perf_counter()
        facts = work() or {}
        seconds = time.perf_counter() - started
        results.append(
            {
                "stage": name,
                "cluster": where,
                "seconds": seconds,
                "peak_gb": meter.peak() / GB,
                "rss_start_gb": rss_start / GB,
                "rss_end_gb": current_rss() / GB,
                "facts": facts,
            }
        )

    def run_step(current: Step, state: dict[str, Any], where: str | None) -> None:
        if handoff is not None and current.inputs:
            measured(
                f"{current.asset}: load", partial(_load, state, current, handoff, where), where
            )
        for name in current.stages:
            if current.per_cluster:
                measured(name, partial(CLUSTER_STAGES[name], state, where), where)
            else:
                measured(name, partial(STAGES[name], state), where)
            # Not timed: the size of the frame the stage produced.
            if options.measure and name in ("standardize", "read"):
                frames[name] = frame_memory(
                    state["standardized" if name == "standardize" else "sales"]
                )
        if handoff is not None:
            measured(
                f"{current.asset}: store", partial(_store, state, current, handoff, where), where
            )

    with (
        tempfile.TemporaryDirectory(dir=options.tmp_dir, prefix="scale-history-") as history_dir,
        tempfile.TemporaryDirectory(dir=options.tmp_dir, prefix="scale-output-") as output_dir,
    ):
        state: dict[str, Any] = {
            "settings": settings,
            "n_series": options.n_series,
            "periods": options.periods,
            "seed": options.seed,
            "epochs": options.epochs,
            "max_windows": options.max_windows,
            "source": f"generate_catalogue({options.n_series}, {options.periods}, "
            f"seed={options.seed})",
            "history_dir": history_dir,
            "output_dir": output_dir,
        }
        if step is not None:
            run_step(step, state, cluster)
        else:
            for group in _step_groups():
                if not group[0].per_cluster:
                    for current in group:
                        run_step(current, state, None)
                    continue
                # One cluster partition after the other, as its runs would go: a cluster's
                # encoded data is dropped before the next cluster is encoded.
                for key in state["clusters"].keys:
                    for current in group:
                        run_step(current, state, key)
                    for name in PER_CLUSTER_VALUES - {"table"}:
                        state.get(name, {}).pop(key, None)
    return {
        "n_series": options.n_series,
        "periods": options.periods,
        "epochs": options.epochs,
        "max_windows_per_epoch": options.max_windows or settings.training.max_windows_per_epoch,
        "exact_peaks": meter.exact,
        "stages": results,
        "frames": frames,
    }


def _step_groups() -> list[list[Step]]:
    """STEPS in runs of consecutive steps that are all per cluster or all not."""
    groups: list[list[Step]] = []
    for step in STEPS:
        if groups and groups[-1][0].per_cluster == step.per_cluster:
            groups[-1].append(step)
        else:
            groups.append([step])
    return groups


def _handoff_files(handoff: Path, key: str, cluster: str | None) -> list[Path]:
    if key not in PER_CLUSTER_VALUES:
        return [handoff / f"{key}.pickle"]
    if cluster is not None:
        return [handoff / f"{key}@{cluster}.pickle"]
    return sorted(handoff.glob(f"{key}@*.pickle"))  # every cluster's, as forecasts reads them


def _load(state: dict[str, Any], step: Step, handoff: Path, cluster: str | None) -> dict:
    size = 0
    for key in step.inputs:
        for path in _handoff_files(handoff, key, cluster):
            size += path.stat().st_size
            with open(path, "rb") as handle:
                value = pickle.load(handle)
            if key in PER_CLUSTER_VALUES:
                state.setdefault(key, {})[path.stem.split("@", 1)[1]] = value
            else:
                state[key] = value
    return {"pickle_mb": size / 1e6}


def _store(state: dict[str, Any], step: Step, handoff: Path, cluster: str | None) -> dict:
    (path,) = _handoff_files(handoff, step.output, cluster)
    value = state[step.output][cluster] if step.per_cluster else state[step.output]
    with open(path, "wb") as handle:
        pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return {"pickle_mb": path.stat().st_size / 1e6}


# --- driver -----------------------------------------------------------------------------------


def spawn(args: argparse.Namespace, n_series: int) -> dict:
    """One measured run of every stage: in one worker process, or one per step and cluster."""
    if not args.isolate_steps:
        return aggregate(_worker(args, n_series, []))
    runs: list[tuple[Step, dict]] = []
    keys: list[str] = []
    with tempfile.TemporaryDirectory(dir=args.tmp_dir, prefix="scale-handoff-") as handoff:
        for step in STEPS:
            for key in keys if step.per_cluster else [None]:
                extra = ["--step", step.asset, "--handoff", handoff]
                runs.append(
                    (step, _worker(args, n_series, extra + (["--cluster", key] if key else [])))
                )
            if step.asset == "clusters":
                keys = next(
                    row["facts"]["keys"]
                    for row in runs[-1][1]["stages"]
                    if row["stage"] == "cluster"
                )
    merged = dict(runs[0][1])
    merged["stages"] = [row for _, run in runs for row in run["stages"]]
    merged["frames"] = {name: size for _, run in runs for name, size in run["frames"].items()}
    merged["steps"] = {}
    for step, run in runs:
        peak = max(row["peak_gb"] for row in run["stages"])
        merged["steps"][step.asset] = max(merged["steps"].get(step.asset, 0.0), peak)
    return aggregate(merged)


def aggregate(run: dict) -> dict:
    """One row per stage: a per-cluster stage's clusters summed (seconds) or maxed (peak; its
    RSS at start is that of the cluster with the highest peak), each cluster's figures kept
    under ``facts["clusters"]``; the unaggregated rows stay in ``cluster_rows``."""
    rows: dict[str, dict[str, Any]] = {}
    for row in run["stages"]:
        name, where = row["stage"], row.get("cluster")
        if where is None:
            rows[name] = dict(row)
            continue
        total = rows.setdefault(
            name,
            {**row, "seconds": 0.0, "peak_gb": 0.0, "facts": {"clusters": {}}},
        )
        total["seconds"] += row["seconds"]
        if row["peak_gb"] >= total["peak_gb"]:
            total["peak_gb"], total["rss_start_gb"] = row["peak_gb"], row["rss_start_gb"]
        total["rss_end_gb"] = row["rss_end_gb"]
        total["facts"]["clusters"][where] = {
            "seconds": round(row["seconds"], 2),
            "peak_gb": round(row["peak_gb"], 2),
            **row["facts"],
        }
    return {**run, "stages": list(rows.values()), "cluster_rows": run["stages"]}


def _worker(args: argparse.Namespace, n_series: int, extra: list[str]) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        "--sizes",
        str(n_series),
        "--periods",
        str(args.periods),
        "--seed",
        str(args.seed),
        "--epochs",
        str(args.epochs),
        *extra,
    ]
    if args.max_windows:
        command += ["--max-windows", str(args.max_windows)]
    if args.tmp_dir:
        command += ["--tmp-dir", args.tmp_dir]
    if args.no_frame_memory:
        command.append("--no-frame-memory")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"worker for {n_series} series failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarize(runs: list[dict]) -> dict[str, dict[str, float]]:
    """Per stage: median, min and max seconds and median peak / start RSS over the runs."""
    out: dict[str, dict[str, float]] = {}
    for i, first in enumerate(runs[0]["stages"]):
        seconds = [run["stages"][i]["seconds"] for run in runs]
        out[first["stage"]] = {
            "seconds": statistics.median(seconds),
            "min": min(seconds),
            "max": max(seconds),
            "peak_gb": statistics.median(run["stages"][i]["peak_gb"] for run in runs),
            "rss_start_gb": statistics.median(run["stages"][i]["rss_start_gb"] for run in runs),
        }
    return out


def print_size(n_series: int, runs: list[dict]) -> None:
    summary = summarize(runs)
    label = f"median of {len(runs)}" if len(runs) > 1 else "1 run"
    first = runs[0]
    print(
        f"\n### {n_series:,} series x {first['periods']:,} days ({label}; training "
        f"{first['epochs']} epoch(s) of at most {first['max_windows_per_epoch']} windows)\n"
    )
    print("| stage | seconds | min - max | peak RSS GB | RSS at start GB | facts |")
    print("|---|---|---|---|---|---|")
    for i, (stage, row) in enumerate(summary.items()):
        facts = first["stages"][i]["facts"]
        shown = ", ".join(
            f"{k} {_fmt(v)}" for k, v in facts.items() if k not in ("clusters", "keys")
        )
        if "clusters" in facts:
            shown = f"{len(facts['clusters'])} clusters (below)"
        spread = f"{row['min']:.2f} - {row['max']:.2f}" if len(runs) > 1 else ""
        print(
            f"| {stage} | {row['seconds']:.2f} | {spread} | {row['peak_gb']:.2f} "
            f"| {row['rss_start_gb']:.2f} | {shown} |"
        )
    total = sum(row["seconds"] for row in summary.values())
    peak = max(row["peak_gb"] for row in summary.values())
    print(f"| **total** | **{total:.2f}** | | **{peak:.2f}** (process peak) | | |")
    print_clusters(first)
    for name, sizes in first["frames"].items():
        print(
            f"\nframe after {name}: column buffers {sizes['buffers_gb']:.2f} GB, with the "
            f"distinct str objects {sizes['with_objects_gb']:.2f} GB (pandas deep count, "
            f"which counts a shared str once per row: {sizes['pandas_deep_gb']:.2f} GB)"
        )
    if "steps" in first:
        peaks = ", ".join(
            f"{asset} {statistics.median(run['steps'][asset] for run in runs):.2f} GB"
            for asset in first["steps"]
        )
        print(f"\npeak RSS of each step's processes: {peaks}")
    if not first["exact_peaks"]:
        print("\n(peaks sampled every 5 ms: /proc/self/clear_refs was not writable)")


def print_clusters(run: dict) -> None:
    """Seconds of each per-cluster stage, per cluster (of the first run)."""
    per_cluster = {
        row["stage"]: row["facts"]["clusters"]
        for row in run["stages"]
        if "clusters" in row["facts"]
    }
    if not per_cluster:
        return
    stages = [s for s in per_cluster if ":" not in s]
    keys = list(next(iter(per_cluster.values())))
    print("\nper cluster (seconds; first run):\n")
    print(f"| cluster | SKUs | train windows / epoch | {' | '.join(stages)} | served |")
    print(f"|---|---|---|{'---|' * len(stages)}---|")
    for key in keys:
        serve = per_cluster.get("serve", {}).get(key, {})
        seconds = " | ".join(f"{per_cluster[s][key]['seconds']:.2f}" for s in stages)
        print(
            f"| {key} | {per_cluster['encode'][key]['skus']:,} | "
            f"{serve.get('windows_per_epoch', 0):,} | {seconds} | {serve.get('served', '')} |"
        )


def print_growth(small: tuple[int, list[dict]], large: tuple[int, list[dict]]) -> None:
    (n_small, runs_small), (n_large, runs_large) = small, large
    a, b = summarize(runs_small), summarize(runs_large)
    print(f"\n### growth {n_large:,} / {n_small:,} series (x{n_large / n_small:.1f})\n")
    print(
        "| stage | seconds small | seconds large | time ratio | peak GB small | peak GB large "
        "| added GB small | added GB large |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for stage in a:
        if stage not in b:
            continue
        ratio = b[stage]["seconds"] / max(a[stage]["seconds"], 1e-9)
        added_a = a[stage]["peak_gb"] - a[stage]["rss_start_gb"]
        added_b = b[stage]["peak_gb"] - b[stage]["rss_start_gb"]
        print(
            f"| {stage} | {a[stage]['seconds']:.2f} | {b[stage]['seconds']:.2f} | {ratio:.1f} "
            f"| {a[stage]['peak_gb']:.2f} | {b[stage]['peak_gb']:.2f} "
            f"| {added_a:.2f} | {added_b:.2f} |"
        )
    print("\n(added: peak RSS during the stage minus the RSS when it started)")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3_000, 30_490])
    parser.add_argument(
        "--repeats", type=int, nargs="+", default=[3, 1], help="per size; the last one repeats"
    )
    parser.add_argument("--periods", type=int, default=1_941)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--epochs", type=int, default=2, help="training epochs per cluster (no early stop)"
    )
    parser.add_argument(
        "--max-windows",
        type=int,
        default=None,
        help="training windows per epoch; empty = training.max_windows_per_epoch of the settings",
    )
    parser.add_argument("--tmp-dir", default=None, help="where the temporary history goes")
    parser.add_argument(
        "--no-frame-memory", action="store_true", help="skip counting the frames' bytes"
    )
    parser.add_argument(
        "--isolate-steps",
        action="store_true",
        help="each asset (and cluster partition) in its own process, values handed over as pickles",
    )
    parser.add_argument("--json", type=Path, help="also write every run's measurements here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--cluster", help=argparse.SUPPRESS)
    parser.add_argument("--handoff", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        step = next((s for s in STEPS if s.asset == args.step), None) if args.step else None
        options = Options(
            args.sizes[0],
            args.periods,
            args.seed,
            args.epochs,
            args.max_windows,
            args.tmp_dir,
            not args.no_frame_memory,
        )
        handoff = Path(args.handoff) if args.handoff else None
        print(json.dumps(run_stages(options, step, handoff, args.cluster)))
        return

    header = (
        f"scale benchmark: numpy {np.__version__}, pandas {pd.__version__}, "
        f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        + ("one process per asset step" if args.isolate_steps else "all stages in one process")
    )
    print(header)
    measured = []
    for i, n_series in enumerate(args.sizes):
        repeats = args.repeats[min(i, len(args.repeats) - 1)]
        runs = []
        for repeat in range(repeats):
            print(f"{n_series:,} series, run {repeat + 1} of {repeats} ...", flush=True)
            runs.append(spawn(args, n_series))
        measured.append((n_series, runs))
        print_size(n_series, runs)
    if len(measured) > 1:
        print_growth(measured[0], measured[-1])
    if args.json:
        result = {
            "benchmark": "scale",
            "header": header,
            "argv": sys.argv[1:],
            "isolate_steps": args.isolate_steps,
            "sizes": {str(n): {"summary": summarize(runs), "runs": runs} for n, runs in measured},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
