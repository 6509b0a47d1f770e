"""Loaders for MovieLens directories (ml-latest-small / ml-latest CSVs, ml-100k, ml-1m) as items and events."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from streams.events import BehaviorEvent, Item


def _item(movie_id: str, title: str, genres: list[str], tags: list[str]) -> Item:
    extra = sorted(set(tags))[:20]
    return Item(item_id=movie_id, title=title, ts=0, text=", ".join(extra) if extra else None,
                tags=tuple(g for g in genres if g and g != "(no genres listed)"))


def _rating_events(rows: list[tuple[str, str, str, str]]) -> list[BehaviorEvent]:
    return [
        BehaviorEvent(event_id=f"{user}-{movie}-{ts}", user_id=user, kind="rating", ts=int(ts) * 1000,
                      item_id=movie, value=float(rating))
        for user, movie, rating, ts in rows
    ]


def _load_csv_layout(path: Path) -> tuple[list[Item], list[BehaviorEvent]]:
    tags: dict[str, list[str]] = defaultdict(list)
    if (path / "tags.csv").exists():
        with (path / "tags.csv").open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                tags[row["movieId"]].append(row["tag"].strip().lower())
    with (path / "movies.csv").open(encoding="utf-8") as fh:
        items = [
            _item(r["movieId"], r["title"], r["genres"].split("|"), tags[r["movieId"]]) for r in csv.DictReader(fh)
        ]
    with (path / "ratings.csv").open(encoding="utf-8") as fh:
        rows = [(r["userId"], r["movieId"], r["rating"], r["timestamp"]) for r in csv.DictReader(fh)]
    return items, _rating_events(rows)


ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                 "War", "Western")


def _load_100k(path: Path) -> tuple[list[Item], list[BehaviorEvent]]:
    items = []
    for line in (path / "u.item").read_text(encoding="latin-1").splitlines():
        fields = line.split("|")
        genres = [g for g, flag in zip(ML100K_GENRES, fields[5:], strict=False) if flag == "1"]
        items.append(_item(fields[0], fields[1], genres, []))
    rows = [tuple(line.split("\t")) for line in (path / "u.data").read_text().splitlines() if line]
    return items, _rating_events(rows)  # type: ignore[arg-type]


def _load_1m(path: Path) -> tuple[list[Item], list[BehaviorEvent]]:
    items = []
    for line in (path / "movies.dat").read_text(encoding="latin-1").splitlines():
        movie, title, genres = line.split("::")
        items.append(_item(movie, title, genres.split("|"), []))
    rows = [tuple(line.split("::")) for line in (path / "ratings.dat").read_text().splitlines() if line]
    return items, _rating_events(rows)  # type: ignore[arg-type]


def load_movielens(path: str | Path) -> tuple[list[Item], list[BehaviorEvent]]:
    """Items (title, genres as tags, user tags as text) and rating events sorted by time."""
    root = Path(path)
    if (root / "ratings.csv").exists():
        items, events = _load_csv_layout(root)
    elif (root / "u.data").exists():
        items, events = _load_100k(root)
    elif (root / "ratings.dat").exists():
        items, events = _load_1m(root)
    else:
        raise FileNotFoundError(f"{root} is not a MovieLens directory (no ratings.csv, u.data or ratings.dat)")
    events.sort(key=lambda e: (e.ts, e.event_id))
    return items, events
