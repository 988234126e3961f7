"""The sales-history store: round trips, merge rules, signatures, crash safety and concurrency."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from forecast_assets.core.data import history
from forecast_assets.core.data.history import HistoryStore, MergeResult, SourceRecord
from forecast_assets.core.data.loader import ColumnSpec, load_sales
from forecast_assets.core.errors import (
    ConfigurationError,
    DataValidationError,
    InsufficientDataError,
)

SIGNATURE = {"data_path": "sales/", "sku_columns": ["sku"], "quantity_column": "quantity"}
SUBPROCESS_TIMEOUT_S = 120


def sales(*rows: tuple[str, str, float, str]) -> pd.DataFrame:
    """A standardized frame from (sku, date, quantity, color) rows."""
    frame = pd.DataFrame(list(rows), columns=["sku", "date", "quantity", "color"])
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    frame["quantity"] = frame["quantity"].astype("float64")
    return frame.set_index("date")


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root`` with its bytes and mtime."""
    return {
        str(path.relative_to(root)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def part_files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in (root / "parts").rglob("*.parquet")}


def pairs(frame: pd.DataFrame) -> dict[tuple[str, str], float]:
    return {
        (sku, f"{date:%Y-%m-%d}"): quantity
        for date, sku, quantity in zip(frame.index, frame["sku"], frame["quantity"], strict=True)
    }


BASE = sales(
    ("A", "2023-12-30", 1.0, "red"),
    ("A", "2023-12-31", 2.0, "red"),
    ("A", "2024-01-01", 3.0, "red"),
    ("B", "2024-01-01", 4.0, "blue"),
)


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    """A store with BASE committed as version 1."""
    result = HistoryStore(tmp_path / "history").merge([(SourceRecord("base.csv"), BASE)], SIGNATURE)
    assert result.version == 1
    return HistoryStore(tmp_path / "history")


# --- round trip and bookkeeping ---------------------------------------------------------------


def test_first_merge_round_trips_the_loader_frame(tmp_path: Path) -> None:
    file = tmp_path / "sales.csv"
    file.write_text(
        "date,sku,quantity,color\n"
        "2023-12-30,B,1,blue\n"
        "2024-01-02,A,2.5,red\n"
        "2023-12-31,A,4,red\n"
        "2024-01-03,B,0,green\n"
    )
    loaded = load_sales(file, ColumnSpec(categorical_columns=("color",)))
    root = tmp_path / "history"
    record = SourceRecord(str(file), size=file.stat().st_size, sha256="abc", rows=4)

    result = HistoryStore(root).merge([(record, loaded)], SIGNATURE)
    read = HistoryStore(root).read()

    pd.testing.assert_frame_equal(read, loaded)
    assert read.index.name == "date"
    assert read.index.dtype == np.dtype("datetime64[ns]")
    assert read["sku"].dtype == object
    assert read["quantity"].dtype == np.float64
    assert read["color"].dtype == object
    assert result == MergeResult(
        version=1,
        rows_before=0,
        rows_after=4,
        rows_new=4,
        rows_replaced=0,
        skus_new=2,
        years_rewritten=["2023", "2024"],
    )
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["version"] == 1
    assert manifest["signature"] == SIGNATURE
    assert manifest["parts"] == {
        "2023": "parts/year=2023/v000001.parquet",
        "2024": "parts/year=2024/v000001.parquet",
    }
    assert manifest["columns"] == ["color"]
    assert (manifest["rows"], manifest["skus"]) == (4, 2)
    assert manifest["first_date"].startswith("2023-12-30")
    assert manifest["last_date"].startswith("2024-01-03")
    assert manifest["committed_at"].endswith("+00:00")
    assert HistoryStore(root).sources() == {str(file): record}
    assert HistoryStore(root).version == 1
    assert HistoryStore(root).signature() == SIGNATURE


def test_batches_are_coerced_to_the_stored_dtypes(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"sku": [7, 8], "quantity": [1, 2], "size": [1, 2]},
        index=pd.DatetimeIndex(["2024-01-01", "2024-01-02"], name="date").as_unit("us"),
    )
    HistoryStore(tmp_path).merge([(SourceRecord("ints.parquet"), frame)], SIGNATURE)

    read = HistoryStore(tmp_path).read()

    assert read.index.dtype == np.dtype("datetime64[ns]")
    assert read["sku"].tolist() == ["7", "8"]
    assert read["quantity"].dtype == np.float64
    assert read["size"].tolist() == ["1", "2"]
    assert HistoryStore(tmp_path).sources()["ints.parquet"].rows == 2


def test_source_records_round_trip_and_a_later_merge_replaces_them(store: HistoryStore) -> None:
    first = SourceRecord("b.csv", size=10, mtime_ns=5, sha256="aa", rows=1)
    second = SourceRecord("b.csv", size=11, mtime_ns=6, sha256="bb", rows=1)
    batch = sales(("C", "2024-02-01", 1.0, "x"))

    store.merge([(first, batch)], SIGNATURE)
    store.merge([(second, batch)], SIGNATURE)

    assert SourceRecord.from_dict(first.to_dict()) == first
    assert store.sources() == {"base.csv": SourceRecord("base.csv", rows=4), "b.csv": second}


# --- merge rules ------------------------------------------------------------------------------


def test_a_later_merge_wins_for_a_shared_sku_date(store: HistoryStore) -> None:
    update = sales(
        ("A", "2024-01-01", 30.0, "red"),  # replaces
        ("A", "2024-01-02", 5.0, "red"),  # new date
        ("C", "2024-01-01", 6.0, "teal"),  # new SKU
    )

    result = store.merge([(SourceRecord("update.csv"), update)], SIGNATURE)

    assert (result.rows_new, result.rows_replaced, result.skus_new) == (2, 1, 1)
    assert (result.rows_before, result.rows_after, result.version) == (4, 6, 2)
    assert pairs(store.read()) == {
        ("A", "2023-12-30"): 1.0,
        ("A", "2023-12-31"): 2.0,
        ("A", "2024-01-01"): 30.0,
        ("A", "2024-01-02"): 5.0,
        ("B", "2024-01-01"): 4.0,
        ("C", "2024-01-01"): 6.0,
    }
    assert store.manifest()["rows"] == 6
    assert store.manifest()["skus"] == 3


def test_an_equal_row_still_counts_as_replaced(store: HistoryStore) -> None:
    result = store.merge([(SourceRecord("same.csv"), BASE)], SIGNATURE)

    assert (result.rows_new, result.rows_replaced, result.skus_new) == (0, 4, 0)
    pd.testing.assert_frame_equal(store.read(), BASE.sort_values(["sku"], kind="stable"))


def test_a_later_batch_wins_within_one_merge_call(store: HistoryStore) -> None:
    early = sales(("A", "2024-01-01", 10.0, "red"), ("D", "2024-03-01", 1.0, "gold"))
    late = sales(
        ("A", "2024-01-01", 20.0, "red"),
        ("D", "2024-03-01", 2.0, "gold"),
        ("A", "2024-01-05", 7.0, "red"),
    )

    result = store.merge(
        [(SourceRecord("early.csv"), early), (SourceRecord("late.csv"), late)], SIGNATURE
    )

    # (A, 01-01) was stored; (D, 03-01) is new though both batches carry it.
    assert (result.rows_new, result.rows_replaced, result.skus_new) == (2, 1, 1)
    assert result.rows_after == 6
    read = pairs(store.read())
    assert read[("A", "2024-01-01")] == 20.0
    assert read[("D", "2024-03-01")] == 2.0
    assert read[("A", "2024-01-05")] == 7.0
    assert len(read) == 6


def test_attributes_come_from_the_most_recent_row(store: HistoryStore) -> None:
    store.merge([(SourceRecord("new.csv"), sales(("A", "2024-03-01", 1.0, "blue")))], SIGNATURE)
    # A correction of an old date brings an old colour that must not win.
    store.merge([(SourceRecord("fix.csv"), sales(("A", "2023-12-30", 9.0, "green")))], SIGNATURE)

    read = store.read()

    assert set(read.loc[read["sku"] == "A", "color"]) == {"blue"}
    assert set(read.loc[read["sku"] == "B", "color"]) == {"blue"}
    assert pairs(read)[("A", "2023-12-30")] == 9.0
    assert read["sku"].tolist() == ["A"] * 4 + ["B"]
    dates = ["2023-12-30", "2023-12-31", "2024-01-01", "2024-03-01", "2024-01-01"]
    assert list(read.index) == [pd.Timestamp(d) for d in dates]


def test_only_touched_years_are_rewritten(store: HistoryStore) -> None:
    root = store.root
    old_2023 = root / store.manifest()["parts"]["2023"]
    before = (old_2023.read_bytes(), old_2023.stat().st_mtime_ns)

    result = store.merge(
        [(SourceRecord("jan.csv"), sales(("B", "2024-01-02", 1.0, "blue")))], SIGNATURE
    )

    parts = store.manifest()["parts"]
    assert result.years_rewritten == ["2024"]
    assert parts == {
        "2023": "parts/year=2023/v000001.parquet",
        "2024": "parts/year=2024/v000002.parquet",
    }
    assert (old_2023.read_bytes(), old_2023.stat().st_mtime_ns) == before
    assert pq.read_table(root / parts["2024"]).num_rows == 3


# --- refusals ---------------------------------------------------------------------------------


def test_a_signature_mismatch_raises_and_changes_nothing(store: HistoryStore) -> None:
    before = snapshot(store.root)
    other = {**SIGNATURE, "data_path": "elsewhere/"}

    with pytest.raises(ConfigurationError) as caught:
        store.merge([(SourceRecord("x.csv"), sales(("Z", "2025-01-01", 1.0, "z")))], other)
    with pytest.raises(ConfigurationError):
        store.check_signature(other)
    with pytest.raises(ConfigurationError):
        store.merge([], other)

    message = str(caught.value)
    assert str(store.root) in message
    assert "sales/" in message and "elsewhere/" in message
    assert "move or delete" in message.lower()
    assert snapshot(store.root) == before
    # Tuples and lists serialize alike, so this is the same signature.
    store.check_signature({**SIGNATURE, "sku_columns": ("sku",)})


@pytest.mark.parametrize(
    ("batch", "column"),
    [
        (sales(("A", "2024-05-01", 1.0, "red")).assign(size="L"), "size"),
        (sales(("A", "2024-05-01", 1.0, "red")).drop(columns="color"), "color"),
    ],
)
def test_other_attribute_columns_raise_naming_source_and_column(
    store: HistoryStore, batch: pd.DataFrame, column: str
) -> None:
    before = snapshot(store.root)

    with pytest.raises(DataValidationError) as caught:
        store.merge([(SourceRecord("odd.csv"), batch)], SIGNATURE)

    assert caught.value.source == "odd.csv"
    assert caught.value.column == column
    assert "odd.csv" in str(caught.value) and column in str(caught.value)
    assert snapshot(store.root) == before


@pytest.mark.parametrize(
    "frame",
    [
        BASE.reset_index(),
        BASE.rename_axis("day"),
        BASE.drop(columns="quantity"),
    ],
)
def test_unstandardized_batches_raise_naming_the_source(
    tmp_path: Path, frame: pd.DataFrame
) -> None:
    with pytest.raises(DataValidationError) as caught:
        HistoryStore(tmp_path).merge([(SourceRecord("raw.csv"), frame)], SIGNATURE)

    assert caught.value.source == "raw.csv"
    assert not HistoryStore(tmp_path).exists()


def test_reading_an_empty_store_raises_naming_the_folder(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history")

    with pytest.raises(InsufficientDataError, match=str(tmp_path / "history")):
        store.read()
    assert (store.exists(), store.version, store.manifest(), store.sources()) == (
        False,
        0,
        None,
        {},
    )


def test_an_empty_batch_list_is_a_no_op(tmp_path: Path, store: HistoryStore) -> None:
    before = snapshot(store.root)

    result = store.merge([], SIGNATURE)
    empty = HistoryStore(tmp_path / "nothing").merge([], SIGNATURE)

    assert result == MergeResult(1, 4, 4, 0, 0, 0, [])
    assert empty == MergeResult(0, 0, 0, 0, 0, 0, [])
    assert snapshot(store.root) == before
    assert not (tmp_path / "nothing").exists()


# --- commits, crashes and garbage collection --------------------------------------------------


def test_previous_manifest_is_kept_and_gc_keeps_its_parts(store: HistoryStore) -> None:
    root = store.root
    store.merge([(SourceRecord("2.csv"), sales(("B", "2024-01-02", 1.0, "blue")))], SIGNATURE)
    store.merge([(SourceRecord("3.csv"), sales(("B", "2024-01-03", 1.0, "blue")))], SIGNATURE)

    previous = json.loads((root / "manifest.previous.json").read_text())
    current = store.manifest()

    assert (previous["version"], current["version"]) == (2, 3)
    assert previous["parts"]["2024"] == "parts/year=2024/v000002.parquet"
    assert part_files(root) == {
        "parts/year=2023/v000001.parquet",
        "parts/year=2024/v000002.parquet",
        "parts/year=2024/v000003.parquet",
    }
    # A reader that loaded the previous manifest can still read every part it names.
    assert sum(pq.read_table(root / p).num_rows for p in previous["parts"].values()) == 5
    assert not list(root.glob(".*.tmp"))


KILL_AT_PUBLISH = """
import json, os, signal, sys
import pandas as pd
from forecast_assets.core.data import history

def die(tmp, target):
    os.kill(os.getpid(), signal.SIGKILL)

history._publish_manifest = die
store = history.HistoryStore(sys.argv[1])
batch = pd.read_pickle(sys.argv[2])
store.merge([(history.SourceRecord("late.csv"), batch)], json.loads(sys.argv[3]))
"""


def run_python(script: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_kill_at_publish_leaves_the_old_history(tmp_path: Path, store: HistoryStore) -> None:
    root = store.root
    old = store.read()
    old_manifest = (root / "manifest.json").read_bytes()
    batch = tmp_path / "batch.pkl"
    sales(("A", "2022-06-01", 8.0, "red"), ("A", "2024-01-01", 99.0, "red")).to_pickle(batch)

    process = run_python(KILL_AT_PUBLISH, str(root), str(batch), json.dumps(SIGNATURE))
    _, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT_S)

    assert process.returncode == -signal.SIGKILL, stderr
    assert "parts/year=2022/v000002.parquet" in part_files(root)  # written, never committed
    assert list(root.glob(".manifest.json.*.tmp"))
    fresh = HistoryStore(root)
    assert (root / "manifest.json").read_bytes() == old_manifest
    assert fresh.version == 1
    pd.testing.assert_frame_equal(fresh.read(), old)

    result = fresh.merge(
        [(SourceRecord("next.csv"), sales(("B", "2024-01-02", 1.0, "blue")))], SIGNATURE
    )

    assert result.version == 2
    assert part_files(root) == {
        "parts/year=2023/v000001.parquet",
        "parts/year=2024/v000001.parquet",
        "parts/year=2024/v000002.parquet",
    }
    assert not (root / "parts" / "year=2022").exists()
    assert not list(root.glob(".*.tmp"))
    assert pairs(fresh.read()) == {**pairs(old), ("B", "2024-01-02"): 1.0}


def test_a_failure_while_writing_a_part_leaves_the_old_history(
    store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = store.root
    old = store.read()
    old_manifest = (root / "manifest.json").read_bytes()
    real_write = pq.write_table
    calls = []

    def fail_on_second(table: object, where: object, **kwargs: object) -> None:
        calls.append(where)
        if len(calls) == 1:
            real_write(table, where, **kwargs)
            return
        Path(str(where)).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(history.pq, "write_table", fail_on_second)
    batch = sales(("A", "2022-06-01", 8.0, "red"), ("A", "2024-01-01", 99.0, "red"))

    with pytest.raises(OSError, match="disk full"):
        store.merge([(SourceRecord("late.csv"), batch)], SIGNATURE)

    assert len(calls) == 2
    assert (root / "manifest.json").read_bytes() == old_manifest
    assert HistoryStore(root).version == 1
    pd.testing.assert_frame_equal(HistoryStore(root).read(), old)
    assert not list(root.rglob("*.tmp"))  # the half-written file went with its temp name

    monkeypatch.setattr(history.pq, "write_table", real_write)
    store.merge([(SourceRecord("next.csv"), sales(("B", "2024-01-02", 1.0, "blue")))], SIGNATURE)
    assert "parts/year=2022/v000002.parquet" not in part_files(root)


# --- concurrency ------------------------------------------------------------------------------

MERGE_WHEN_TOLD = """
import json, sys, time
from pathlib import Path
import pandas as pd
from forecast_assets.core.data import history

real_write = history._write_part

def slow_write(table, target):
    time.sleep(0.3)  # widens the window in which an unserialized merge would lose an update
    real_write(table, target)

history._write_part = slow_write
root, frame_file, ready, go, signature = sys.argv[1:6]
frame = pd.read_pickle(frame_file)
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.01)
store = history.HistoryStore(root)
print(store.merge([(history.SourceRecord(frame_file), frame)], json.loads(signature)).version)
"""


def test_two_concurrent_processes_both_land(tmp_path: Path, store: HistoryStore) -> None:
    go = tmp_path / "go"
    batches = {
        "one": sales(("A", "2024-01-01", 11.0, "red"), ("E", "2024-02-01", 1.0, "x")),
        "two": sales(("B", "2024-01-01", 22.0, "blue"), ("F", "2024-02-02", 2.0, "y")),
    }
    processes = []
    for name, frame in batches.items():
        frame.to_pickle(tmp_path / f"{name}.pkl")
        args = [str(tmp_path / f"{name}.pkl"), str(tmp_path / f"{name}.ready"), str(go)]
        processes.append(run_python(MERGE_WHEN_TOLD, str(store.root), *args, json.dumps(SIGNATURE)))
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT_S
    while not all((tmp_path / f"{name}.ready").exists() for name in batches):
        assert time.monotonic() < deadline, "merging processes did not start"
        assert all(p.poll() is None for p in processes), [p.communicate() for p in processes]
        time.sleep(0.02)
    go.touch()
    outputs = [p.communicate(timeout=SUBPROCESS_TIMEOUT_S) for p in processes]

    assert [p.returncode for p in processes] == [0, 0], outputs
    assert sorted(int(out.strip()) for out, _ in outputs) == [2, 3]
    assert store.version == 3
    read = pairs(store.read())
    assert read[("A", "2024-01-01")] == 11.0
    assert read[("B", "2024-01-01")] == 22.0
    assert {("E", "2024-02-01"), ("F", "2024-02-02")} <= set(read)
    assert len(read) == 6
    assert set(store.sources()) == {"base.csv", *(str(tmp_path / f"{n}.pkl") for n in batches)}


def test_two_concurrent_threads_both_land(
    store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = history._write_part

    def slow_write(table: object, target: Path) -> None:
        time.sleep(0.2)
        real_write(table, target)  # type: ignore[arg-type]

    monkeypatch.setattr(history, "_write_part", slow_write)
    errors: list[BaseException] = []

    def merge(name: str, sku: str) -> None:
        try:
            batch = sales((sku, "2024-01-07", 1.0, name))
            HistoryStore(store.root).merge([(SourceRecord(name), batch)], SIGNATURE)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=merge, args=(f"{s}.csv", s)) for s in ("P", "Q")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SUBPROCESS_TIMEOUT_S)

    assert errors == []
    assert store.version == 3
    assert {("P", "2024-01-07"), ("Q", "2024-01-07")} <= set(pairs(store.read()))
