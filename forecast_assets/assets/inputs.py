"""Reading every partition of a per-cluster asset into an unpartitioned one."""

from collections.abc import Mapping
from typing import TypeVar

import dagster as dg

T = TypeVar("T")


def per_cluster(
    context: dg.AssetExecutionContext, name: str, value: T | Mapping[str, T]
) -> dict[str, T]:
    """The input ``name`` as {cluster: value}. Dagster's IO managers hand over a dict of
    partitions when there are several, but the bare value when there is only one cluster."""
    if isinstance(value, Mapping):
        return dict(value)
    (key,) = context.asset_partition_keys_for_input(name)
    return {key: value}
