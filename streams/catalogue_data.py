"""The small built-in catalogue shipped with the package (a few hundred items across eight topics)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from encoders.cached_encoding import encode_with_cache
from encoders.item_text import item_text
from encoders.text_encoder import TextEncoder
from encoders.vector_cache import VectorCache
from sinks.catalogue import Catalogue, CatalogueItem
from streams.events import Item, parse_item


def upsert_items(
    catalogue: Catalogue, items: Sequence[Item], encoder: TextEncoder, cache: VectorCache | None,
    *, progress: bool = False,
) -> int:
    """Encodes items (through the vector cache) and upserts them, the last version of an id winning; returns how
    many texts were newly encoded."""
    latest = {item.item_id: item for item in items}
    vectors, encoded = encode_with_cache(
        {item_id: item_text(item.title, item.text, item.tags) for item_id, item in latest.items()}, encoder, cache,
        progress=progress,
    )
    catalogue.upsert([CatalogueItem(i.item_id, i.title, i.tags, i.ts) for i in latest.values()], vectors)
    return encoded


def builtin_catalogue() -> list[Item]:
    text = (Path(__file__).parent / "data" / "catalogue.jsonl").read_text(encoding="utf-8")
    now = int(time.time() * 1000)
    return [parse_item(line.encode(), now) for line in text.splitlines() if line.strip()]
