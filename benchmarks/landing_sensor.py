"""How long one tick of new_sales_sensor takes with 10,000 files in the landing folder.

Measures the whole sensor evaluation (settings already loaded, as in the code server) against a
real temporary Dagster instance, in three states of the folder:
- first look: every file is new (one run request for the first automation.max_files_per_run);
- steady: every file was taken before (nothing to request);
- one new: every file was taken before except one that just landed.

    .venv/bin/python benchmarks/landing_sensor.py [--files 10000] [--repeats 7]

Prints the median and the spread of the repeats; the machine is shared, so medians matter.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg
import yaml

from forecast_assets.definitions import build_definitions

ROW = "date,sku,quantity\n2024-01-01,a,1\n"


def timed_tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    sensor = defs.resolve_sensor_def("new_sales_sensor")
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    started = time.perf_counter()
    result = sensor(context)
    return time.perf_counter() - started, result


def summarize(label: str, seconds: list[float]) -> str:
    return (
        f"{label:<28} median {statistics.median(seconds) * 1000:7.1f} ms   "
        f"min {min(seconds) * 1000:7.1f}   max {max(seconds) * 1000:7.1f}   (n={len(seconds)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        landing = Path(tmp) / "landing"
        landing.mkdir()
        for number in range(args.files):
            (landing / f"sales_{number:05d}.csv").write_text(ROW)
        settings = Path(tmp) / "settings.yaml"
        settings.write_text(
            yaml.safe_dump(
                {
                    "data": {"landing_dir": str(landing)},
                    "automation": {"settle_seconds": 0},
                    "output": {"dir": str(Path(tmp) / "output")},
                }
            )
        )
        defs = build_definitions(str(settings))

        first, steady, one_new = [], [], []
        for repeat in range(args.repeats):
            seconds, result = timed_tick(defs, instance, None)
            first.append(seconds)
            # The cursor after every file has been requested once.
            done = result.cursor
            while True:
                _, result = timed_tick(defs, instance, done)
                if not result.run_requests:
                    break
                done = result.cursor
            seconds, result = timed_tick(defs, instance, done)
            assert not result.run_requests
            steady.append(seconds)
            newcomer = landing / f"new_{repeat}.csv"
            newcomer.write_text(ROW)
            seconds, result = timed_tick(defs, instance, done)
            assert len(result.run_requests) == 1
            one_new.append(seconds)
            newcomer.unlink()

        print(f"new_sales_sensor tick, {args.files} files in the landing folder")
        print(summarize("first look (all new)", first))
        print(summarize("steady (all taken)", steady))
        print(summarize("one new file", one_new))


if __name__ == "__main__":
    main()
