"""The typed frames: each rule of each type passes a good frame and fails, naming the column,
a frame that breaks it; the assets carry the types; a materialization fails on a bad frame
and the IO manager still stores a good one."""

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from forecast_assets.assets.forecasts import forecasts
from forecast_assets.core.clustering import ClusterResult
from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.inference.forecast import FORECAST_COLUMNS
from forecast_assets.definitions import defs
from forecast_assets.frames import (
    CLUSTER_FORECAST_FRAME,
    FORECAST_FRAME,
    SALES_FRAME,
    TypedFrame,
)
from forecast_assets.resources import build_resources

HORIZON = 7  # conftest.small_settings' timeseries.horizon
FORECAST_FRAMES = [CLUSTER_FORECAST_FRAME, FORECAST_FRAME]


def sales() -> pd.DataFrame:
    """A standardized sales frame as raw_sales returns it (with one attribute column)."""
    dates = pd.DatetimeIndex(pd.date_range("2024-01-01", periods=4).repeat(2), name="date")
    return pd.DataFrame(
        {"sku": ["a", "b"] * 4, "quantity": [1.0, 0.0, 2.5, 3.0] * 2, "store": "s1"},
        index=dates,
    )


def forecast_table(skus: tuple[str, ...] = ("a", "b"), quantiles: bool = False) -> pd.DataFrame:
    """A forecast table as forecast_cluster makes it: HORIZON days per SKU."""
    dates = pd.date_range("2024-02-01", periods=HORIZON)
    n = len(skus) * HORIZON
    forecast = np.linspace(1.0, 5.0, n)
    table = pd.DataFrame(
        {
            "sku": np.repeat(list(skus), HORIZON),
            "date": np.tile(dates.to_numpy(), len(skus)),
            "forecast": forecast,
            "lower": forecast - 0.5,
            "upper": forecast + 1.0,
            "cluster": "cluster_0",
            "model": "advanced" if quantiles else "lightweight",
            "trained_at": pd.Timestamp("2024-01-31T12:00:00+00:00"),
        }
    )
    if quantiles:
        table = table.assign(p10=forecast - 0.4, p50=forecast, p90=forecast + 0.8)
    return table


def with_value(frame: pd.DataFrame, column: str, value: object, row: int = 1) -> pd.DataFrame:
    changed = frame.copy()
    changed[column] = changed[column].astype(object) if isinstance(value, str) else changed[column]
    changed.iloc[row, changed.columns.get_loc(column)] = value  # by position: dates repeat
    return changed


def fails(frame_type: TypedFrame, frame: object, *words: str, nonnegative: bool = True) -> None:
    problem = frame_type.violation(frame, nonnegative)
    assert problem is not None, f"{frame_type.name} let the frame pass"
    for word in words:
        assert word in problem, problem


# -- SalesFrame (raw_sales) ----------------------------------------------------------------


@pytest.mark.parametrize("nonnegative", [True, False])
def test_a_standardized_sales_frame_passes(nonnegative: bool) -> None:
    assert SALES_FRAME.violation(sales(), nonnegative) is None


@pytest.mark.parametrize("column", ["sku", "quantity"])
def test_sales_without_a_column_fail(column: str) -> None:
    fails(SALES_FRAME, sales().drop(columns=column), f"Required column {column} not in")


@pytest.mark.parametrize(
    ("column", "values", "dtype"),
    [("sku", [1, 2] * 4, "int64"), ("quantity", ["1"] * 8, "object")],
)
def test_sales_of_the_wrong_dtype_fail(column: str, values: list, dtype: str) -> None:
    fails(SALES_FRAME, sales().assign(**{column: values}), f'column "{column}"', dtype)


@pytest.mark.parametrize(
    ("column", "value", "breach"),
    [("sku", None, "null"), ("quantity", np.nan, "null"), ("quantity", np.inf, "infinite")],
)
def test_sales_with_null_or_infinite_values_fail(column: str, value: object, breach: str) -> None:
    fails(SALES_FRAME, with_value(sales(), column, value), f'column "{column}"', f"1 {breach}")


def test_negative_sales_fail_unless_the_settings_keep_them() -> None:
    negative = with_value(sales(), "quantity", -2.0)
    fails(SALES_FRAME, negative, 'column "quantity"', "1 negative", "-2.0")
    assert SALES_FRAME.violation(negative, nonnegative=False) is None


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda frame: frame.reset_index(), "got a RangeIndex named None"),
        (lambda frame: frame.rename_axis("day"), "got a DatetimeIndex named 'day'"),
        (
            lambda frame: frame.set_axis(pd.DatetimeIndex([None, *frame.index[1:]], name="date")),
            "1 NaT",
        ),
    ],
)
def test_sales_not_indexed_by_date_fail(change: Callable, said: str) -> None:
    fails(SALES_FRAME, change(sales()), "DatetimeIndex named 'date'", said)


# -- ClusterForecastFrame (forecast_table) and ForecastFrame (forecasts) -------------------


@pytest.mark.parametrize("frame_type", FORECAST_FRAMES, ids=lambda t: t.name)
@pytest.mark.parametrize("quantiles", [False, True])
@pytest.mark.parametrize("nonnegative", [True, False])
def test_a_forecast_table_passes(frame_type: TypedFrame, quantiles: bool, nonnegative: bool):
    assert frame_type.violation(forecast_table(quantiles=quantiles), nonnegative) is None


@pytest.mark.parametrize("frame_type", FORECAST_FRAMES, ids=lambda t: t.name)
def test_the_types_cover_exactly_the_contracts_columns(frame_type: TypedFrame) -> None:
    assert [column.name for column in frame_type.columns] == list(FORECAST_COLUMNS)


@pytest.mark.parametrize("frame_type", FORECAST_FRAMES, ids=lambda t: t.name)
@pytest.mark.parametrize("column", FORECAST_COLUMNS)
def test_a_forecast_table_without_a_column_fails(frame_type: TypedFrame, column: str) -> None:
    fails(frame_type, forecast_table().drop(columns=column), f"Required column {column} not in")


@pytest.mark.parametrize("frame_type", FORECAST_FRAMES, ids=lambda t: t.name)
@pytest.mark.parametrize(
    ("column", "value", "validator"),
    [
        ("sku", 3, "is_string_dtype"),
        ("date", "2024-02-01", "is_datetime64_any_dtype"),
        ("forecast", "1.5", "is_float_dtype"),
        ("lower", 1, "is_float_dtype"),
        ("cluster", 0, "is_string_dtype"),
        ("model", 1.0, "is_string_dtype"),
        ("trained_at", "2024-01-31", "is_datetime64_any_dtype"),
    ],
)
def test_a_forecast_column_of_the_wrong_dtype_fails(
    frame_type: TypedFrame, column: str, value: object, validator: str
) -> None:
    frame = forecast_table().assign(**{column: value})
    fails(frame_type, frame, f'column "{column}"', validator)


@pytest.mark.parametrize("frame_type", FORECAST_FRAMES, ids=lambda t: t.name)
@pytest.mark.parametrize("column", FORECAST_COLUMNS)
def test_a_null_in_any_forecast_column_fails(frame_type: TypedFrame, column: str) -> None:
    value = pd.NaT if column in ("date", "trained_at") else None
    fails(frame_type, with_value(forecast_table(), column, value), f'column "{column}"', "1 null")


@pytest.mark.parametrize("frame_type", FORECAST_FRAMES, ids=lambda t: t.name)
@pytest.mark.parametrize("column", ["forecast", "lower", "upper"])
def test_an_infinite_forecast_or_bound_fails(frame_type: TypedFrame, column: str) -> None:
    # The column rules come before the order of the bounds, so this is the one that fails.
    table = with_value(forecast_table(), column, np.inf)
    fails(frame_type, table, f'column "{column}"', "1 infinite", nonnegative=False)


@pytest.mark.parametrize("frame_type", FORECAST_FRAMES, ids=lambda t: t.name)
def test_negative_demand_fails_unless_the_settings_keep_negative_quantities(
    frame_type: TypedFrame,
) -> None:
    table = forecast_table()
    table["lower"] = table["lower"] - 10.0  # negative, still below forecast
    fails(frame_type, table, 'column "lower"', "negative")
    assert frame_type.violation(table, nonnegative=False) is None
    table["forecast"] = table["upper"] = -1.0
    table["lower"] = -2.0
    fails(frame_type, table, 'column "forecast"', "negative")
    assert frame_type.violation(table, nonnegative=False) is None


@pytest.mark.parametrize("frame_type", FORECAST_FRAMES, ids=lambda t: t.name)
@pytest.mark.parametrize(
    ("column", "value"), [("lower", 100.0), ("upper", 0.0), ("forecast", 100.0)]
)
def test_bounds_out_of_order_fail(frame_type: TypedFrame, column: str, value: float) -> None:
    problem = frame_type.violation(with_value(forecast_table(), column, value), True)
    assert problem is not None
    assert "1 row(s) where not lower <= forecast <= upper" in problem, problem
    assert f"{column}={value:g}" in problem, problem


@pytest.mark.parametrize("frame_type", FORECAST_FRAMES, ids=lambda t: t.name)
@pytest.mark.parametrize(
    ("value", "said"), [(-1.0, "1 negative"), (np.inf, "1 infinite"), ("x", "is_float_dtype")]
)
def test_a_bad_quantile_column_fails(frame_type: TypedFrame, value: object, said: str) -> None:
    table = with_value(forecast_table(quantiles=True), "p90", value)
    fails(frame_type, table, 'column "p90"', said)


def test_only_the_combined_table_has_empty_quantiles_for_a_model_without_them() -> None:
    # A quantile model serves one cluster, a point model another: the combined table's
    # quantile columns are empty in the point model's rows.
    mixed = pd.concat(
        [forecast_table(("a",), quantiles=True), forecast_table(("b",))], ignore_index=True
    )
    assert mixed["p10"].isna().any()
    assert FORECAST_FRAME.violation(mixed, nonnegative=True) is None
    fails(CLUSTER_FORECAST_FRAME, mixed, 'column "p10"', "null")


# -- The DagsterType: settings through the resource, on the assets, in a run ---------------


def type_check_context(negative_quantities: str) -> SimpleNamespace:
    settings = SimpleNamespace(nonnegative=negative_quantities != "keep")
    return SimpleNamespace(
        resources=SimpleNamespace(settings=SimpleNamespace(load=lambda: settings))
    )


@pytest.mark.parametrize("frame_type", FORECAST_FRAMES, ids=lambda t: t.name)
def test_the_dagster_type_takes_non_negativity_from_the_settings_resource(
    frame_type: TypedFrame,
) -> None:
    table = forecast_table()
    table["lower"] = -1.0
    dagster_type = frame_type.dagster_type
    assert dagster_type.required_resource_keys == {"settings"}
    assert dagster_type.type_check(type_check_context("keep"), table).success
    refused = dagster_type.type_check(type_check_context("error"), table)
    assert not refused.success and 'column "lower"' in refused.description
    not_a_frame = dagster_type.type_check(type_check_context("error"), table.to_dict())
    assert not not_a_frame.success and "Must be a pandas.DataFrame" in not_a_frame.description


@pytest.mark.parametrize(
    ("asset", "frame_type"),
    [
        ("raw_sales", SALES_FRAME),
        ("forecast_table", CLUSTER_FORECAST_FRAME),
        ("forecasts", FORECAST_FRAME),
    ],
)
def test_the_assets_carry_their_frame_types(asset: str, frame_type: TypedFrame) -> None:
    assets_def = defs.get_assets_def(asset)
    dagster_type = assets_def.op.outs["result"].dagster_type
    assert dagster_type is frame_type.dagster_type
    assert dagster_type.display_name == frame_type.name
    # The UI shows the type's description (its columns) and the asset's column schema.
    columns = [column.name for column in frame_type.columns]
    assert all(f"**{name}**" in dagster_type.description for name in columns)
    schema = assets_def.specs_by_key[assets_def.key].metadata["dagster/column_schema"]
    assert [column.name for column in schema.columns] == columns


@pytest.fixture
def run_table(write_settings, instance: dg.DagsterInstance):
    """Materialize a one-asset graph that returns ``table`` under ClusterForecastFrame, with
    the project's resources (its IO manager included)."""

    def run(table: pd.DataFrame, changes: dict | None = None):
        @dg.asset(dagster_type=CLUSTER_FORECAST_FRAME.dagster_type)
        def typed_table() -> pd.DataFrame:
            return table

        resources = build_resources(str(write_settings(changes)))
        result = dg.materialize(
            [typed_table], resources=resources, instance=instance, raise_on_error=False
        )
        return result, dg.Definitions(assets=[typed_table], resources=resources)

    return run


@pytest.mark.integration
def test_a_materialization_fails_on_a_frame_that_breaks_its_type(run_table) -> None:
    result, _ = run_table(with_value(forecast_table(), "upper", np.inf))
    assert not result.success
    (failure,) = [event for event in result.all_events if event.is_step_failure]
    message = failure.step_failure_data.error.message
    assert 'expected type "ClusterForecastFrame"' in message
    assert 'for column "upper"' in message and "infinite" in message


@pytest.mark.integration
def test_the_io_manager_stores_a_typed_frame(run_table, instance, tmp_path: Path) -> None:
    table = forecast_table(quantiles=True)
    result, stored = run_table(table)
    assert result.success
    assert (tmp_path / "output" / "assets" / "typed_table").is_file()
    pd.testing.assert_frame_equal(stored.load_asset_value("typed_table", instance=instance), table)
    # With negative quantities kept, a negative forecast is a good one.
    negative = table.assign(lower=-3.0)
    assert not run_table(negative)[0].success
    assert run_table(negative, {"data": {"negative_quantities": "keep"}})[0].success


@pytest.mark.integration
def test_forecasts_publishes_no_table_that_breaks_its_type(
    write_settings, instance, tmp_path: Path
) -> None:
    table = forecast_table()
    assignments = pd.Series("cluster_0", index=["a", "b"])

    @dg.asset(name="clusters")
    def stub_clusters() -> ClusterResult:
        return ClusterResult(assignments, 1, 1, {}, {}, {})

    @dg.asset(name="forecast_table")
    def stub_forecast_table() -> dict:
        return {"cluster_0": table.assign(lower=-1.0)}

    @dg.asset(name="resampled_series")
    def stub_panel() -> SalesPanel:
        skus = pd.Index(["a", "b"], name="sku")
        dates = pd.date_range("2024-01-01", periods=3, freq="D")
        return SalesPanel(np.ones((2, 3)), skus, dates, "D", pd.DataFrame(index=skus))

    resources = build_resources(str(write_settings()))
    result = dg.materialize(
        [stub_clusters, stub_forecast_table, stub_panel, forecasts],
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [event for event in result.all_events if event.is_step_failure]
    assert failure.step_key == "forecasts"
    message = failure.step_failure_data.user_failure_data.description
    assert 'breaks ForecastFrame: Violated "NonNegative" for column "lower"' in message
    assert not (tmp_path / "output" / "forecasts.parquet").exists()
