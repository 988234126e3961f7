"""The choice that served a cluster, stored as JSON beside its model, so that the next
training run can keep it for the SKUs where the new choice does not beat it."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd

from forecast_assets.core.errors import ModelNotFoundError
from forecast_assets.core.pool.selection import SkuChoice
from forecast_assets.core.storage import ArtifactPath, artifact_path, atomic_write_text

FORMAT = 1


def save_choice(
    path: str | os.PathLike[str], choice: SkuChoice, skus: pd.Index, judged_at: str
) -> ArtifactPath:
    """Write ``choice`` (weights per SKU over the members) atomically, as data only."""
    document = {
        "format": FORMAT,
        "judged_at": judged_at,
        "names": list(choice.names),
        "skus": [str(s) for s in skus],
        "ensemble": choice.ensemble.tolist(),
        "weights": choice.weights.tolist(),
        "labels": [str(label) for label in choice.labels],
    }
    return atomic_write_text(path, json.dumps(document))


def load_choice(path: str | os.PathLike[str], skus: pd.Index) -> SkuChoice | None:
    """The stored choice re-indexed to ``skus`` (a SKU it did not serve gets no weight);
    None when there is none. An unreadable or malformed file raises ModelNotFoundError
    naming it."""
    stored = artifact_path(path)
    if not stored.exists():
        return None
    try:
        document = json.loads(stored.read_text())
        if document.get("format") != FORMAT:
            raise ValueError(f"format {document.get('format')!r}, expected {FORMAT}")
        names = tuple(str(n) for n in document["names"])
        weights = np.asarray(document["weights"], dtype=float)
        ensemble = np.asarray(document["ensemble"], dtype=float)
        labels = np.asarray(document["labels"], dtype=str)
        known = pd.Index(document["skus"])
        if weights.shape != (len(known), len(names)) or len(labels) != len(known):
            raise ValueError("weights, labels and SKUs do not match")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelNotFoundError(f"cannot read the stored choice {path}: {exc}") from exc
    rows = known.get_indexer(pd.Index(skus).astype(str))
    found = rows >= 0
    aligned = np.zeros((len(skus), len(names)))
    aligned[found] = weights[rows[found]]
    aligned_labels = np.full(len(skus), "", dtype=object)
    aligned_labels[found] = labels[rows[found]]
    return SkuChoice(names, ensemble, aligned, aligned_labels.astype(str))
