"""A human reason for each recommended item, naming the user's own event that most supports it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from weighting.factors import Factor
from weighting.weight_update import Anchor

VERBS = {"view": "viewed", "click": "clicked", "cart": "added to your cart", "purchase": "bought", "rating": "rated"}
GENERIC = {
    Factor.POPULARITY: "popular right now",
    Factor.FRESHNESS: "new in the catalogue",
    Factor.QUERY: "matches your recent searches",
}


def reasons_for(
    top_factor: Sequence[int],
    item_vectors: npt.NDArray[np.float32],
    anchors: Sequence[Anchor],
    anchor_vectors: npt.NDArray[np.float32],
    anchor_titles: Sequence[str],
) -> list[str]:
    """One reason per item: the anchor most similar to it, unless a non-personal factor dominates its score."""
    if anchors:
        best_anchor = (item_vectors @ anchor_vectors.T).argmax(axis=1)
    reasons = []
    for row, factor in enumerate(top_factor):
        if factor in GENERIC or not anchors:
            reasons.append(GENERIC.get(Factor(factor), "popular right now"))
            continue
        anchor = anchors[int(best_anchor[row])]
        reasons.append(f"because you {VERBS.get(anchor.kind, 'liked')} {anchor_titles[int(best_anchor[row])]}")
    return reasons
