"""The landing folder: what a sensor tick finds ready, safe paths, and quarantine."""

from __future__ import annotations

import builtins
import io
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from forecast_assets.core.data.landing import (
    IGNORED_SUFFIXES,
    FileChangedError,
    LandingFile,
    check_unchanged,
    is_safe_name,
    landing_path,
    quarantine,
    scan_landing,
)
from forecast_assets.core.errors import DataValidationError

SECOND = 1_000_000_000
# A fixed clock: files are stamped relative to it so that settling is under the test's control.
NOW = 1_700_000_000.0
NOW_NS = int(NOW) * SECOND
SETTLE = 60.0


def put(folder: Path, name: str, data: bytes = b"x", *, age: float = 3600.0) -> Path:
    """Write ``name`` with a modification time ``age`` seconds before NOW."""
    path = folder / name
    path.write_bytes(data)
    stamp = NOW_NS - int(age * SECOND)
    os.utime(path, ns=(stamp, stamp))
    return path


def names(files: list[LandingFile]) -> list[str]:
    return [file.name for file in files]


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    folder = tmp_path / "landing"
    folder.mkdir()
    return folder


# --- LandingFile -----------------------------------------------------------------------------


def test_landing_file_keys_and_round_trip() -> None:
    file = LandingFile("a.csv", 12, 345)

    assert file.fingerprint == "12:345"
    assert file.key == "a.csv@12:345"
    assert LandingFile.from_dict(file.to_dict()) == file
    assert LandingFile.from_dict(json.loads(json.dumps(file.to_dict()))) == file
    with pytest.raises(DataValidationError):
        LandingFile.from_dict({"name": "a.csv", "size": "12", "mtime_ns": 345})
    with pytest.raises(DataValidationError):
        LandingFile.from_dict({"name": "a.csv"})


# --- scan_landing ----------------------------------------------------------------------------


def test_new_file_is_ready_once_and_the_cursor_survives_a_restart(landing: Path) -> None:
    put(landing, "a.csv", b"date,sku,quantity\n")

    first = scan_landing(landing, None, NOW, SETTLE)

    assert names(first.ready) == ["a.csv"]
    assert first.ready[0].size == len(b"date,sku,quantity\n")
    assert first.files_seen == 1
    assert scan_landing(landing, first.cursor, NOW, SETTLE).ready == []
    # A restarted sensor gets the cursor back as text from storage.
    restored = json.dumps(json.loads(first.cursor))
    second = scan_landing(landing, restored, NOW + 600, SETTLE)
    assert second.ready == []
    assert second.waiting == []
    assert second.files_seen == 1


def test_modified_file_is_ready_again_once_settled(landing: Path) -> None:
    put(landing, "a.csv", b"v1")
    cursor = scan_landing(landing, None, NOW, SETTLE).cursor

    put(landing, "a.csv", b"v2 longer", age=10)
    changed = scan_landing(landing, cursor, NOW, SETTLE)

    assert changed.ready == []
    assert names(changed.waiting) == ["a.csv"]
    again = scan_landing(landing, changed.cursor, NOW + 5, SETTLE)
    assert names(again.ready) == ["a.csv"]
    assert again.ready[0].size == len(b"v2 longer")


def test_same_size_with_new_mtime_counts_as_changed(landing: Path) -> None:
    put(landing, "a.csv", b"v1")
    cursor = scan_landing(landing, None, NOW, SETTLE).cursor

    put(landing, "a.csv", b"v2", age=1800)

    assert names(scan_landing(landing, cursor, NOW, SETTLE).ready) == ["a.csv"]


def test_growing_file_waits_until_two_ticks_see_the_same_fingerprint(landing: Path) -> None:
    put(landing, "big.csv", b"part", age=1)
    tick1 = scan_landing(landing, None, NOW, SETTLE)
    assert tick1.ready == []
    assert names(tick1.waiting) == ["big.csv"]

    put(landing, "big.csv", b"part more", age=0)
    tick2 = scan_landing(landing, tick1.cursor, NOW + 1, SETTLE)
    assert tick2.ready == []
    assert names(tick2.waiting) == ["big.csv"]

    # Unchanged since the last tick: settled, though younger than the settle time.
    tick3 = scan_landing(landing, tick2.cursor, NOW + 2, SETTLE)
    assert names(tick3.ready) == ["big.csv"]
    assert tick3.waiting == []
    assert scan_landing(landing, tick3.cursor, NOW + 3, SETTLE).ready == []


def test_young_file_without_a_previous_look_waits(landing: Path) -> None:
    put(landing, "young.csv", age=SETTLE - 1)
    put(landing, "old.csv", age=SETTLE)

    scan = scan_landing(landing, None, NOW, SETTLE)

    assert names(scan.ready) == ["old.csv"]
    assert names(scan.waiting) == ["young.csv"]


def test_skips_hidden_temporary_and_folders_but_lists_everything_else(
    tmp_path: Path, landing: Path
) -> None:
    put(landing, "a.csv")
    put(landing, "sales.xlsx")
    put(landing, ".hidden.csv")
    for suffix in IGNORED_SUFFIXES:
        put(landing, f"upload.csv{suffix}")
    put(landing, "UPLOAD.CSV.PART")
    (landing / "quarantine").mkdir()
    put(landing / "quarantine", "old.csv")
    outside = put(tmp_path, "outside.csv")
    (landing / "link.csv").symlink_to(outside)
    (landing / "dangling.csv").symlink_to(tmp_path / "missing.csv")

    # The links carry the real time, not one relative to NOW.
    scan = scan_landing(landing, None, time.time() + 3600, SETTLE)

    assert sorted(names(scan.ready)) == ["a.csv", "dangling.csv", "link.csv", "sales.xlsx"]
    assert scan.files_seen == 4
    link = next(file for file in scan.ready if file.name == "link.csv")
    # The link's own (lstat) size, not its target's.
    assert link.size == os.lstat(landing / "link.csv").st_size


def test_limit_returns_the_oldest_first_and_the_rest_next_tick(landing: Path) -> None:
    put(landing, "c.csv", age=300)
    put(landing, "a.csv", age=100)
    put(landing, "b.csv", age=100)
    put(landing, "d.csv", age=500)

    first = scan_landing(landing, None, NOW, SETTLE, limit=2)
    second = scan_landing(landing, first.cursor, NOW, SETTLE, limit=2)
    third = scan_landing(landing, second.cursor, NOW, SETTLE, limit=2)

    assert names(first.ready) == ["d.csv", "c.csv"]
    # Same modification time: name order.
    assert names(second.ready) == ["a.csv", "b.csv"]
    assert third.ready == []


def test_files_over_the_limit_stay_ready_even_when_young(landing: Path) -> None:
    put(landing, "a.csv", age=2)
    put(landing, "b.csv", age=1)
    looked = scan_landing(landing, None, NOW, SETTLE, limit=1)
    assert looked.ready == []

    first = scan_landing(landing, looked.cursor, NOW + 1, SETTLE, limit=1)
    second = scan_landing(landing, first.cursor, NOW + 2, SETTLE, limit=1)

    assert names(first.ready) == ["a.csv"]
    assert names(second.ready) == ["b.csv"]


def test_removed_files_are_dropped_from_the_cursor(landing: Path) -> None:
    put(landing, "a.csv")
    put(landing, "b.csv", age=1)
    first = scan_landing(landing, None, NOW, SETTLE)
    assert set(json.loads(first.cursor)["done"]) == {"a.csv"}
    assert set(json.loads(first.cursor)["seen"]) == {"a.csv", "b.csv"}

    (landing / "a.csv").unlink()
    (landing / "b.csv").unlink()
    second = scan_landing(landing, first.cursor, NOW, SETTLE)

    assert json.loads(second.cursor) == {"done": {}, "seen": {}}
    # Delivered again later with the very same size and time: new again.
    put(landing, "a.csv")
    assert names(scan_landing(landing, second.cursor, NOW, SETTLE).ready) == ["a.csv"]


def test_scan_never_opens_a_file(monkeypatch: pytest.MonkeyPatch, landing: Path) -> None:
    put(landing, "a.csv")
    put(landing, "b.parquet", age=1)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("scan_landing opened a file")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(io, "open", refuse)
    monkeypatch.setattr(os, "open", refuse)
    monkeypatch.setattr(Path, "open", refuse)
    monkeypatch.setattr(Path, "read_bytes", refuse)
    monkeypatch.setattr(Path, "read_text", refuse)
    scan = scan_landing(landing, None, NOW, SETTLE)
    monkeypatch.undo()

    assert sorted(names(scan.ready)) == ["a.csv"]
    assert names(scan.waiting) == ["b.parquet"]


def test_ten_thousand_files_are_all_ready_once(landing: Path) -> None:
    count = 10_000
    for i in range(count):
        (landing / f"sales-{i:05d}.csv").touch()

    first = scan_landing(landing, None, NOW + 3600 * 24 * 365 * 100, SETTLE)
    second = scan_landing(landing, first.cursor, NOW + 3600 * 24 * 365 * 100, SETTLE)

    assert len(first.ready) == count
    assert len({file.name for file in first.ready}) == count
    assert first.files_seen == count
    assert second.ready == []
    assert second.waiting == []
    assert second.files_seen == count


def test_missing_folder_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="does not exist") as caught:
        scan_landing(tmp_path / "nowhere", None, NOW)

    assert caught.value.source == str(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "cursor", ["not json", "[1, 2]", '{"done": []}', '{"done": {"a.csv": 1}}', '"text"']
)
def test_invalid_cursor_is_a_validation_error(landing: Path, cursor: str) -> None:
    with pytest.raises(DataValidationError, match="landing cursor"):
        scan_landing(landing, cursor, NOW)


# --- landing_path, check_unchanged ----------------------------------------------------------


@pytest.mark.parametrize("name", ["../x.csv", "/etc/passwd", "sub/x.csv", "..", ".", ""])
def test_landing_path_refuses_names_outside_the_folder(
    tmp_path: Path, landing: Path, name: str
) -> None:
    put(tmp_path, "x.csv")
    (landing / "sub").mkdir()
    put(landing / "sub", "x.csv")

    with pytest.raises(DataValidationError, match="points outside the landing folder") as caught:
        landing_path(landing, name)

    assert caught.value.source == name
    assert not is_safe_name(name)


def test_landing_path_accepts_a_plain_file(landing: Path) -> None:
    path = put(landing, "a.csv")

    assert landing_path(landing, "a.csv") == path
    assert is_safe_name("a.csv")
    assert is_safe_name("..a.csv")


def test_landing_path_refuses_a_missing_file(landing: Path) -> None:
    with pytest.raises(DataValidationError, match="no longer exists in the landing folder"):
        landing_path(landing, "gone.csv")


def test_landing_path_refuses_a_symlink_leading_outside(tmp_path: Path, landing: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    secret = put(elsewhere, "secret.csv")
    (landing / "a.csv").symlink_to(secret)

    with pytest.raises(DataValidationError, match="outside the landing folder") as caught:
        landing_path(landing, "a.csv")

    assert str(secret.resolve()) in str(caught.value)
    assert caught.value.source == "a.csv"


def test_landing_path_accepts_a_symlink_inside_the_folder(landing: Path) -> None:
    put(landing, "real.csv")
    (landing / "alias.csv").symlink_to("real.csv")

    assert landing_path(landing, "alias.csv") == landing / "alias.csv"


def test_landing_path_refuses_anything_but_a_regular_file(landing: Path) -> None:
    (landing / "folder.csv").mkdir()
    os.mkfifo(landing / "pipe.csv")

    with pytest.raises(DataValidationError, match=r"not a regular file.*directory"):
        landing_path(landing, "folder.csv")
    with pytest.raises(DataValidationError, match=r"not a regular file.*named pipe"):
        landing_path(landing, "pipe.csv")


def test_check_unchanged_notices_an_append(landing: Path) -> None:
    path = put(landing, "a.csv", b"date,sku,quantity\n")
    info = os.lstat(path)
    seen = LandingFile("a.csv", info.st_size, info.st_mtime_ns)

    check_unchanged(path, seen)  # nothing changed
    with path.open("ab") as handle:
        handle.write(b"2024-01-01,a,1\n")

    with pytest.raises(FileChangedError, match="changed since it was detected") as caught:
        check_unchanged(path, seen)

    assert isinstance(caught.value, DataValidationError)
    assert "once it stops changing" in str(caught.value)
    assert caught.value.source == "a.csv"


def test_check_unchanged_notices_a_new_mtime_and_a_removal(landing: Path) -> None:
    path = put(landing, "a.csv")
    info = os.lstat(path)
    seen = LandingFile("a.csv", info.st_size, info.st_mtime_ns)

    os.utime(path, ns=(info.st_mtime_ns + 1, info.st_mtime_ns + 1))
    with pytest.raises(FileChangedError):
        check_unchanged(path, seen)
    path.unlink()
    with pytest.raises(FileChangedError):
        check_unchanged(path, seen)


# --- quarantine -------------------------------------------------------------------------------

WHEN = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def test_quarantine_moves_the_file_and_writes_the_reason(landing: Path) -> None:
    put(landing, "bad.csv", b"12345")
    jail = landing / "quarantine"

    moved = quarantine(landing, jail, "bad.csv", "column 'date' is broken", run_id="r1", now=WHEN)

    assert moved == jail / "20240506T070809Z-bad.csv"
    assert moved.read_bytes() == b"12345"
    assert not (landing / "bad.csv").exists()
    sidecar = (jail / "20240506T070809Z-bad.csv.reason.txt").read_text()
    assert "file: bad.csv" in sidecar
    assert "reason: column 'date' is broken" in sidecar
    assert "2024-05-06T07:08:09Z" in sidecar
    assert "run_id: r1" in sidecar
    assert "size: 5 bytes" in sidecar
    # The quarantine folder is skipped by the next scan.
    assert scan_landing(landing, None, NOW + 3600).files_seen == 0


def test_quarantine_moves_a_symlink_not_its_target(tmp_path: Path, landing: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = put(elsewhere, "secret.csv", b"do not touch")
    (landing / "link.csv").symlink_to(target)
    jail = tmp_path / "jail"

    moved = quarantine(landing, jail, "link.csv", "symlink outside", now=WHEN)

    assert moved is not None
    assert moved.is_symlink()
    assert os.readlink(moved) == str(target)
    assert not os.path.lexists(landing / "link.csv")
    assert target.read_bytes() == b"do not touch"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["secret.csv"]


@pytest.mark.parametrize("name", ["../outside.csv", "/etc/hosts", "sub/x.csv", "..", "missing.csv"])
def test_quarantine_refuses_unsafe_or_missing_names(
    tmp_path: Path, landing: Path, name: str
) -> None:
    outside = put(tmp_path, "outside.csv", b"keep")
    (landing / "sub").mkdir()
    put(landing / "sub", "x.csv")
    jail = landing / "quarantine"

    assert quarantine(landing, jail, name, "nope", now=WHEN) is None

    assert outside.read_bytes() == b"keep"
    assert (landing / "sub" / "x.csv").exists()
    assert not jail.exists() or not any(jail.iterdir())


def test_quarantine_refuses_directories(landing: Path) -> None:
    jail = landing / "quarantine"
    jail.mkdir()

    assert quarantine(landing, jail, "quarantine", "nope", now=WHEN) is None
    assert jail.is_dir()


def test_quarantine_name_collisions_get_distinct_names(landing: Path) -> None:
    jail = landing / "quarantine"
    moved = []
    for content in (b"one", b"two", b"three"):
        put(landing, "bad.csv", content)
        moved.append(quarantine(landing, jail, "bad.csv", "again", now=WHEN))

    assert len(set(moved)) == 3
    assert [path.read_bytes() for path in moved if path] == [b"one", b"two", b"three"]
    assert all(Path(f"{path}.reason.txt").exists() for path in moved)
