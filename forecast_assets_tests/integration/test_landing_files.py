"""Landing files through sales_ingest_job: every kind of bad file is quarantined with its
reason, fails the run and changes nothing that was stored or published; good files flow."""

import gzip
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from forecast_assets.core.data.history import HistoryStore
from forecast_assets.definitions import build_definitions
from forecast_assets.demo import run_graph
from forecast_assets.jobs import REFRESH_ASSETS
from forecast_assets.settings import deep_merge
from forecast_assets_tests.conftest import backfill_target, small_settings, tick

pytestmark = pytest.mark.integration

HEADER = "date,sku,quantity,store,category,tags\n"


@dataclass
class Setup:
    root: Path
    landing: Path
    quarantine: Path
    output: Path
    instance: dg.DagsterInstance
    settings: dict

    def definitions(self, changes: dict | None = None) -> dg.Definitions:
        path = self.root / "settings.yaml"
        path.write_text(yaml.safe_dump(deep_merge(self.settings, changes or {})))
        return build_definitions(str(path))

    def ingest(self, names: list[str], changes: dict | None = None) -> dg.ExecuteInProcessResult:
        """sales_ingest_job for these landing files, as new_sales_sensor would request it."""
        files = []
        for name in names:
            stat = os.lstat(self.landing / name) if os.path.lexists(self.landing / name) else None
            files.append(
                {
                    "name": name,
                    "size": stat.st_size if stat else 0,
                    "mtime_ns": stat.st_mtime_ns if stat else 0,
                }
            )
        config = {"ops": {"raw_sales": {"config": {"landing_files": files}}}}
        return (
            self.definitions(changes)
            .resolve_job_def("sales_ingest_job")
            .execute_in_process(instance=self.instance, run_config=config, raise_on_error=False)
        )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """A trained, published graph on the example data, and an empty landing folder."""
    root = tmp_path_factory.mktemp("landing")
    landing = root / "landing"
    landing.mkdir()
    settings = deep_merge(
        small_settings(root / "output"),
        {"data": {"landing_dir": str(landing)}, "automation": {"settle_seconds": 0}},
    )
    with dg.instance_for_test() as instance:
        state = Setup(root, landing, landing / "quarantine", root / "output", instance, settings)
        run_graph(state.definitions(), instance)
        yield state


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    parts = []
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error is not None:
                parts.append(error.message)
                error = error.cause
    return " ".join(parts)


def history_tail(setup: Setup) -> pd.DataFrame:
    """Rows for the week after the history ends, for every SKU, in the landing format."""
    history = HistoryStore(setup.output / "history").read()
    last = history.index.max()
    latest = history.reset_index().groupby("sku").last()
    days = pd.date_range(last + pd.Timedelta(days=1), periods=7, freq="D")
    rows = [
        {
            "date": day.strftime("%Y-%m-%d"),
            "sku": sku,
            "quantity": 5,
            "store": row["store"],
            "category": row["category"],
            "tags": row["tags"],
        }
        for sku, row in latest.iterrows()
        for day in days
    ]
    return pd.DataFrame(rows)


def _text(content: str, encoding: str = "utf-8") -> Callable[[Path], None]:
    return lambda path: path.write_bytes(content.encode(encoding))


def _bytes(content: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(content)


def _parquet(frame: pd.DataFrame) -> Callable[[Path], None]:
    return lambda path: frame.to_parquet(path)


ROW = "2024-11-20,a,3,north,snacks,\n"


def _outside_link(path: Path) -> None:
    target = path.parent.parent / "elsewhere.csv"
    target.write_text(HEADER + ROW)
    path.symlink_to(target)


# name, how the file is made, words of the reason, extra settings
CASES = [
    ("garbage.csv.gz", _bytes(b"this is not gzip"), "cannot be read", {}),
    ("corrupt.parquet", _bytes(b"PAR1 not really parquet PAR1"), "cannot be read", {}),
    ("wrong_columns.csv", _text("day,item,units\n2024-11-20,a,3\n"), "missing column", {}),
    ("semicolons.csv", _text(HEADER.replace(",", ";") + ROW.replace(",", ";")), "missing", {}),
    ("bad_date.csv", _text(HEADER + "2024-13-45,a,3,north,snacks,\n"), "parseable date", {}),
    ("negative.csv", _text(HEADER + "2024-11-20,a,-3,north,snacks,\n"), "negative", {}),
    ("text_quantity.csv", _text(HEADER + "2024-11-20,a,three,north,snacks,\n"), "number", {}),
    ("empty_quantity.csv", _text(HEADER + "2024-11-20,a,,north,snacks,\n"), "number", {}),
    ("infinite.csv", _text(HEADER + "2024-11-20,a,inf,north,snacks,\n"), "number", {}),
    ("zero_bytes.csv", _bytes(b""), "0 bytes", {}),
    ("header_only.csv", _text(HEADER), "no rows", {}),
    (
        "duplicated.csv",
        _text(HEADER + ROW + ROW),
        "more than once",
        {"data": {"duplicates": "error"}},
    ),
    ("latin1.csv", _text(HEADER + "2024-11-20,a,3,Köln,snacks,\n", "latin-1"), "utf-8", {}),
    ("utf16.csv", _text(HEADER + ROW, "utf-16"), "utf-8", {}),
    ("huge.csv", _text(HEADER + "2024-11-20,a,1e15,north,snacks,\n"), "max_quantity", {}),
    ("future.csv", _text(HEADER + "2031-01-01,a,3,north,snacks,\n"), "after today", {}),
    ("mixed_dates.csv", _text(HEADER + ROW + "21/11/2024,a,3,north,snacks,\n"), "format", {}),
    ("empty_sku.csv", _text(HEADER + "2024-11-20,,3,north,snacks,\n"), "empty SKU", {}),
    ("report.xlsx", _bytes(b"PK\x03\x04 spreadsheet"), "not a supported", {}),
    ("link.csv", _outside_link, "outside the landing folder", {}),
    (
        "text_quantity.parquet",
        _parquet(
            pd.DataFrame(
                {
                    "date": pd.to_datetime(["2024-11-20"]),
                    "sku": ["a"],
                    "quantity": ["lots"],
                    "store": ["north"],
                    "category": ["snacks"],
                    "tags": [""],
                }
            )
        ),
        "number",
        {},
    ),
]


@pytest.mark.parametrize(("name", "make", "reason", "changes"), CASES, ids=[c[0] for c in CASES])
def test_bad_file_is_quarantined_with_its_reason_and_changes_nothing(
    setup: Setup, name: str, make, reason: str, changes: dict
) -> None:
    before = snapshot(setup.output)
    make(setup.landing / name)

    result = setup.ingest([name], changes)

    assert not result.success
    message = failure_text(result)
    assert name in message and reason.lower() in message.lower(), message
    moved = [p for p in setup.quarantine.glob(f"*-{name}")]
    assert len(moved) == 1, sorted(setup.quarantine.iterdir())
    sidecar = moved[0].with_name(moved[0].name + ".reason.txt").read_text()
    assert reason.lower() in sidecar.lower()
    assert not os.path.lexists(setup.landing / name)
    assert snapshot(setup.output) == before
    if name == "link.csv":  # the link moved, never the file it points to
        assert (setup.root / "elsewhere.csv").read_text() == HEADER + ROW


def test_a_name_outside_the_landing_folder_moves_nothing(setup: Setup) -> None:
    outside = setup.root / "outside.csv"
    outside.write_text(HEADER + ROW)
    before = snapshot(setup.output)

    result = setup.ingest(["../outside.csv"])

    assert not result.success
    assert "outside the landing folder" in failure_text(result)
    assert outside.read_text() == HEADER + ROW
    assert not list(setup.quarantine.glob("*outside.csv"))
    assert snapshot(setup.output) == before


def test_a_vanished_file_fails_the_run_and_moves_nothing(setup: Setup) -> None:
    before = snapshot(setup.output)
    result = setup.ingest(["vanished.csv"])
    assert not result.success
    assert "no longer exists" in failure_text(result)
    assert snapshot(setup.output) == before


def test_a_file_that_changed_since_detection_stays_for_a_later_run(setup: Setup) -> None:
    file = setup.landing / "growing.csv"
    file.write_text(HEADER + ROW)
    before = snapshot(setup.output)
    seen = {"name": file.name, "size": file.stat().st_size, "mtime_ns": file.stat().st_mtime_ns}
    with file.open("a") as handle:
        handle.write("2024-11-21,a,4,north,snacks,\n")

    config = {"ops": {"raw_sales": {"config": {"landing_files": [seen]}}}}
    result = (
        setup.definitions()
        .resolve_job_def("sales_ingest_job")
        .execute_in_process(instance=setup.instance, run_config=config, raise_on_error=False)
    )

    assert not result.success
    assert "changed since" in failure_text(result)
    assert file.exists()
    assert not list(setup.quarantine.glob("*growing.csv"))
    assert snapshot(setup.output) == before
    file.unlink()


def test_good_files_flow_past_a_bad_one_and_later_delivery_wins(setup: Setup) -> None:
    store = HistoryStore(setup.output / "history")
    version = store.version
    tail = history_tail(setup)
    tail.to_csv(setup.landing / "week.csv", index=False)
    gz = tail.head(3).assign(quantity=9)
    with gzip.open(setup.landing / "correction.csv.gz", "wt") as handle:
        gz.to_csv(handle, index=False)
    later = (setup.landing / "correction.csv.gz").stat().st_mtime_ns + 10**9
    os.utime(setup.landing / "correction.csv.gz", ns=(later, later))
    (setup.landing / "broken.csv").write_text(HEADER + "2024-13-45,a,3,north,snacks,\n")

    result = setup.ingest(["week.csv", "broken.csv", "correction.csv.gz"])

    assert not result.success  # the run says a file was refused...
    assert "broken.csv" in failure_text(result)
    history = store.read()  # ...and the good files are in the history all the same
    assert store.version == version + 1
    last_day = pd.Timestamp(tail["date"].max())
    assert history.index.max() == last_day
    corrected = (
        history.reset_index()
        .set_index(["sku", "date"])
        .loc[[(row.sku, pd.Timestamp(row.date)) for row in gz.itertuples()], "quantity"]
    )
    assert (corrected == 9).all()  # the later delivery wins
    panel = setup.definitions().load_asset_value("resampled_series", instance=setup.instance)
    assert panel.dates[-1] == last_day

    # The same files again (a retried run): nothing changes.
    again = setup.ingest(["week.csv", "correction.csv.gz"])
    assert again.success
    assert store.version == version + 1


def test_new_sales_refresh_every_cluster_and_publish_without_training(setup: Setup) -> None:
    defs, instance = setup.definitions(), setup.instance
    tail = history_tail(setup)
    tail.to_csv(setup.landing / "next_week.csv", index=False)
    models_before = latest_model_event(instance)

    requests, _ = tick(defs, "new_sales_sensor", instance, None)
    ingest = defs.resolve_job_def("sales_ingest_job").execute_in_process(
        instance=instance, run_config=requests[-1].run_config
    )
    assert ingest.success

    (refresh,), refresh_cursor = tick(defs, "refresh_after_new_sales", instance, None)
    clusters = sorted(instance.get_dynamic_partitions("clusters"))
    # One backfill over every cluster; each of its runs is one refresh_job partition.
    assert backfill_target(refresh) == {asset: clusters for asset in REFRESH_ASSETS}
    for cluster in clusters:
        run = defs.resolve_job_def("refresh_job").execute_in_process(
            instance=instance, partition_key=cluster
        )
        assert run.success
    assert tick(defs, "refresh_after_new_sales", instance, refresh_cursor)[0] == []

    publish, publish_cursor = tick(defs, "publish_forecasts", instance, None)
    assert len(publish) == 1
    assert defs.resolve_job_def("forecasts_job").execute_in_process(instance=instance).success
    assert tick(defs, "publish_forecasts", instance, publish_cursor)[0] == []

    table = pd.read_parquet(setup.output / "forecasts.parquet")
    assert table["date"].min() == pd.Timestamp(tail["date"].max()) + pd.Timedelta(days=1)
    # No model was trained: the served models forecast the new data.
    models_after = latest_model_event(instance)
    assert models_after == models_before


def latest_model_event(instance: dg.DagsterInstance) -> int:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("cluster_model")), limit=1
    ).records
    return records[0].storage_id
