"""The small built-in catalogue shipped with the package (a few hundred items across eight topics)."""

from __future__ import annotations

import time
from pathlib import Path

from streams.events import Item, parse_item


def builtin_catalogue() -> list[Item]:
    text = (Path(__file__).parent / "data" / "catalogue.jsonl").read_text(encoding="utf-8")
    now = int(time.time() * 1000)
    return [parse_item(line.encode(), now) for line in text.splitlines() if line.strip()]
