"""The embedded example: realistic daily retail demand, generated from a fixed seed.

Each SKU is a product in a store. Demand combines a level, a trend, a weekly profile and a
yearly season that depend on the category, promotions with an uplift, and count noise.
About a fifth of the SKUs sell intermittently, some launch late (a few too late to be
forecast) and a few are discontinued. Like real extracts, days without sales have no row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

STORES = ("north", "south", "east", "west", "central")
# category -> (weekly profile Mon..Sun, yearly amplitude, peak day of year)
CATEGORIES: dict[str, tuple[tuple[float, ...], float, int]] = {
    "beverages": ((0.9, 0.9, 0.95, 1.0, 1.15, 1.35, 1.2), 0.35, 200),
    "snacks": ((0.85, 0.9, 0.9, 1.0, 1.2, 1.4, 1.15), 0.15, 350),
    "dairy": ((1.0, 0.95, 1.0, 1.0, 1.05, 1.1, 0.95), 0.05, 30),
    "produce": ((0.95, 1.0, 1.0, 1.0, 1.1, 1.25, 1.0), 0.25, 180),
    "household": ((1.0, 1.0, 1.0, 1.0, 1.0, 1.15, 1.1), 0.05, 100),
    "toys": ((0.7, 0.7, 0.75, 0.85, 1.1, 1.7, 1.6), 0.6, 355),
    "garden": ((0.8, 0.8, 0.85, 0.9, 1.1, 1.6, 1.5), 0.8, 140),
}
TAGS = ("organic", "local", "premium", "value")


def generate_sales(
    n_skus: int = 300, periods: int = 900, start: str = "2023-01-01", seed: int = 42
) -> pd.DataFrame:
    """Long-format daily sales: ``date, sku, store, category, tags, on_promotion, quantity``."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=periods, freq="D")
    t = np.arange(periods)[None, :]  # [1, T]
    categories = np.array(list(CATEGORIES))
    category = rng.choice(categories, n_skus)
    store = rng.choice(np.array(STORES), n_skus)

    weekly = np.stack([CATEGORIES[c][0] for c in category])[:, dates.dayofweek]  # [N, T]
    amplitude = np.array([CATEGORIES[c][1] for c in category])[:, None]
    peak = np.array([CATEGORIES[c][2] for c in category])[:, None]
    yearly = 1.0 + amplitude * np.cos(
        2 * np.pi * (dates.dayofyear.to_numpy()[None, :] - peak) / 365.25
    )
    level = rng.lognormal(mean=2.3, sigma=0.9, size=(n_skus, 1))
    growth = rng.normal(0.0, 0.25, size=(n_skus, 1))  # relative change per year
    trend = np.clip(1.0 + growth * t / 365.25, 0.2, None)

    promotion = _promotions(rng, n_skus, periods)
    uplift = np.where(promotion, rng.uniform(1.4, 2.5, size=(n_skus, 1)), 1.0)
    mean = level * trend * weekly * yearly * uplift

    # Gamma-Poisson (negative binomial) counts: over-dispersed like real unit sales.
    dispersion = rng.uniform(3.0, 20.0, size=(n_skus, 1))
    quantity = rng.poisson(rng.gamma(dispersion, mean / dispersion)).astype(float)

    intermittent = rng.random(n_skus) < 0.2
    occurs = rng.random((n_skus, periods)) < rng.uniform(0.05, 0.35, size=(n_skus, 1))
    sizes = rng.poisson(np.maximum(level / 3, 1.0), size=(n_skus, periods)) + 1
    quantity[intermittent] = np.where(occurs, sizes, 0)[intermittent]

    launch = np.where(rng.random(n_skus) < 0.12, rng.integers(0, periods - 30, n_skus), 0)
    stop = np.where(rng.random(n_skus) < 0.03, rng.integers(periods // 2, periods, n_skus), periods)
    alive = (t >= launch[:, None]) & (t < stop[:, None])
    sold = alive & (quantity > 0)

    sku_ids = np.array(
        [f"{s}-{c[:3]}-{i:04d}" for i, (s, c) in enumerate(zip(store, category, strict=True))]
    )
    tags = np.array(
        [
            "|".join(sorted(rng.choice(TAGS, rng.integers(0, 3), replace=False)))
            for _ in range(n_skus)
        ]
    )
    rows, cols = np.nonzero(sold)
    return pd.DataFrame(
        {
            "date": dates[cols],
            "sku": sku_ids[rows],
            "store": store[rows],
            "category": category[rows],
            "tags": tags[rows],
            "on_promotion": promotion[rows, cols],
            "quantity": quantity[rows, cols],
        }
    )


def _promotions(rng: np.random.Generator, n_skus: int, periods: int) -> np.ndarray:
    """Promotion days [N, T]: a few runs of 3 to 7 days per SKU and year."""
    promo = np.zeros((n_skus, periods), dtype=bool)
    n_runs = rng.poisson(6 * periods / 365.25, n_skus)
    for sku, runs in enumerate(n_runs):
        for start in rng.integers(0, periods, runs):
            promo[sku, start : start + rng.integers(3, 8)] = True
    return promo
