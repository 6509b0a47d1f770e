"""The model's shared signals as bytes, so that a restarted worker resumes them instead of starting empty.

Popularity and co-visitation are what all users' events taught the model, and the global prior is what a new
user starts from; none of it is in any user's state. A snapshot holds them keyed by item id (catalogue rows depend
on the order items arrived in, which differs between runs), with the fingerprints of the events they were fed,
so events delivered again after a restore are not counted twice (`sinks.fed_events`).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from sinks.decayed_counts import ForwardDecay
from sinks.online_model import OnlineModel

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
    covisit_landmark: float
    prior_log_weights: npt.NDArray[np.float64]
    prior_tilt_strengths: npt.NDArray[np.float64]
    prior_updates: int
    fed_events: npt.NDArray[np.int64]
    fed_total: int

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, **{spec.name: getattr(self, spec.name) for spec in fields(self)})
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, raw: bytes) -> SharedSignals:
        """Every field read before the caller changes anything (a missing one raises here)."""
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            return cls(**{spec.name: archive[spec.name] for spec in fields(cls)})


def shared_snapshot(model: OnlineModel) -> bytes:
    """The shared signals of `model` (call it where they are updated, so that it sees them whole)."""
    scorer, prior = model.scorer, model.prior
    rows, columns, values = scorer.covisitation.counts.pairs()
    counts = scorer.popularity.counts
    popular = np.flatnonzero(counts[: len(model.catalogue)])
    return SharedSignals(
        item_ids=np.array([item.item_id for item in model.catalogue.items], dtype=np.str_),
        popularity_rows=popular,
        popularity_counts=counts[popular],
        popularity_landmark=_landmark(scorer.popularity.decay),
        covisit_rows=rows,
        covisit_columns=columns,
        covisit_values=values,
        covisit_landmark=_landmark(scorer.covisitation.decay),
        prior_log_weights=prior.log_weights,
        prior_tilt_strengths=prior.tilt_strengths,
        prior_updates=prior.updates,
        fed_events=model.fed.to_array(),
        fed_total=model.fed.total,
    ).to_bytes()


def restore_shared(model: OnlineModel, raw: bytes) -> int:
    """Loads a snapshot into `model`, whose shared signals must still be empty, mapping items to its catalogue's
    rows (counts of items it does not have are left out). Returns how many co-visitation pairs were restored."""
    scorer = model.scorer
    if scorer.covisitation.counts.used or scorer.popularity.counts.any() or model.prior.updates:
        raise ValueError("shared signals can only be restored into a model that has learned nothing yet")
    data = SharedSignals.from_bytes(raw)
    new_row = np.array([model.catalogue.index.get(item_id, -1) for item_id in data.item_ids.tolist()],
                       dtype=np.int64)
    rows = new_row[data.popularity_rows]
    pair_rows, pair_columns = new_row[data.covisit_rows], new_row[data.covisit_columns]
    kept = (pair_rows >= 0) & (pair_columns >= 0)
    if data.prior_log_weights.shape != model.prior.log_weights.shape:
        raise ValueError("the snapshot's prior has another number of factors")
    known = rows >= 0
    if known.any():
        scorer.popularity.counts = np.zeros(int(rows.max()) + 1)
        scorer.popularity.counts[rows[known]] = data.popularity_counts[known]
    counts = scorer.covisitation.counts
    for row, column, value in zip(pair_rows[kept].tolist(), pair_columns[kept].tolist(),
                                  data.covisit_values[kept].tolist(), strict=True):
        counts.add(row, column, value)
    _set_landmark(scorer.popularity.decay, float(data.popularity_landmark))
    _set_landmark(scorer.covisitation.decay, float(data.covisit_landmark))
    model.prior.log_weights = data.prior_log_weights.copy()
    model.prior.tilt_strengths = data.prior_tilt_strengths.copy()
    model.prior.updates = int(data.prior_updates)
    model.fed.restore(data.fed_events, int(data.fed_total))
    return int(kept.sum())


def _landmark(decay: ForwardDecay) -> float:
    return NO_LANDMARK if decay.landmark is None else decay.landmark


def _set_landmark(decay: ForwardDecay, landmark: float) -> None:
    decay.landmark = None if math.isnan(landmark) else landmark
