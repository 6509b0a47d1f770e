"""The model's shared signals as bytes, so that a restarted worker resumes them instead of starting empty.

Popularity, co-visitation, transitions and the sequence model are what all users' events taught the model, and
the context → weight map is what every user's weights come from; none of it is in any user's state. A snapshot
holds them keyed by item id (catalogue rows depend on the order items arrived in, which differs between runs),
with the fingerprints of the events they were fed, so events delivered again after a restore are not counted
twice (`sinks.fed_events`).
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from sinks.covisitation import NeighbourCounts
from sinks.decayed_counts import ForwardDecay
from sinks.online_model import OnlineModel
from sinks.sequence_model import SequenceModel

NO_LANDMARK = math.nan


@dataclass(frozen=True)
class SharedSignals:
    """The arrays of one snapshot (each field one array of the `.npz` archive)."""

    item_ids: npt.NDArray[np.str_]
    popularity_rows: npt.NDArray[np.int64]
    popularity_counts: npt.NDArray[np.float64]
    popularity_landmark: float
    covisit_rows: npt.NDArray[np.int64]
    covisit_columns: npt.NDArray[np.int64]
    covisit_values: npt.NDArray[np.float64]
    covisit_occurrences: npt.NDArray[np.float64]
    covisit_landmark: float
    transition_rows: npt.NDArray[np.int64]
    transition_columns: npt.NDArray[np.int64]
    transition_values: npt.NDArray[np.float64]
    transition_landmark: float
    prior_log_weights: npt.NDArray[np.float64]
    context_map: npt.NDArray[np.float64]
    context_moments: npt.NDArray[np.float64]
    """The running count, mean and sum of squared deviations of the contexts (3 × context features)."""
    prior_updates: int
    sequence_model: npt.NDArray[np.uint8]
    """The sequence model's own bytes (`SequenceModel.to_bytes`)."""
    fed_events: npt.NDArray[np.int64]
    fed_total: int
    log_offset: int
    """The shared log's next offset to fold: what these signals hold up to."""

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, **{spec.name: getattr(self, spec.name) for spec in fields(self)})
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, raw: bytes) -> SharedSignals:
        """Every field read before the caller changes anything (a missing one raises here)."""
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            return cls(**{spec.name: archive[spec.name] for spec in fields(cls)})


def shared_snapshot(model: OnlineModel, log_offset: int) -> bytes:
    """The shared signals of `model`, folded up to `log_offset` (call it where they are updated, so that it sees
    them whole)."""
    scorer, weights = model.scorer, model.weights
    covisit_rows, covisit_columns, covisit_values = scorer.covisitation.counts.pairs()
    transition_rows, transition_columns, transition_values = scorer.transitions.counts.pairs()
    counts = scorer.popularity.counts
    n_items = len(model.catalogue)
    popular = np.flatnonzero(counts[:n_items])
    occurrences = np.zeros(n_items)
    known = min(n_items, len(scorer.covisitation.occurrences))
    occurrences[:known] = scorer.covisitation.occurrences[:known]
    moments = np.stack([np.full_like(weights.context_mean, weights.context_count), weights.context_mean,
                        weights.context_m2])
    return SharedSignals(
        item_ids=np.array([item.item_id for item in model.catalogue.items], dtype=np.str_),
        popularity_rows=popular,
        popularity_counts=counts[popular],
        popularity_landmark=_landmark(scorer.popularity.decay),
        covisit_rows=covisit_rows,
        covisit_columns=covisit_columns,
        covisit_values=covisit_values,
        covisit_occurrences=occurrences,
        covisit_landmark=_landmark(scorer.covisitation.decay),
        transition_rows=transition_rows,
        transition_columns=transition_columns,
        transition_values=transition_values,
        transition_landmark=_landmark(scorer.transitions.decay),
        prior_log_weights=weights.log_weights,
        context_map=weights.context_map,
        context_moments=moments,
        prior_updates=weights.updates,
        sequence_model=np.frombuffer(model.sequence.to_bytes(), np.uint8),
        fed_events=model.fed.to_array(),
        fed_total=model.fed.total,
        log_offset=log_offset,
    ).to_bytes()


def restore_shared(model: OnlineModel, raw: bytes) -> tuple[int, int]:
    """Loads a snapshot into `model`, whose shared signals must still be empty, mapping items to its catalogue's
    rows (counts of items it does not have are left out). Returns how many co-visitation pairs were restored and
    the shared log's offset they were folded up to."""
    scorer, weights = model.scorer, model.weights
    if scorer.covisitation.counts.used or scorer.popularity.counts.any() or weights.updates:
        raise ValueError("shared signals can only be restored into a model that has learned nothing yet")
    data = SharedSignals.from_bytes(raw)
    sequence = SequenceModel.read(data.sequence_model.tobytes())
    if data.prior_log_weights.shape != weights.log_weights.shape or \
            data.context_map.shape != weights.context_map.shape:
        raise ValueError("the snapshot's weights range over other factors or contexts")
    new_row = np.array([model.catalogue.index.get(item_id, -1) for item_id in data.item_ids.tolist()],
                       dtype=np.int64)
    rows = new_row[data.popularity_rows]
    known = rows >= 0
    if known.any():
        scorer.popularity.counts = np.zeros(int(rows.max()) + 1)
        scorer.popularity.counts[rows[known]] = data.popularity_counts[known]
    occurrences = np.zeros(len(model.catalogue))
    mapped = new_row >= 0
    occurrences[new_row[mapped]] = data.covisit_occurrences[mapped]
    scorer.covisitation.occurrences = occurrences
    pairs = _restore_pairs(scorer.covisitation.counts, new_row, data.covisit_rows, data.covisit_columns,
                           data.covisit_values)
    _restore_pairs(scorer.transitions.counts, new_row, data.transition_rows, data.transition_columns,
                   data.transition_values)
    _set_landmark(scorer.popularity.decay, float(data.popularity_landmark))
    _set_landmark(scorer.covisitation.decay, float(data.covisit_landmark))
    _set_landmark(scorer.transitions.decay, float(data.transition_landmark))
    weights.log_weights = data.prior_log_weights.copy()
    weights.context_map = data.context_map.copy()
    weights.context_count = int(data.context_moments[0, 0]) if data.context_moments.size else 0
    weights.context_mean, weights.context_m2 = data.context_moments[1].copy(), data.context_moments[2].copy()
    weights.updates = int(data.prior_updates)
    model.sequence.restore(sequence, new_row)
    model.fed.restore(data.fed_events, int(data.fed_total))
    return pairs, int(data.log_offset)


def _restore_pairs(counts: NeighbourCounts, new_row: npt.NDArray[np.int64], rows: npt.NDArray[np.int64],
                   columns: npt.NDArray[np.int64], values: npt.NDArray[np.float64]) -> int:
    """Adds the pairs whose two items this catalogue has; returns how many."""
    pair_rows, pair_columns = new_row[rows], new_row[columns]
    kept = (pair_rows >= 0) & (pair_columns >= 0)
    for row, column, value in zip(pair_rows[kept].tolist(), pair_columns[kept].tolist(), values[kept].tolist(),
                                  strict=True):
        counts.add(row, column, value)
    return int(kept.sum())


def _landmark(decay: ForwardDecay) -> float:
    return NO_LANDMARK if decay.landmark is None else decay.landmark


def _set_landmark(decay: ForwardDecay, landmark: float) -> None:
    decay.landmark = None if math.isnan(landmark) else landmark


def shared_digest(model: OnlineModel) -> dict[str, float | int | str]:
    """What the shared signals hold, independent of catalogue rows: totals (exactly rounded, so in no order), pair
    counts and a fingerprint of every count, the prior and the context map by item id (two models that folded the
    same increments in the same order have the same fingerprint)."""
    scorer, weights, ids = model.scorer, model.weights, [item.item_id for item in model.catalogue.items]
    digest = hashlib.blake2b(digest_size=16)
    popularity = scorer.popularity.counts[: len(ids)]
    _digest_by_item(digest, ids, popularity, ":")
    pair_totals = {}
    for name, counts in (("covisit", scorer.covisitation.counts), ("transition", scorer.transitions.counts)):
        rows, columns, values = counts.pairs()
        digest.update(name.encode())
        named = zip([ids[row] for row in rows.tolist()], [ids[column] for column in columns.tolist()],
                    values.tolist(), strict=True)
        for row, column, value in sorted(named):
            digest.update(f"{row}>{column}:{value!r};".encode())
        pair_totals[name] = (len(values), math.fsum(values.tolist()))
    _digest_by_item(digest, ids, scorer.covisitation.occurrences[: len(ids)], "#")
    digest.update(b"".join(array.tobytes() for array in (weights.log_weights, weights.context_map,
                                                          weights.context_mean, weights.context_m2)))
    digest.update(f"{weights.context_count};{model.fed.total}".encode())
    return {
        "events": model.fed.total, "popularity_total": math.fsum(popularity.tolist()),
        "covisit_pairs": pair_totals["covisit"][0], "covisit_total": pair_totals["covisit"][1],
        "transition_pairs": pair_totals["transition"][0], "transition_total": pair_totals["transition"][1],
        "prior_updates": weights.updates, "fingerprint": digest.hexdigest(),
    }


def _digest_by_item(digest: hashlib.blake2b, ids: list[str], counts: npt.NDArray[np.float64], mark: str) -> None:
    """Adds each nonzero count by its item id, in item id order (so in no catalogue order)."""
    for item_id, count in sorted((ids[row], float(counts[row])) for row in np.flatnonzero(counts)):
        digest.update(f"{item_id}{mark}{count!r};".encode())
