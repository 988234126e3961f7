"""Artifact locations: local folders and object stores (a real S3 API on loopback), atomic
writes on both, and the sales history kept in an object store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from upath import UPath

from forecast_assets.core.data import history
from forecast_assets.core.data.history import HistoryStore, SourceRecord
from forecast_assets.core.errors import ConfigurationError
from forecast_assets.core.storage import (
    UnknownStorageError,
    append_line,
    artifact_path,
    atomic_write,
    atomic_write_text,
    is_local,
)
from forecast_assets.settings import Settings, load_settings

SIGNATURE = {"data_path": "sales/", "sku_columns": ["sku"], "quantity_column": "quantity"}


def sales(*rows: tuple[str, str, float]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=["sku", "date", "quantity"])
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    frame["color"] = "red"
    return frame.set_index("date")


def test_local_folders_and_file_urls_are_plain_paths(tmp_path: Path) -> None:
    assert artifact_path(str(tmp_path)) == tmp_path
    assert artifact_path(f"file://{tmp_path}") == tmp_path
    assert isinstance(artifact_path("relative/out"), Path)
    assert is_local(tmp_path) and is_local("relative/out") and is_local(f"file://{tmp_path}")


def test_urls_become_upaths_that_carry_their_options() -> None:
    path = artifact_path("s3://bucket/prefix", {"anon": True})
    assert isinstance(path, UPath) and path.protocol == "s3"
    assert path.storage_options["anon"] is True
    assert not is_local(path) and not is_local("memory://x")
    assert artifact_path(path) is path  # an object-store path keeps its options


def test_an_unknown_protocol_is_refused_naming_it() -> None:
    with pytest.raises(UnknownStorageError, match="nosuch://"):
        artifact_path("nosuch://bucket/out")


def test_settings_refuse_an_output_dir_no_filesystem_serves(tmp_path: Path) -> None:
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("output:\n  dir: nosuch://bucket/out\n")
    with pytest.raises(ConfigurationError, match=r"output\.dir.*nosuch://"):
        load_settings(settings_file)


def test_settings_resolve_local_output_and_keep_urls() -> None:
    local = Settings(output={"dir": "out"})
    assert is_local(local.output.location) and local.output.location == Path("out").resolve()
    remote = Settings(output={"dir": "s3://bucket/out", "storage_options": {"anon": True}})
    assert not is_local(remote.output.location)
    assert str(remote.output.location) == "s3://bucket/out"
    assert remote.output.location.storage_options["anon"] is True


@pytest.mark.parametrize("where", ["local", "s3"])
def test_atomic_write_replaces_whole_and_a_failed_write_keeps_the_old(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if where == "local":
        root = tmp_path
    else:
        url, options = request.getfixturevalue("s3_bucket")
        root = artifact_path(url, options)
    target = root / "reports" / "table.csv"
    atomic_write_text(target, "old\n")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("half of the new")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old\n"
    assert [p.name for p in (root / "reports").iterdir()] == ["table.csv"]  # no temp left

    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"


@pytest.mark.parametrize("where", ["local", "s3"])
def test_append_line_adds_lines(where: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if where == "local":
        log = tmp_path / "logs" / "run_failures.log"
    else:
        url, options = request.getfixturevalue("s3_bucket")
        log = artifact_path(url, options) / "logs" / "run_failures.log"
    append_line(log, "first")
    append_line(log, "second\n")
    assert log.read_text() == "first\nsecond\n"


@pytest.fixture
def s3_store(s3_bucket: tuple[str, dict[str, Any]]) -> HistoryStore:
    url, options = s3_bucket
    return HistoryStore(artifact_path(f"{url}/history", options))


def test_history_on_s3_merges_reads_and_lets_the_latest_win(s3_store: HistoryStore) -> None:
    first = s3_store.merge(
        [(SourceRecord("a.csv"), sales(("A", "2024-01-01", 1.0), ("B", "2025-01-01", 2.0)))],
        SIGNATURE,
    )
    assert first.version == 1 and first.rows_after == 2
    second = s3_store.merge(
        [(SourceRecord("b.csv"), sales(("A", "2024-01-01", 5.0), ("A", "2024-01-02", 6.0)))],
        SIGNATURE,
    )
    assert (second.rows_new, second.rows_replaced, second.years_rewritten) == (1, 1, ["2024"])

    read = s3_store.read()
    assert read["quantity"].tolist() == [5.0, 6.0, 2.0]
    assert list(read["sku"]) == ["A", "A", "B"]
    assert set(s3_store.sources()) == {"a.csv", "b.csv"}
    # The 2024 part of version 1 is still referenced by the previous manifest; 2025's by both.
    assert stored_parts(s3_store) == ["2024/v000001", "2024/v000002", "2025/v000001"]

    s3_store.merge([(SourceRecord("c.csv"), sales(("C", "2024-03-01", 1.0)))], SIGNATURE)
    assert stored_parts(s3_store) == ["2024/v000002", "2024/v000003", "2025/v000001"]


def stored_parts(store: HistoryStore) -> list[str]:
    """``year/version`` of each part object in the store, without the writer's tag."""
    names = [str(p).split("/parts/year=")[1] for p in (store.root / "parts").rglob("*.parquet")]
    return sorted(name.split("-")[0].removesuffix(".parquet") for name in names)


def test_history_on_s3_refuses_to_commit_over_another_writer(
    s3_store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_store.merge([(SourceRecord("a.csv"), sales(("A", "2024-01-01", 1.0)))], SIGNATURE)
    other = HistoryStore(s3_store.root)
    write_part = history._write_part

    def another_writer_commits_meanwhile(*args: Any, **kwargs: Any) -> None:
        monkeypatch.setattr(history, "_write_part", write_part)
        other.merge([(SourceRecord("b.csv"), sales(("B", "2024-01-01", 7.0)))], SIGNATURE)
        write_part(*args, **kwargs)

    monkeypatch.setattr(history, "_write_part", another_writer_commits_meanwhile)
    with pytest.raises(ConfigurationError, match="another writer"):
        s3_store.merge([(SourceRecord("c.csv"), sales(("C", "2024-01-01", 3.0)))], SIGNATURE)

    # The other writer's commit stands, its parts untouched by the refused merge.
    assert s3_store.version == 2
    assert sorted(s3_store.read()["sku"]) == ["A", "B"]
    assert set(s3_store.sources()) == {"a.csv", "b.csv"}
    # The refused merge's orphan part goes with the next successful merge.
    s3_store.merge([(SourceRecord("d.csv"), sales(("D", "2024-01-01", 1.0)))], SIGNATURE)
    assert stored_parts(s3_store) == ["2024/v000002", "2024/v000003"]
