"""What every member of the pool does: forecast a panel from given origins.

A candidate (or a group of them fitted together, as statsforecast fits several models in
one pass) forecasts ``horizon`` periods from each origin ``o`` of a list, using only the
periods before ``o``. The backtest's fold origins and the origin after the data (the
forecast that serves) go through the same call, so what is judged is what serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from forecast_assets.core.data.panel import SalesPanel


class CandidateGroup(Protocol):
    """Forecasters that are fitted together; ``names`` are those of its members."""

    @property
    def names(self) -> tuple[str, ...]: ...

    def forecast(
        self, panel: SalesPanel, origins: Sequence[int], horizon: int
    ) -> dict[str, np.ndarray]:
        """Per member: [len(origins), n_skus, horizon] in the panel's units, each origin's
        forecast made from the periods before it. NaN for a SKU with no observation before
        an origin, or one the member cannot forecast."""
        ...


def history_before(panel: SalesPanel, origin: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of SKUs observed before ``origin`` and those rows' first observed period."""
    first = panel.first_index
    return np.flatnonzero(first < origin), first


def check_origins(panel: SalesPanel, origins: Sequence[int], horizon: int) -> None:
    """Origins lie in 1..n_periods; a later one would forecast from data that is not there."""
    bad = [o for o in origins if not 1 <= o <= panel.n_periods]
    if bad:
        raise ValueError(
            f"forecast origins {bad} outside 1..{panel.n_periods} (the panel's periods)"
        )
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
