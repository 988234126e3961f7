"""Loading long-format sales files: formats, SKU keys, validation errors and merge rules."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast_assets.core.data.loader import (
    ColumnSpec,
    discover_files,
    load_sales,
    load_sales_files,
    read_sales_file,
    standardize_sales,
)
from forecast_assets.core.errors import ConfigurationError, DataValidationError

STORE_DEPT = ColumnSpec(sku_columns=("Store", "Dept"), quantity_column="Weekly_Sales")


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def expect_error(path: Path, spec: ColumnSpec) -> DataValidationError:
    with pytest.raises(DataValidationError) as caught:
        load_sales(path, spec)
    return caught.value


# --- formats and the standardized frame -------------------------------------------------------


def test_csv_joins_sku_columns_and_indexes_by_date(tmp_path: Path) -> None:
    file = write_csv(
        tmp_path / "sales.csv",
        [
            "Date,Store,Dept,Weekly_Sales",
            "2024-01-05,1,7,10.5",
            "2024-01-12,1,7,3",
            "2024-01-05,2,7,4",
        ],
    )
    spec = ColumnSpec(
        date_column="Date", sku_columns=("Store", "Dept"), quantity_column="Weekly_Sales"
    )

    sales = load_sales(file, spec)

    assert isinstance(sales.index, pd.DatetimeIndex)
    assert sales.index.name == "date"
    assert list(sales.columns) == ["sku", "quantity"]
    assert sales["quantity"].dtype == np.float64
    assert sales["sku"].tolist() == ["1-7", "1-7", "2-7"]
    assert list(sales.index) == [
        pd.Timestamp("2024-01-05"),
        pd.Timestamp("2024-01-12"),
        pd.Timestamp("2024-01-05"),
    ]
    assert sales["quantity"].tolist() == [10.5, 3.0, 4.0]


def test_sku_separator_is_configurable(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "s.csv", ["date,Store,Dept,q", "2024-01-01,3,12,1"])
    spec = ColumnSpec(sku_columns=("Store", "Dept"), quantity_column="q", sku_separator="/")

    assert load_sales(file, spec)["sku"].tolist() == ["3/12"]


def test_gzip_csv_loads_like_plain_csv(tmp_path: Path) -> None:
    lines = ["date,Store,Dept,Weekly_Sales", "2024-01-05,1,7,10", "2024-01-12,2,8,20"]
    (tmp_path / "plain").mkdir()
    plain = write_csv(tmp_path / "plain" / "s.csv", lines)
    (tmp_path / "gz").mkdir()
    packed = tmp_path / "gz" / "s.csv.gz"
    with gzip.open(packed, "wt") as handle:
        handle.write("\n".join(lines) + "\n")

    from_gzip = load_sales(packed, STORE_DEPT)

    assert from_gzip["sku"].tolist() == ["1-7", "2-8"]
    assert from_gzip["quantity"].tolist() == [10.0, 20.0]
    pd.testing.assert_frame_equal(from_gzip, load_sales(plain, STORE_DEPT))


def test_parquet_with_numeric_key_columns_gives_text_keys(tmp_path: Path) -> None:
    # Parquet keeps types: integer and whole-float store numbers must still read as "1", not "1.0".
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-01-05", "2024-01-12", "2024-01-05"]),
            "Store": [1, 1, 2],
            "Dept": [7.0, 7.0, 8.0],
            "Weekly_Sales": [1, 2, 3],
        }
    )
    file = tmp_path / "sales.parquet"
    frame.to_parquet(file)

    sales = load_sales(file, STORE_DEPT)

    assert sales["sku"].tolist() == ["1-7", "1-7", "2-8"]
    assert sales["quantity"].tolist() == [1.0, 2.0, 3.0]
    assert sales["quantity"].dtype == np.float64
    assert list(sales.index) == list(frame["date"])


def test_folder_reads_every_supported_format_and_ignores_other_files(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv", ["date,sku,quantity", "2024-01-01,csv,1"])
    with gzip.open(tmp_path / "b.csv.gz", "wt") as handle:
        handle.write("date,sku,quantity\n2024-01-01,gz,2\n")
    pd.DataFrame(
        {"date": pd.to_datetime(["2024-01-01"]), "sku": ["pq"], "quantity": [3.0]}
    ).to_parquet(tmp_path / "c.parquet")
    (tmp_path / "notes.txt").write_text("not sales")

    sales = load_sales(tmp_path, ColumnSpec())

    assert dict(zip(sales["sku"], sales["quantity"], strict=True)) == {
        "csv": 1.0,
        "gz": 2.0,
        "pq": 3.0,
    }


def test_categorical_and_multilabel_columns_are_kept_under_their_names(tmp_path: Path) -> None:
    file = write_csv(
        tmp_path / "s.csv",
        ["date,sku,quantity,category,tags", "2024-01-01,a,1,dairy,organic|local"],
    )
    spec = ColumnSpec(categorical_columns=("category",), multilabel_columns=("tags",))

    sales = load_sales(file, spec)

    assert list(sales.columns) == ["sku", "quantity", "category", "tags"]
    assert sales.iloc[0]["category"] == "dairy"
    assert sales.iloc[0]["tags"] == "organic|local"


def test_timezone_aware_dates_become_naive(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-01-01 00:00", "2024-01-02 00:00"]).tz_localize("UTC"),
            "sku": ["a", "a"],
            "quantity": [1.0, 2.0],
        }
    )

    sales = standardize_sales(frame, ColumnSpec(), source="memory")

    assert sales.index.tz is None
    assert list(sales.index) == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02")]


# --- validation errors name the file, the column and the values ---------------------------------


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "s.csv", ["date,Store,Weekly_Sales", "2024-01-01,1,5"])

    error = expect_error(file, STORE_DEPT)

    assert str(file) in str(error)
    assert "'Dept'" in str(error)
    assert error.source == str(file)
    assert error.column == "Dept"
    assert error.values == ["Dept"]


def test_read_sales_file_reports_missing_columns_before_reading(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "s.csv", ["date,sku", "2024-01-01,a"])

    with pytest.raises(DataValidationError, match="quantity") as caught:
        read_sales_file(file, ColumnSpec())

    assert caught.value.source == str(file)


def test_parquet_missing_column_is_found_from_the_schema(tmp_path: Path) -> None:
    file = tmp_path / "s.parquet"
    pd.DataFrame({"date": pd.to_datetime(["2024-01-01"]), "sku": ["a"]}).to_parquet(file)

    error = expect_error(file, ColumnSpec())

    assert error.source == str(file)
    assert error.column == "quantity"


# An empty file has its own message now (see test_empty_file_is_refused_before_reading).
@pytest.mark.parametrize("name", ["broken.csv", "broken.parquet"])
def test_unreadable_file_names_the_file(tmp_path: Path, name: str) -> None:
    file = tmp_path / name
    contents = b'date,sku,quantity\n"2024-01-01,a,1\n' if name.endswith(".csv") else b"not parquet"
    file.write_bytes(contents)

    error = expect_error(file, ColumnSpec())

    assert "cannot be read" in str(error)
    assert error.source == str(file)


def test_unparseable_dates_are_quoted(tmp_path: Path) -> None:
    file = write_csv(
        tmp_path / "s.csv",
        [
            "date,sku,quantity",
            "2024-01-01,a,1",
            "not a date,a,2",
            "2024-13-45,b,3",
        ],
    )

    error = expect_error(file, ColumnSpec())

    message = str(error)
    assert str(file) in message
    assert "column 'date'" in message
    assert "'not a date'" in message
    assert "'2024-13-45'" in message
    # Data lines are counted from 1: the bad values sit on lines 2 and 3.
    assert "row 2" in message
    assert "row 3" in message
    assert error.values == ["not a date", "2024-13-45"]


def test_non_numeric_quantity_is_quoted(tmp_path: Path) -> None:
    file = write_csv(
        tmp_path / "s.csv", ["date,sku,quantity", "2024-01-01,a,1", "2024-01-02,a,lots"]
    )

    error = expect_error(file, ColumnSpec())

    assert str(file) in str(error)
    assert "column 'quantity'" in str(error)
    assert "'lots'" in str(error)
    assert error.values == ["lots"]


def test_empty_quantity_is_not_a_number(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "s.csv", ["date,sku,quantity", "2024-01-01,a,"])

    error = expect_error(file, ColumnSpec())

    assert error.column == "quantity"


def test_long_lists_of_bad_values_are_cut_short(tmp_path: Path) -> None:
    lines = ["date,sku,quantity", *[f"2024-01-0{day},a,x{day}" for day in range(1, 9)]]
    file = write_csv(tmp_path / "s.csv", lines)

    error = expect_error(file, ColumnSpec())

    # Eight bad values, five quoted, three summarized.
    assert "8 value(s)" in str(error)
    assert "and 3 more" in str(error)
    assert error.values == ["x1", "x2", "x3", "x4", "x5"]


def test_empty_sku_part_is_rejected(tmp_path: Path) -> None:
    file = write_csv(
        tmp_path / "s.csv",
        ["date,Store,Dept,Weekly_Sales", "2024-01-05,1,7,1", "2024-01-05,  ,8,2"],
    )

    error = expect_error(file, STORE_DEPT)

    assert str(file) in str(error)
    assert error.column == "Store"
    assert "empty SKU" in str(error)
    assert "row 2" in str(error)


def test_negative_quantity_is_an_error_by_default(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "s.csv", ["date,sku,quantity", "2024-01-01,a,3", "2024-01-02,a,-2"])

    error = expect_error(file, ColumnSpec())

    assert str(file) in str(error)
    assert error.column == "quantity"
    assert "negative" in str(error)
    assert "'-2'" in str(error)


def test_negative_quantity_clip_counts_as_zero(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "s.csv", ["date,sku,quantity", "2024-01-01,a,3", "2024-01-02,a,-2"])

    sales = load_sales(file, ColumnSpec(negative_quantities="clip"))

    assert sales["quantity"].tolist() == [3.0, 0.0]


def test_negative_quantity_keep_keeps_the_return(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "s.csv", ["date,sku,quantity", "2024-01-01,a,3", "2024-01-02,a,-2"])

    sales = load_sales(file, ColumnSpec(negative_quantities="keep"))

    assert sales["quantity"].tolist() == [3.0, -2.0]


def test_file_with_header_only_is_rejected(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "s.csv", ["date,sku,quantity"])

    error = expect_error(file, ColumnSpec())

    assert str(file) in str(error)
    assert "no rows" in str(error)


def test_empty_folder_finds_no_files(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("nothing here")

    with pytest.raises(DataValidationError, match="no sales files") as caught:
        load_sales(tmp_path, ColumnSpec())

    assert caught.value.source == str(tmp_path)


def test_glob_without_matches_finds_no_files(tmp_path: Path) -> None:
    pattern = str(tmp_path / "*.csv")

    with pytest.raises(DataValidationError, match="no sales files") as caught:
        discover_files(pattern)

    assert pattern in str(caught.value)


def test_discover_files_sorts_by_name_and_filters_suffixes(tmp_path: Path) -> None:
    for name in ("b.csv", "a.parquet", "c.csv.gz", "d.pq", "e.json", "f.csv.bak"):
        (tmp_path / name).write_text("")

    names = [file.name for file in discover_files(tmp_path)]

    assert names == ["a.parquet", "b.csv", "c.csv.gz", "d.pq"]
    assert [f.name for f in discover_files(tmp_path / "b.csv")] == ["b.csv"]
    assert [f.name for f in discover_files(str(tmp_path / "*.csv*"))] == ["b.csv", "c.csv.gz"]


# --- duplicates inside one file -----------------------------------------------------------------

DUPLICATED = [
    "date,sku,quantity,category",
    "2024-01-01,a,3,old",
    "2024-01-02,a,1,old",
    "2024-01-01,a,4,new",
    "2024-01-01,b,5,x",
]


def test_duplicates_error_names_the_pair(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "s.csv", DUPLICATED)
    spec = ColumnSpec(categorical_columns=("category",), duplicates="error")

    error = expect_error(file, spec)

    assert str(file) in str(error)
    assert "(a, 2024-01-01)" in str(error)
    assert error.values == ["(a, 2024-01-01)"]


@pytest.mark.parametrize(
    ("rule", "combined"),
    # The two rows of (a, 2024-01-01) hold 3 then 4.
    [("sum", 3 + 4), ("last", 4), ("mean", (3 + 4) / 2), ("max", 4)],
)
def test_duplicates_are_combined_by_rule(tmp_path: Path, rule: str, combined: float) -> None:
    file = write_csv(tmp_path / "s.csv", DUPLICATED)
    spec = ColumnSpec(categorical_columns=("category",), duplicates=rule)  # type: ignore[arg-type]

    sales = load_sales(file, spec)

    assert not sales.reset_index().duplicated(["sku", "date"]).any()
    a = sales[sales["sku"] == "a"]["quantity"]
    assert a.loc[pd.Timestamp("2024-01-01")] == combined
    assert a.loc[pd.Timestamp("2024-01-02")] == 1.0
    assert sales[sales["sku"] == "b"]["quantity"].tolist() == [5.0]


def test_duplicates_last_takes_the_later_row_for_the_same_day(tmp_path: Path) -> None:
    file = write_csv(
        tmp_path / "s.csv",
        ["date,sku,quantity", "2024-01-01,a,9", "2024-01-01,a,2", "2024-01-01,a,5"],
    )

    sales = load_sales(file, ColumnSpec(duplicates="last"))

    assert sales["quantity"].tolist() == [5.0]


# --- several files ----------------------------------------------------------------------------


def test_later_file_wins_for_shared_sku_and_date(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "2024-01.csv",
        ["date,sku,quantity", "2024-01-01,a,1", "2024-01-02,a,2", "2024-01-01,b,7"],
    )
    write_csv(tmp_path / "2024-02.csv", ["date,sku,quantity", "2024-01-02,a,20", "2024-01-03,a,3"])

    sales = load_sales(tmp_path, ColumnSpec())

    a = sales[sales["sku"] == "a"]["quantity"]
    assert a.to_dict() == {
        pd.Timestamp("2024-01-01"): 1.0,
        pd.Timestamp("2024-01-02"): 20.0,  # corrected by the later delivery
        pd.Timestamp("2024-01-03"): 3.0,
    }
    assert sales[sales["sku"] == "b"]["quantity"].tolist() == [7.0]
    assert len(sales) == 4


def test_merged_rows_are_sorted_by_sku_then_date(tmp_path: Path) -> None:
    write_csv(tmp_path / "1.csv", ["date,sku,quantity", "2024-01-03,b,1", "2024-01-02,a,1"])
    write_csv(tmp_path / "2.csv", ["date,sku,quantity", "2024-01-01,b,1", "2024-01-01,a,1"])

    sales = load_sales(tmp_path, ColumnSpec())

    keys = list(zip(sales["sku"], sales.index, strict=True))
    assert keys == sorted(keys)


def test_attributes_come_from_the_most_recent_row(tmp_path: Path) -> None:
    # The newest row of "a" is in the first file (2024-03-01), so its category wins even
    # though the second file is read later.
    write_csv(
        tmp_path / "1.csv",
        ["date,sku,quantity,category", "2024-01-01,a,1,old", "2024-03-01,a,1,newest"],
    )
    write_csv(
        tmp_path / "2.csv",
        ["date,sku,quantity,category", "2024-02-01,a,1,middle", "2024-02-01,b,1,solo"],
    )

    sales = load_sales(tmp_path, ColumnSpec(categorical_columns=("category",)))

    assert set(sales.loc[sales["sku"] == "a", "category"]) == {"newest"}
    assert set(sales.loc[sales["sku"] == "b", "category"]) == {"solo"}


# --- hardening: encodings, empty files, suffixes, limits, date formats ---------------------------

HEADER = b"date,sku,quantity\n"


def test_latin1_bytes_in_a_utf8_csv_name_the_byte_and_line(tmp_path: Path) -> None:
    file = tmp_path / "s.csv"
    file.write_bytes(HEADER + b"2024-01-01,a,1\n2024-01-02,caf\xe9,2\n")

    error = expect_error(file, ColumnSpec())

    message = str(error)
    assert error.source == str(file)
    assert "is not valid utf-8 text" in message
    assert "0xe9" in message
    assert "line 3" in message
    assert "save it as utf-8 or set data.encoding" in message


def test_the_configured_encoding_reads_the_same_file(tmp_path: Path) -> None:
    file = tmp_path / "s.csv"
    file.write_bytes(HEADER + b"2024-01-02,caf\xe9,2\n")

    sales = load_sales(file, ColumnSpec(encoding="latin-1"))

    assert sales["sku"].tolist() == ["café"]


def test_undecodable_header_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "s.csv"
    file.write_bytes(b"d\xe4te,sku,quantity\n2024-01-01,a,1\n")

    with pytest.raises(DataValidationError, match="is not valid utf-8 text") as caught:
        read_sales_file(file, ColumnSpec())

    assert "line 1" in str(caught.value)


def test_bad_byte_deep_in_a_large_csv_is_found_by_the_body_read(tmp_path: Path) -> None:
    # Far beyond the header read's buffer, so the body read is the one that fails.
    rows = [f"2024-01-01,sku{i},1\n".encode() for i in range(40_000)]
    file = tmp_path / "s.csv"
    file.write_bytes(HEADER + b"".join(rows) + b"2024-01-02,\xff,1\n")

    with pytest.raises(DataValidationError, match="is not valid utf-8 text") as caught:
        read_sales_file(file, ColumnSpec())

    assert "line 40002" in str(caught.value)
    assert f"at byte {file.stat().st_size - 4}" in str(caught.value)


def test_utf16_file_is_refused_as_not_utf8(tmp_path: Path) -> None:
    file = tmp_path / "s.csv"
    file.write_text("date,sku,quantity\n2024-01-01,a,1\n", encoding="utf-16")

    error = expect_error(file, ColumnSpec())

    assert "is not valid utf-8 text" in str(error)
    assert "0xff" in str(error)  # the UTF-16 byte order mark
    assert "at byte 0" in str(error)
    assert load_sales(file, ColumnSpec(encoding="utf-16"))["sku"].tolist() == ["a"]


def test_gzip_csv_with_bad_encoding_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "s.csv.gz"
    with gzip.open(file, "wb") as handle:
        handle.write(HEADER + b"2024-01-01,caf\xe9,1\n")

    error = expect_error(file, ColumnSpec())

    assert error.source == str(file)
    assert "is not valid utf-8 text" in str(error)
    assert "uncompressed" in str(error)
    assert "line 2" in str(error)


def test_unknown_encoding_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"data\.encoding"):
        ColumnSpec(encoding="no-such-codec")


@pytest.mark.parametrize("name", ["empty.csv", "empty.csv.gz", "empty.parquet", "empty.pq"])
def test_empty_file_is_refused_before_reading(tmp_path: Path, name: str) -> None:
    file = tmp_path / name
    file.write_bytes(b"")

    with pytest.raises(DataValidationError, match=r"is empty \(0 bytes\)") as caught:
        read_sales_file(file, ColumnSpec())

    assert caught.value.source == str(file)


@pytest.mark.parametrize("name", ["sales.xlsx", "sales.txt", "sales.csv.bak"])
def test_unsupported_suffix_is_refused(tmp_path: Path, name: str) -> None:
    file = tmp_path / name
    file.write_bytes(HEADER + b"2024-01-01,a,1\n")

    with pytest.raises(DataValidationError, match="is not a supported sales file") as caught:
        read_sales_file(file, ColumnSpec())

    assert ".csv, .csv.gz, .parquet, .pq" in str(caught.value)
    assert caught.value.source == str(file)
    # Naming the file directly does not get around the rule.
    with pytest.raises(DataValidationError, match="is not a supported sales file"):
        load_sales(file, ColumnSpec())


def test_quantity_above_the_maximum_is_refused(tmp_path: Path) -> None:
    file = write_csv(
        tmp_path / "s.csv",
        ["date,sku,quantity", "2024-01-01,a,1000", "2024-01-02,a,1e9", "2024-01-03,a,-2000"],
    )
    spec = ColumnSpec(max_quantity=1000, negative_quantities="keep")

    error = expect_error(file, spec)

    assert error.column == "quantity"
    assert "exceeds data.max_quantity (1000)" in str(error)
    # The limit holds for the absolute value: a huge return is as suspicious as a huge sale.
    assert error.values == ["1e9", "-2000"]
    assert "row 2" in str(error)
    assert "row 3" in str(error)
    assert len(load_sales(file, ColumnSpec(negative_quantities="keep"))) == 3


def test_quantity_maximum_applies_to_parquet_numbers() -> None:
    frame = pd.DataFrame(
        {"date": pd.to_datetime(["2024-01-01", "2024-01-02"]), "sku": "a", "quantity": [5, 7.5]}
    )

    with pytest.raises(DataValidationError, match=r"exceeds data.max_quantity \(5.5\)"):
        standardize_sales(frame, ColumnSpec(max_quantity=5.5), source="memory")
    assert len(standardize_sales(frame, ColumnSpec(max_quantity=7.5), source="memory")) == 2


def test_dates_too_far_after_today_are_refused(tmp_path: Path) -> None:
    file = write_csv(
        tmp_path / "s.csv",
        ["date,sku,quantity", "2024-01-08,a,1", "2024-01-09,a,1", "2025-01-01,a,1"],
    )
    spec = ColumnSpec(max_future_days=7)
    today = pd.Timestamp("2024-01-01")

    with pytest.raises(DataValidationError) as caught:
        load_sales(file, spec, today=today)

    message = str(caught.value)
    assert "is more than 7 days after today (2024-01-01)" in message
    assert caught.value.column == "date"
    assert caught.value.values == ["2024-01-09", "2025-01-01"]
    # The limit day itself is fine, and a later "today" accepts the whole file.
    assert len(load_sales(file, spec, today=pd.Timestamp("2024-12-25 15:30"))) == 3
    assert len(load_sales_files([file], spec, today=pd.Timestamp("2024-12-25"))) == 3


def test_future_limit_defaults_to_the_current_day() -> None:
    frame = pd.DataFrame({"date": ["2200-01-01"], "sku": ["a"], "quantity": ["1"]})

    with pytest.raises(DataValidationError, match="days after today"):
        standardize_sales(frame, ColumnSpec(max_future_days=30), source="memory")
    # The default limit is the settings' one (7 days); without a limit future dates pass.
    with pytest.raises(DataValidationError, match="more than 7 days after today"):
        standardize_sales(frame, ColumnSpec(), source="memory")
    assert len(standardize_sales(frame, ColumnSpec(max_future_days=None), source="memory")) == 1


def test_mixed_date_formats_in_one_column_are_refused(tmp_path: Path) -> None:
    file = write_csv(
        tmp_path / "s.csv",
        ["date,sku,quantity", "2024-01-05,a,1", "05/01/2024,a,2", "2024-01-07,a,3"],
    )

    error = expect_error(file, ColumnSpec())

    message = str(error)
    assert error.column == "date"
    assert "uses a different date format than row 1 ('2024-01-05', %Y-%m-%d)" in message
    assert "row 2 ('05/01/2024')" in message
    assert error.values == ["05/01/2024"]


def test_day_first_dates_are_read_day_first_throughout() -> None:
    # "05/01/2024" alone reads month first, but "13/01/2024" only reads day first: the whole
    # column is read day first instead of May 1st next to January 13th.
    frame = pd.DataFrame({"date": ["05/01/2024", "13/01/2024"], "sku": "a", "quantity": "1"})

    sales = standardize_sales(frame, ColumnSpec(), source="memory")

    assert list(sales.index) == list(pd.to_datetime(["2024-01-05", "2024-01-13"]))


def test_day_first_and_month_first_in_one_column_are_refused() -> None:
    frame = pd.DataFrame(
        {"date": ["05/01/2024", "13/01/2024", "01/31/2024"], "sku": "a", "quantity": "1"}
    )

    with pytest.raises(DataValidationError, match="different date format") as caught:
        standardize_sales(frame, ColumnSpec(), source="memory")

    assert "('05/01/2024', %m/%d/%Y)" in str(caught.value)
    assert caught.value.values == ["13/01/2024"]


def test_year_first_dates_are_never_read_year_day_month() -> None:
    frame = pd.DataFrame({"date": ["2024/01/05", "2024/31/01"], "sku": "a", "quantity": "1"})

    with pytest.raises(DataValidationError, match="date"):
        standardize_sales(frame, ColumnSpec(), source="memory")


def test_values_parsing_under_no_format_keep_the_old_message() -> None:
    frame = pd.DataFrame(
        {"date": ["2024-01-05", "05/01/2024", "soon"], "sku": "a", "quantity": "1"}
    )

    with pytest.raises(DataValidationError, match="is not a parseable date") as caught:
        standardize_sales(frame, ColumnSpec(), source="memory")

    assert caught.value.values == ["soon"]


def test_one_consistent_non_iso_format_is_parsed_with_it() -> None:
    frame = pd.DataFrame(
        {"date": ["01/31/2024", "02/01/2024", "  02/02/2024 "], "sku": "a", "quantity": "1"}
    )

    sales = standardize_sales(frame, ColumnSpec(), source="memory")

    assert list(sales.index) == list(pd.to_datetime(["2024-01-31", "2024-02-01", "2024-02-02"]))


def test_iso_dates_with_and_without_time_may_mix() -> None:
    # ISO 8601 has one reading whatever its precision, so nothing is ambiguous here.
    frame = pd.DataFrame(
        {
            "date": ["2024-01-05", "2024-01-06 00:00:00", "2024-01-07T00:00"],
            "sku": "a",
            "quantity": "1",
        }
    )

    sales = standardize_sales(frame, ColumnSpec(), source="memory")

    assert list(sales.index) == list(pd.date_range("2024-01-05", periods=3))


def test_first_value_without_a_guessable_format_falls_back_to_per_value_parsing() -> None:
    assert pd.tseries.api.guess_datetime_format("1/5/24") is None
    frame = pd.DataFrame({"date": ["1/5/24", "2024-01-06"], "sku": "a", "quantity": "1"})

    sales = standardize_sales(frame, ColumnSpec(), source="memory")

    assert list(sales.index) == list(pd.to_datetime(["2024-01-05", "2024-01-06"]))


def test_empty_first_date_is_reported_not_used_as_the_reference() -> None:
    frame = pd.DataFrame({"date": ["", "2024-01-06", "2024-01-07"], "sku": "a", "quantity": "1"})

    with pytest.raises(DataValidationError, match="is not a parseable date") as caught:
        standardize_sales(frame, ColumnSpec(), source="memory")

    assert caught.value.values == [""]
