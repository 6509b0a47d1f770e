"""What every worker holds for the shared signals: resident memory per catalogue item and per co-visited pair.

    python -m bench.shared_memory [--items 200000 --pairs 2000000]

items: a catalogue of random 384-d text vectors, then a few thousand events folded (the sequence model's tables and
the count arrays grow to the catalogue), as resident set size before and after (torch's tensors are not seen by
tracemalloc); pairs: random (row, column) counts added to one `NeighbourCounts` (the co-visitation and the
transitions each keep one), as the bytes it allocated (tracemalloc: arrays and the per-row slot dicts).
"""

from __future__ import annotations

import argparse
import tracemalloc

import numpy as np

from sinks.catalogue import Catalogue, CatalogueItem
from sinks.covisitation import NeighbourCounts
from sinks.online_model import OnlineModel, UserEvent
from weighting.user_update import ProfileEvent

TEXT_DIM = 384
PAGE = 4096


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / 2**20


def per_item(n_items: int, rng: np.random.Generator) -> tuple[float, float]:
    """MiB for the catalogue alone and with the model's per-item state, for `n_items` items."""
    before = rss_mib()
    model = OnlineModel(Catalogue(TEXT_DIM))
    for start in range(0, n_items, 50_000):
        items = [CatalogueItem(f"item-{i:08d}", f"title of item {i}", (f"t{i % 50}",), 0)
                 for i in range(start, min(n_items, start + 50_000))]
        vectors = rng.normal(size=(len(items), TEXT_DIM)).astype(np.float32)
        model.catalogue.upsert(items, {item.item_id: vector for item, vector in zip(items, vectors, strict=True)})
    catalogue = rss_mib() - before
    events = [UserEvent(f"u{n % 500}", ProfileEvent(f"e{n}", "view", n * 1000, f"item-{rng.integers(n_items):08d}"))
              for n in range(3000)]
    model.learn_and_fold({}, events)
    return catalogue, rss_mib() - before


def per_pair(n_pairs: int, n_items: int, rng: np.random.Generator) -> tuple[int, float]:
    """Distinct pairs stored and MiB allocated for them."""
    rows, columns = rng.integers(0, n_items, n_pairs).tolist(), rng.integers(0, n_items, n_pairs).tolist()
    tracemalloc.start()
    counts = NeighbourCounts()
    for row, column in zip(rows, columns, strict=True):
        counts.add(row, column, 1.0)
    allocated, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return int(counts.size.sum()), allocated / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--pairs", type=int, default=2_000_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    catalogue, model = per_item(args.items, rng)
    print(f"{args.items} items: catalogue {catalogue:.0f} MiB ({catalogue * 2**20 / args.items:,.0f} B/item), "
          f"with the model's per-item state {model:.0f} MiB ({model * 2**20 / args.items:,.0f} B/item, "
          f"{model * 2**20 / args.items * 1e6 / 2**30:.1f} GiB per 1M items)")
    pairs, mib = per_pair(args.pairs, args.items, rng)
    print(f"{pairs} distinct pairs in one pair table: {mib:.0f} MiB ({mib * 2**20 / pairs:.0f} B/pair, "
          f"{mib * 2**20 / pairs * 1e7 / 2**30:.2f} GiB per 10M pairs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
