"""The project's exception hierarchy: every error a user can act on derives from one base."""

from __future__ import annotations

from collections.abc import Sequence


class DemandForecastError(Exception):
    """Base class of every error the project raises on purpose."""


class ConfigurationError(DemandForecastError):
    """Settings are invalid or inconsistent; raised before any work starts."""


class DataValidationError(DemandForecastError):
    """Input data breaks the contract: the message names the file, the column and the values."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        column: str | None = None,
        values: Sequence[object] = (),
    ) -> None:
        self.source = source
        self.column = column
        self.values = list(values)
        where = ", ".join(
            part
            for part in (
                f"file {source}" if source else "",
                f"column '{column}'" if column else "",
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)


class InsufficientDataError(DemandForecastError):
    """There is too little history to do what was asked (train, validate, forecast)."""


class ModelNotFoundError(DemandForecastError):
    """A model type or a stored model that was asked for does not exist."""


class TrainingError(DemandForecastError):
    """Training could not produce a usable model (e.g. the loss became NaN)."""


class ExportError(DemandForecastError):
    """A model could not be exported, or an exported model does not fit the data it is given."""
