"""The embedded example: realistic daily retail demand, generated from a fixed seed.

Each SKU is a product in a store. Demand combines a level, a trend, a weekly profile and a
yearly season that depend on the category, promotions with an uplift, and count noise.
About a fifth of the SKUs sell intermittently, some launch late (a few too late to be
forecast) and a few are discontinued. Like real extracts, days without sales have no row.

``generate_sales`` is the small embedded example (its output for a seed never changes);
``generate_catalogue`` builds an M5-sized catalogue (30,490 item x store series, 1,941 days)
for scale tests, vectorized over blocks of series so that memory stays bounded.
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


# --- An M5-sized catalogue ------------------------------------------------------------------
# Items x stores as in the M5 competition (Walmart, 2011-01-29 .. 2016-05-22): 10 stores in 3
# states, 3 categories, 7 departments. Generated in blocks of items so that memory stays
# bounded whatever the size, and so that a smaller catalogue is the start of a larger one.

M5_STORES = ("CA_1", "CA_2", "CA_3", "CA_4", "TX_1", "TX_2", "TX_3", "WI_1", "WI_2", "WI_3")
M5_STATES = ("CA", "TX", "WI")
_STORE_STATE = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
# Relative store size (CA_3 is the busiest M5 store, CA_4 the quietest).
_STORE_SIZE = np.array([1.3, 0.95, 1.7, 0.65, 0.95, 1.1, 1.05, 0.9, 1.2, 1.0])
M5_CATEGORY_NAMES = ("FOODS", "HOBBIES", "HOUSEHOLD")
# department -> (category, items of the department in M5; their shares pick departments)
M5_DEPARTMENTS: dict[str, tuple[str, int]] = {
    "FOODS_1": ("FOODS", 216),
    "FOODS_2": ("FOODS", 398),
    "FOODS_3": ("FOODS", 823),
    "HOBBIES_1": ("HOBBIES", 416),
    "HOBBIES_2": ("HOBBIES", 149),
    "HOUSEHOLD_1": ("HOUSEHOLD", 532),
    "HOUSEHOLD_2": ("HOUSEHOLD", 515),
}
# category -> (weekly profile Mon..Sun, yearly amplitude, peak day of year)
M5_CATEGORIES: dict[str, tuple[tuple[float, ...], float, int]] = {
    "FOODS": ((0.93, 0.88, 0.87, 0.88, 0.98, 1.22, 1.24), 0.06, 220),
    "HOBBIES": ((0.9, 0.86, 0.86, 0.88, 1.0, 1.26, 1.24), 0.15, 355),
    "HOUSEHOLD": ((0.92, 0.87, 0.86, 0.87, 0.97, 1.25, 1.26), 0.08, 200),
}
# Chance of each of TAGS per item.
_TAG_CHANCE = np.array([0.12, 0.08, 0.15, 0.25])
ITEMS_PER_BLOCK = 100  # items generated together; fixed, so that the output does not depend on it


def generate_catalogue(
    n_series: int = 30_490,
    periods: int = 1_941,
    start: str = "2011-01-29",
    seed: int = 0,
    *,
    prices: bool = False,
) -> pd.DataFrame:
    """An M5-like catalogue of ``n_series`` item x store daily series, in long format.

    Series are items in each of the 10 stores, item by item (``n_series = 30_490`` is the
    3,049 M5 items in every store; a count that is not a multiple of 10 leaves the last item
    in the first stores only). Demand is negative-binomial around an item level (median about
    half a unit a day, so most series sell nothing on most days) times a store size, a trend,
    the category's weekly and yearly profile and promotion uplifts; about 30 % of items launch
    late (a few too late to be forecast), a few are discontinued, some series have stock-out
    spells and stores are closed on Christmas day.

    Columns: ``date`` (datetime64[ns]); ``sku`` (``FOODS_3_090_CA_1``), ``item``, ``dept``,
    ``category``, ``store``, ``state`` and ``tags`` ("|"-joined, may be empty) as pandas
    categoricals; ``on_promotion`` (bool); ``quantity`` (int32, > 0); with ``prices`` also
    ``sell_price`` (float32). Like ``generate_sales``, days without sales have no row; rows
    are ordered by series, then date.

    Deterministic for a seed. Series ``i`` depends only on ``seed``, ``periods``, ``start``
    and ``i``: a smaller catalogue is the first ``n_series`` series of a larger one. Memory
    stays bounded: the [series, days] matrices are built ``ITEMS_PER_BLOCK`` items at a time,
    and only the rows with sales are kept (about 25 bytes each).
    """
    if n_series < 1 or periods < 1:
        raise ValueError(f"need n_series >= 1 and periods >= 1, got {n_series}, {periods}")
    n_stores = len(M5_STORES)
    n_items = -(-n_series // n_stores)
    dates = pd.date_range(start, periods=periods, freq="D")
    # Weekly x yearly profile per category, [3, T]; stores are closed on Christmas day.
    profile = np.stack(
        [
            np.asarray(weekly)[dates.dayofweek]
            * (1.0 + amplitude * np.cos(2 * np.pi * (dates.dayofyear.to_numpy() - peak) / 365.25))
            for weekly, amplitude, peak in M5_CATEGORIES.values()
        ]
    )
    open_day = ~((dates.month == 12) & (dates.day == 25))

    blocks = [
        _catalogue_block(seed, block, periods, profile, open_day, prices)
        for block in range(-(-n_items // ITEMS_PER_BLOCK))
    ]
    items = _concat_field(blocks, "dept")[:n_items]
    item_names = _item_names(items)
    tag_codes = _concat_field(blocks, "tags")[:n_items]
    # Assembled a column at a time, each block's array released as soon as it is copied, with
    # the smallest code types: the peak stays near twice the finished frame.
    rows = _concat_field(blocks, "series")
    keep = rows < n_series  # the last block may hold more series than asked for
    trim = not keep.all()
    if trim:
        rows = rows[keep]
    columns: dict[str, object] = {
        "date": dates[_concat_field(blocks, "day", keep if trim else None)]
    }
    sku_names = np.char.add(
        np.char.add(np.repeat(item_names, n_stores), "_"),
        np.tile(np.array(M5_STORES), n_items),
    )[:n_series]
    columns["sku"] = pd.Categorical.from_codes(rows, categories=sku_names)
    item = (rows // n_stores).astype(np.int16 if n_items < 2**15 else np.int32)
    store = (rows % n_stores).astype(np.int8)
    del rows
    dept = items[item]
    dept_category = np.array(
        [M5_CATEGORY_NAMES.index(c) for c, _ in M5_DEPARTMENTS.values()], dtype=np.int8
    )
    columns["item"] = pd.Categorical.from_codes(item, categories=item_names)
    columns["dept"] = pd.Categorical.from_codes(dept, categories=list(M5_DEPARTMENTS))
    columns["category"] = pd.Categorical.from_codes(
        dept_category[dept], categories=list(M5_CATEGORY_NAMES)
    )
    columns["store"] = pd.Categorical.from_codes(store, categories=list(M5_STORES))
    columns["state"] = pd.Categorical.from_codes(
        _STORE_STATE.astype(np.int8)[store], categories=list(M5_STATES)
    )
    columns["tags"] = pd.Categorical.from_codes(tag_codes[item], categories=_tag_combinations())
    del item, store, dept
    columns["on_promotion"] = _concat_field(blocks, "promotion", keep if trim else None)
    columns["quantity"] = _concat_field(blocks, "quantity", keep if trim else None)
    if prices:
        columns["sell_price"] = _concat_field(blocks, "price", keep if trim else None)
    return pd.DataFrame(columns, copy=False)


def _catalogue_block(
    seed: int,
    block: int,
    periods: int,
    profile: np.ndarray,
    open_day: np.ndarray,
    prices: bool,
) -> dict[str, np.ndarray]:
    """Items ``block * ITEMS_PER_BLOCK ..`` in every store: their rows with sales, and the
    department and tags of each item. Draws the same numbers whatever the catalogue size."""
    rng = np.random.default_rng([seed, block])
    n_stores = len(M5_STORES)
    n_items = ITEMS_PER_BLOCK
    n = n_items * n_stores
    t = np.arange(periods)[None, :]

    # Per item.
    shares = np.array([count for _, count in M5_DEPARTMENTS.values()], dtype=float)
    dept = rng.choice(len(shares), size=n_items, p=shares / shares.sum()).astype(np.int8)
    item_level = rng.lognormal(-0.7, 1.1, n_items)
    late = rng.random(n_items) < 0.3
    item_launch = np.where(late, np.floor(rng.random(n_items) * periods), 0).astype(int)
    discontinued = rng.random(n_items) < 0.03
    item_stop = np.where(
        discontinued,
        periods // 2 + np.floor(rng.random(n_items) * (periods - periods // 2)),
        periods,
    ).astype(int)
    regular_price = rng.lognormal(1.1, 0.7, n_items)
    tag_bits = rng.random((n_items, len(TAGS))) < _TAG_CHANCE
    tags = (tag_bits * (1 << np.arange(len(TAGS)))).sum(axis=1).astype(np.int8)

    # Per series (item-major: item i in store s is series i * n_stores + s).
    item = np.repeat(np.arange(n_items), n_stores)
    store = np.tile(np.arange(n_stores), n_items)
    category = np.array([M5_CATEGORY_NAMES.index(c) for c, _ in M5_DEPARTMENTS.values()])[
        dept[item]
    ]
    level = item_level[item] * _STORE_SIZE[store] * rng.lognormal(0.0, 0.35, n)
    launch = item_launch[item] + np.where(late[item], rng.integers(0, 60, n), 0)
    growth = rng.normal(0.0, 0.2, n)  # relative change per year
    dispersion = rng.uniform(0.3, 3.0, n)  # negative-binomial shape: small is lumpy
    promo_rate = rng.uniform(2.0, 10.0, n) / 365.25  # promotion runs per day
    promo_days = rng.integers(3, 8, n)
    uplift = rng.uniform(1.3, 2.5, n)
    discount = rng.uniform(0.1, 0.3, n)
    store_price = rng.uniform(0.95, 1.05, n)
    out_of_stock = rng.random(n) < 0.1
    gap_start = rng.integers(0, periods, n)
    gap_end = gap_start + np.where(out_of_stock, rng.integers(7, 90, n), 0)

    # [series, days].
    runs = np.cumsum(rng.random((n, periods)) < promo_rate[:, None], axis=1, dtype=np.int32)
    before = t - promo_days[:, None]
    lagged = np.take_along_axis(runs, np.maximum(before, 0), axis=1)
    promotion = (runs - np.where(before >= 0, lagged, 0)) > 0  # a run began in the last days
    del runs, before, lagged
    alive = (
        (t >= launch[:, None])
        & (t < item_stop[item][:, None])
        & ((t < gap_start[:, None]) | (t >= gap_end[:, None]))
        & open_day[None, :]
    )
    trend = np.clip(1.0 + growth[:, None] * (t / 365.25), 0.2, 3.0)
    mean = level[:, None] * trend * profile[category] * np.where(promotion, uplift[:, None], 1.0)
    mean *= alive
    del trend, alive
    scale = mean / dispersion[:, None]
    quantity = rng.poisson(rng.gamma(dispersion[:, None], scale))
    del mean, scale
    rows, days = np.nonzero(quantity > 0)
    out = {
        "dept": dept,
        "tags": tags,
        "series": (block * n + rows).astype(np.int32),
        "day": days.astype(np.int32),
        "promotion": promotion[rows, days],
        "quantity": quantity[rows, days].astype(np.int32),
    }
    if prices:
        inflation = 1.0 + 0.02 * days / 365.25
        price = regular_price[item[rows]] * store_price[rows] * inflation
        price = np.where(out["promotion"], price * (1.0 - discount[rows]), price)
        out["price"] = np.round(price, 2).astype(np.float32)
    return out


def _concat_field(
    blocks: list[dict[str, np.ndarray]], name: str, keep: np.ndarray | None = None
) -> np.ndarray:
    """One field of every block, end to end (rows where ``keep``); the blocks drop theirs."""
    joined = np.concatenate([block.pop(name) for block in blocks])
    return joined if keep is None else joined[keep]


def _item_names(dept: np.ndarray) -> np.ndarray:
    """``FOODS_3_001``...: the department and the item's number within it, from 1."""
    order = np.argsort(dept, kind="stable")
    sorted_dept = dept[order]
    first = np.searchsorted(sorted_dept, sorted_dept, side="left")
    number = np.empty(len(dept), dtype=int)
    number[order] = np.arange(len(dept)) - first + 1
    prefix = np.array(list(M5_DEPARTMENTS))[dept]
    return np.char.add(np.char.add(prefix, "_"), np.char.zfill(number.astype(str), 3))


def _tag_combinations() -> list[str]:
    """The "|"-joined tags of each bit mask over TAGS, in mask order (0 is no tag)."""
    return [
        "|".join(sorted(tag for bit, tag in enumerate(TAGS) if mask >> bit & 1))
        for mask in range(1 << len(TAGS))
    ]
