"""A human reason for each recommended item, naming the user's own event that most supports it."""

from __future__ import annotations

from collections.abc import Sequence

from sinks.catalogue import Catalogue
from weighting.factors import Factor
from weighting.weight_update import Anchor

VERBS = {"view": "viewed", "click": "clicked", "cart": "added to your cart", "purchase": "bought", "rating": "rated"}
GENERIC = {
    Factor.POPULARITY: "popular right now",
    Factor.FRESHNESS: "new in the catalogue",
    Factor.QUERY: "matches your recent searches",
}


def reasons_for(
    top_factor: Sequence[int], nearest_anchor: Sequence[int], anchors: Sequence[Anchor],
    catalogue: Catalogue,
) -> list[str]:
    """One reason per item: its nearest anchor (an index into `anchors`), unless a non-personal factor dominates
    its score or the user has no anchor.

    >>> anchors = [Anchor("a", "purchase", 1.0), Anchor("b", "view", 0.5)]
    >>> from sinks.catalogue import CatalogueItem
    >>> catalogue = Catalogue(1)
    >>> catalogue.upsert([CatalogueItem("a", "Dune"), CatalogueItem("b", "Emma")], {"a": [1.0], "b": [0.0]})
    >>> reasons_for([Factor.LONG_TERM, Factor.SHORT_TERM, Factor.POPULARITY], [0, 1, 1], anchors, catalogue)
    ['because you bought Dune', 'because you viewed Emma', 'popular right now']
    """
    reasons = []
    for factor, nearest in zip(top_factor, nearest_anchor, strict=True):
        if factor in GENERIC or not anchors:
            reasons.append(GENERIC.get(Factor(factor), "popular right now"))
            continue
        anchor = anchors[nearest]
        title = catalogue.items[catalogue.index[anchor.item_id]].title
        reasons.append(f"because you {VERBS.get(anchor.kind, 'liked')} {title}")
    return reasons
