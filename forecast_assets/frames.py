"""Typed frames: the dagster-pandas types of the tables that assets return.

Dagster checks an asset's value against its type before the IO manager stores it, so a frame
that breaks a rule fails the materialization, with the rule and the column named. The UI
shows each type with its columns (and the asset's column schema).

Whether demand may be negative is a setting (``data.negative_quantities: keep``), so every
frame has two dagster-pandas types, with the non-negativity rule and without, and the
asset's type picks one through the settings resource.
"""

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dagster as dg
import numpy as np
import pandas as pd
from dagster_pandas import PandasColumn, create_dagster_pandas_dataframe_type
from dagster_pandas.constraints import (
    ColumnConstraint,
    ColumnConstraintViolationException,
    ColumnDTypeFnConstraint,
    DataFrameConstraint,
    DataFrameConstraintViolationException,
)
from pandas.api import types

from forecast_assets.core.inference.forecast import (
    CLUSTER,
    DATE,
    FORECAST,
    FORECAST_COLUMNS,
    LOWER,
    MODEL,
    SKU,
    TRAINED_AT,
    UPPER,
)

# The key build_resources gives ForecastSettingsResource; the types read the setting from it.
SETTINGS_RESOURCE = "settings"
# How many offending rows a message quotes.
_QUOTED = 5


def _quote(values: pd.Series) -> str:
    pairs = zip(values.index, values.tolist(), strict=True)
    shown = [f"{value!r} at {index}" for index, value in pairs]
    more = len(values) - _QUOTED
    return ", ".join(shown[:_QUOTED]) + (f" and {more} more" if more > 0 else "")


class RowRule(ColumnConstraint):
    """A rule that each value of a column must satisfy (``holds``); the values that break it
    (``breach``: null, negative...) are counted and a few quoted, where dagster-pandas' own
    constraints put the whole offending frame into the message."""

    def __init__(
        self, name: str, rule: str, breach: str, holds: Callable[[pd.Series], object]
    ) -> None:
        super().__init__(error_description=rule, markdown_description=rule)
        self.name = name
        self.breach = breach
        self.holds = holds

    def validate(self, dataframe: pd.DataFrame, column_name: str) -> None:
        values = dataframe[column_name]
        broken = values[~np.asarray(self.holds(values), dtype=bool)]
        if not broken.empty:
            raise ColumnConstraintViolationException(
                constraint_name=self.name,
                constraint_description=f"{len(broken)} {self.breach} value(s), "
                f"e.g. {_quote(broken)}",
                column_name=column_name,
            )


class DatetimeIndexRule(DataFrameConstraint):
    """The frame is indexed by dates: a DatetimeIndex of that name without NaT."""

    def __init__(self, name: str) -> None:
        self.index_name = name
        rule = f"the index is a DatetimeIndex named {name!r} without NaT"
        super().__init__(error_description=rule, markdown_description=rule)

    def validate(self, dataframe: pd.DataFrame) -> None:
        index = dataframe.index
        if not isinstance(index, pd.DatetimeIndex) or index.name != self.index_name:
            problem = f"got a {type(index).__name__} named {index.name!r}"
        elif index.hasnans:
            problem = f"{int(index.isna().sum())} NaT"
        else:
            return
        raise DataFrameConstraintViolationException(
            constraint_name="DatetimeIndex",
            constraint_description=f"{self.error_description}: {problem}",
        )


class OrderedRule(DataFrameConstraint):
    """In every row the columns' values do not decrease from one column to the next."""

    def __init__(self, *columns: str) -> None:
        self.columns = list(columns)
        rule = " <= ".join(columns)
        super().__init__(error_description=rule, markdown_description=rule)

    def validate(self, dataframe: pd.DataFrame) -> None:
        values = dataframe[self.columns].to_numpy(dtype=float)
        broken = (np.diff(values, axis=1) < 0).any(axis=1)
        if broken.any():
            rows = dataframe.loc[broken, self.columns].head(_QUOTED)
            quoted = "; ".join(
                f"row {index}: " + ", ".join(f"{c}={float(row[c]):g}" for c in self.columns)
                for index, row in rows.iterrows()
            )
            raise DataFrameConstraintViolationException(
                constraint_name="Ordered",
                constraint_description=f"{int(broken.sum())} row(s) where not "
                f"{self.error_description}, e.g. {quoted}",
            )


class OtherColumnsRule(DataFrameConstraint):
    """Every column beyond ``known`` follows the column ``constraints`` (a quantile model's
    p10, p50, ... columns, whose names depend on the model)."""

    def __init__(
        self, known: Sequence[str], constraints: Sequence[ColumnConstraint], rule: str
    ) -> None:
        self.known = set(known)
        self.constraints = list(constraints)
        super().__init__(error_description=rule, markdown_description=rule)

    def validate(self, dataframe: pd.DataFrame) -> None:
        for name in dataframe.columns:
            if name not in self.known:
                for constraint in self.constraints:
                    constraint.validate(dataframe, name)


# Each rule looks at its own breach only; nulls are NOT_NULL's, where a column has it.
NOT_NULL = RowRule("NotNull", "no nulls", "null", lambda values: values.notna())
FINITE = RowRule("Finite", "no inf", "infinite", lambda values: ~np.isinf(values.to_numpy(float)))
NONNEGATIVE = RowRule(
    "NonNegative",
    ">= 0 (unless data.negative_quantities is keep)",
    "negative",
    lambda values: ~(values < 0),
)


@dataclass(frozen=True)
class Column:
    """A column of a typed frame: its dtype (a pandas.api.types predicate, shown as
    ``kind``), its rules, whether it holds demand (>= 0 unless the settings keep negative
    quantities) and whether it may hold nulls."""

    name: str
    kind: str
    dtype: Callable[[object], bool]
    rules: tuple[ColumnConstraint, ...] = ()
    demand: bool = False
    nullable: bool = False

    def value_rules(self, nonnegative: bool) -> list[ColumnConstraint]:
        return [*self.rules, *([NONNEGATIVE] if self.demand and nonnegative else [])]

    def constraints(self, nonnegative: bool) -> list[ColumnConstraint]:
        # The dtype first: the value rules assume it.
        nulls = [] if self.nullable else [NOT_NULL]
        return [ColumnDTypeFnConstraint(self.dtype), *nulls, *self.value_rules(nonnegative)]

    def pandas(self, nonnegative: bool) -> PandasColumn:
        return PandasColumn(self.name, constraints=self.constraints(nonnegative))

    def table_column(self) -> dg.TableColumn:
        rules = [rule.markdown_description for rule in self.value_rules(nonnegative=True)]
        return dg.TableColumn(
            self.name,
            type=self.kind,
            constraints=dg.TableColumnConstraints(nullable=self.nullable, other=rules),
        )


def text(name: str) -> Column:
    return Column(name, "string", types.is_string_dtype)


def moment(name: str) -> Column:
    return Column(name, "datetime", types.is_datetime64_any_dtype)


def demand(name: str, nullable: bool = False) -> Column:
    return Column(name, "float", types.is_float_dtype, (FINITE,), demand=True, nullable=nullable)


class TypedFrame:
    """A frame's contract: the asset's DagsterType, the check behind it and its column schema."""

    def __init__(
        self,
        name: str,
        description: str,
        columns: Sequence[Column],
        frame_rules: Callable[[bool], list[DataFrameConstraint]] = lambda nonnegative: [],
    ) -> None:
        self.name = name
        self.columns = tuple(columns)
        self.rules = [rule.markdown_description for rule in frame_rules(True)]
        rules = "".join(f"+ {rule}\n" for rule in self.rules)
        with warnings.catch_warnings():
            # dagster-pandas calls these APIs beta; its version is pinned (constraints.txt).
            warnings.simplefilter("ignore", dg.BetaWarning)
            self._types = {
                nonnegative: create_dagster_pandas_dataframe_type(
                    name=name,
                    description=description + ("\n### Rules\n" + rules if rules else ""),
                    columns=[column.pandas(nonnegative) for column in self.columns],
                    dataframe_constraints=frame_rules(nonnegative),
                )
                for nonnegative in (False, True)
            }

        def check(context: dg.TypeCheckContext, value: object) -> dg.TypeCheck:
            settings = getattr(context.resources, SETTINGS_RESOURCE)
            return self._types[settings.load().nonnegative].type_check(context, value)

        self.dagster_type = dg.DagsterType(
            type_check_fn=check,
            name=name,
            description=self._types[True].description,
            required_resource_keys={SETTINGS_RESOURCE},
            typing_type=pd.DataFrame,
        )

    def violation(self, value: object, nonnegative: bool) -> str | None:
        """What breaks the contract in ``value`` (None: nothing), as the type check says it."""
        # The dagster-pandas checks do not use their context.
        result = self._types[nonnegative].type_check(None, value)
        return None if result.success else result.description

    @property
    def column_schema(self) -> dg.TableSchema:
        return dg.TableSchema(
            columns=[column.table_column() for column in self.columns],
            constraints=dg.TableConstraints(other=self.rules),
        )

    @property
    def metadata(self) -> dict[str, object]:
        """The asset definition's metadata: the column schema, for the UI's Columns view."""
        return {"dagster/column_schema": self.column_schema}


# The loader's standardized frame (core/data/loader.py), which has no constants for its names.
SALES_FRAME = TypedFrame(
    "SalesFrame",
    "The standardized sales history: one row per (sku, date), indexed by `date`, with the "
    "configured attribute columns (data.categorical_columns, data.multilabel_columns) beside "
    "these.",
    [text("sku"), demand("quantity")],
    lambda nonnegative: [DatetimeIndexRule("date")],
)


FORECAST_TABLE_COLUMNS = [
    text(SKU),
    moment(DATE),
    demand(FORECAST),
    demand(LOWER),
    demand(UPPER),
    text(CLUSTER),
    text(MODEL),
    moment(TRAINED_AT),
]


def _forecast_rules(quantiles_nullable: bool) -> Callable[[bool], list[DataFrameConstraint]]:
    def rules(nonnegative: bool) -> list[DataFrameConstraint]:
        quantile = demand("quantile", nullable=quantiles_nullable)
        gaps = ", null in the rows of a model without quantile heads" if quantiles_nullable else ""
        return [
            OtherColumnsRule(
                FORECAST_COLUMNS,
                quantile.constraints(nonnegative),
                f"every other column is a quantile forecast (p10, p50, ...) with the rules of "
                f"{FORECAST}{gaps}",
            ),
            OrderedRule(LOWER, FORECAST, UPPER),
        ]

    return rules


_FORECAST_DESCRIPTION = (
    "the next horizon per SKU in original units, with the interval's bounds at "
    "forecast.confidence, the cluster and the model that made it."
)
# forecast_table: one cluster, so one model, whose quantile columns (if any) are full.
CLUSTER_FORECAST_FRAME = TypedFrame(
    "ClusterForecastFrame",
    f"One cluster's forecast table: {_FORECAST_DESCRIPTION}",
    FORECAST_TABLE_COLUMNS,
    _forecast_rules(quantiles_nullable=False),
)
# forecasts: every cluster's table; a cluster served without quantile heads leaves the
# quantile columns of another cluster's model empty in its rows.
FORECAST_FRAME = TypedFrame(
    "ForecastFrame",
    f"The forecast table of all clusters: {_FORECAST_DESCRIPTION}",
    FORECAST_TABLE_COLUMNS,
    _forecast_rules(quantiles_nullable=True),
)
