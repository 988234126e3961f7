"""How the stages up to clustering scale to an M5-sized catalogue: wall time and peak memory.

Runs the core functions the ingest and clustering assets call, in their order, with the
project's default settings for daily data (the packaged ``default_settings.yaml``: column spec
``store, category`` + multi-label ``tags``, ``timeseries.freq: D``, ``min_history``, season 7,
the clustering k range, ``seed``), on ``generate_catalogue`` data:

    generate     generate_catalogue(n_series, periods)            (the source extract)
    standardize  loader.standardize_sales(frame, spec)            (what raw_sales merges)
    merge        HistoryStore.merge into a temporary history       (raw_sales)
    read         HistoryStore.read                                  (raw_sales' output)
    resample     resample_sales(sales, freq, min_history, attrs)   (resampled_series)
    metafeatures compute_metafeatures(panel, season)               (metafeatures)
    cluster      cluster_skus(features, k_min, k_max, ...)         (clusters)

Each (size, repeat) runs in a fresh subprocess so that peaks do not carry over. Per stage it
reports the wall time and the peak RSS *during* the stage: the kernel's high-water mark is
reset when a stage starts (``/proc/self/clear_refs``) and read with ``getrusage`` when it
ends; where that reset is not allowed, a thread samples the RSS every 5 ms instead (it can miss
short peaks while C code holds the GIL).

By default all stages share one process, as in ``execute_in_process``: a stage's peak then
includes what earlier stages left allocated ("RSS at start"; freed memory that the allocators
keep counts too). ``--isolate-steps`` runs each asset in its own process instead, as
Dagster's multiprocess executor does, handing the asset values over as pickle files like the
filesystem IO manager (the load and the store are timed as rows of their own):

    raw_sales         generate, standardize, merge, read    -> sales
    resampled_series  resample                               -> panel
    metafeatures      metafeatures                           -> metafeatures
    clusters          cluster                                -> clusters

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scale.py [--sizes 3000 30490]
        [--repeats 3 1] [--periods 1941] [--seed 0] [--isolate-steps] [--tmp-dir DIR]
        [--no-frame-memory]

Per-cluster training and forecasting are not measured yet: the extension point is ``STEPS``
(see there); a stage added there is timed and reported like the others.
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
        settings.timeseries.min_history,
        settings.data.column_spec().attribute_columns,
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
    return {"k": result.k, "sizes": list(result.sizes.values())}


STAGES: dict[str, Stage] = {
    "generate": stage_generate,
    "standardize": stage_standardize,
    "merge": stage_merge,
    "read": stage_read,
    "resample": stage_resample,
    "metafeatures": stage_metafeatures,
    "cluster": stage_cluster,
}


@dataclass(frozen=True)
class Step:
    """One asset: its stages, the state keys it reads (other assets' values) and the key of
    the value it produces."""

    asset: str
    stages: tuple[str, ...]
    inputs: tuple[str, ...]
    output: str


STEPS: list[Step] = [
    Step("raw_sales", ("generate", "standardize", "merge", "read"), (), "sales"),
    Step("resampled_series", ("resample",), ("sales",), "panel"),
    Step("metafeatures", ("metafeatures",), ("panel",), "metafeatures"),
    Step("clusters", ("cluster",), ("metafeatures",), "clusters"),
]
# Extension point: per-cluster training and forecasting. Add the stage functions to STAGES and
# a Step each, e.g. Step("cluster_model", ("train",), ("panel", "clusters"), "models"): a stage
# gets ``state`` with the loaded ``settings`` and the values named in ``inputs`` (``panel`` is
# the SalesPanel, ``clusters`` the ClusterResult: ``state["panel"].select(skus)`` gives one
# cluster's series), puts its value under ``output`` and is timed and measured like the others.
# Keep in ``state`` what a later step reads (``panel`` is kept after metafeatures for that).


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


def run_stages(
    n_series: int,
    periods: int,
    seed: int,
    tmp_dir: str | None,
    measure: bool,
    step: Step | None = None,
    handoff: Path | None = None,
) -> dict:
    """Run every stage (``step`` None), or one step that loads its inputs from and stores its
    output in ``handoff``; returns the measurements."""
    from forecast_assets.settings import DEFAULT_SETTINGS_FILE, load_settings

    settings = load_settings(DEFAULT_SETTINGS_FILE)
    meter = PeakMeter()
    results: list[dict[str, Any]] = []
    frames: dict[str, dict[str, float]] = {}

    def measured(name: str, work: Callable[[], dict[str, Any] | None]) -> None:
        rss_start = current_rss()
        meter.start()
        started = time.perf_counter()
        facts = work() or {}
        seconds = time.perf_counter() - started
        results.append(
            {
                "stage": name,
                "seconds": seconds,
                "peak_gb": meter.peak() / GB,
                "rss_start_gb": rss_start / GB,
                "rss_end_gb": current_rss() / GB,
                "facts": facts,
            }
        )

    with tempfile.TemporaryDirectory(dir=tmp_dir, prefix="scale-history-") as history_dir:
        state: dict[str, Any] = {
            "settings": settings,
            "n_series": n_series,
            "periods": periods,
            "seed": seed,
            "source": f"generate_catalogue({n_series}, {periods}, seed={seed})",
            "history_dir": history_dir,
        }
        steps = STEPS if step is None else [step]
        for current in steps:
            if handoff is not None and current.inputs:
                measured(f"{current.asset}: load", partial(_load, state, current, handoff))
            for name in current.stages:
                measured(name, partial(STAGES[name], state))
                # Not timed: the size of the frame the stage produced.
                if measure and name in ("standardize", "read"):
                    frames[name] = frame_memory(
                        state["standardized" if name == "standardize" else "sales"]
                    )
            if handoff is not None:
                measured(f"{current.asset}: store", partial(_store, state, current, handoff))
    return {
        "n_series": n_series,
        "periods": periods,
        "exact_peaks": meter.exact,
        "stages": results,
        "frames": frames,
    }


def _load(state: dict[str, Any], step: Step, handoff: Path) -> dict[str, Any]:
    size = 0
    for key in step.inputs:
        path = handoff / f"{key}.pickle"
        size += path.stat().st_size
        with open(path, "rb") as handle:
            state[key] = pickle.load(handle)
    return {"pickle_mb": size / 1e6}


def _store(state: dict[str, Any], step: Step, handoff: Path) -> dict[str, Any]:
    path = handoff / f"{step.output}.pickle"
    with open(path, "wb") as handle:
        pickle.dump(state[step.output], handle, protocol=pickle.HIGHEST_PROTOCOL)
    return {"pickle_mb": path.stat().st_size / 1e6}


# --- driver -----------------------------------------------------------------------------------


def spawn(args: argparse.Namespace, n_series: int) -> dict:
    """One measured run of every stage: in one worker process, or one per step."""
    if not args.isolate_steps:
        return _worker(args, n_series, [])
    with tempfile.TemporaryDirectory(dir=args.tmp_dir, prefix="scale-handoff-") as handoff:
        runs = [
            _worker(args, n_series, ["--step", step.asset, "--handoff", handoff]) for step in STEPS
        ]
    merged = dict(runs[0])
    merged["stages"] = [row for run in runs for row in run["stages"]]
    merged["frames"] = {name: size for run in runs for name, size in run["frames"].items()}
    merged["steps"] = {
        step.asset: max(row["peak_gb"] for row in run["stages"])
        for step, run in zip(STEPS, runs, strict=True)
    }
    return merged


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
        *extra,
    ]
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
    print(f"\n### {n_series:,} series x {runs[0]['periods']:,} days ({label})\n")
    print("| stage | seconds | min - max | peak RSS GB | RSS at start GB | facts |")
    print("|---|---|---|---|---|---|")
    for i, (stage, row) in enumerate(summary.items()):
        facts = ", ".join(f"{k} {_fmt(v)}" for k, v in runs[0]["stages"][i]["facts"].items())
        spread = f"{row['min']:.2f} - {row['max']:.2f}" if len(runs) > 1 else ""
        print(
            f"| {stage} | {row['seconds']:.2f} | {spread} | {row['peak_gb']:.2f} "
            f"| {row['rss_start_gb']:.2f} | {facts} |"
        )
    total = sum(row["seconds"] for row in summary.values())
    peak = max(row["peak_gb"] for row in summary.values())
    print(f"| **total** | **{total:.2f}** | | **{peak:.2f}** (process peak) | | |")
    for name, sizes in runs[0]["frames"].items():
        print(
            f"\nframe after {name}: column buffers {sizes['buffers_gb']:.2f} GB, with the "
            f"distinct str objects {sizes['with_objects_gb']:.2f} GB (pandas deep count, "
            f"which counts a shared str once per row: {sizes['pandas_deep_gb']:.2f} GB)"
        )
    if "steps" in runs[0]:
        peaks = ", ".join(
            f"{asset} {statistics.median(run['steps'][asset] for run in runs):.2f} GB"
            for asset in runs[0]["steps"]
        )
        print(f"\npeak RSS of each step's process: {peaks}")
    if not runs[0]["exact_peaks"]:
        print("\n(peaks sampled every 5 ms: /proc/self/clear_refs was not writable)")


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
    parser.add_argument("--tmp-dir", default=None, help="where the temporary history goes")
    parser.add_argument(
        "--no-frame-memory", action="store_true", help="skip counting the frames' bytes"
    )
    parser.add_argument(
        "--isolate-steps",
        action="store_true",
        help="each asset in its own process, values handed over as pickles",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--handoff", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        step = next((s for s in STEPS if s.asset == args.step), None) if args.step else None
        result = run_stages(
            args.sizes[0],
            args.periods,
            args.seed,
            args.tmp_dir,
            not args.no_frame_memory,
            step,
            Path(args.handoff) if args.handoff else None,
        )
        print(json.dumps(result))
        return

    print(
        f"scale benchmark: numpy {np.__version__}, pandas {pd.__version__}, "
        f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        + ("one process per asset step" if args.isolate_steps else "all stages in one process")
    )
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


if __name__ == "__main__":
    main()
