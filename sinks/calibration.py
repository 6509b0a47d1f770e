"""Factor scores on one scale: each factor standardised over the user's candidates, counts on a log scale.

A sparse count score (co-visitation, transitions, popularity) has a long tail: over the catalogue its top items sit
many standard deviations above the rest while dense cosines top out at a few, so fused as they are the fused list
is the sparse factor's list. Counts are first put on a log scale relative to their mean among the user's
candidates that have any (log1p(s / mean)), then every factor is z-scored over the user's candidates; a factor
constant over them (its highest score equal to its lowest) is 0 everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

STD_FLOOR = 1e-6
"""A factor whose scores vary less than this over a user's candidates is constant there: it contributes 0."""

Segments = npt.NDArray[np.int64]


def segment_sums(values: npt.NDArray[np.float32], offsets: Segments) -> npt.NDArray[np.float32]:
    """Column sums of `values` (rows × columns) per segment [offsets[b], offsets[b+1]), empty segments 0.

    >>> segment_sums(np.array([[1.0], [2.0], [4.0]]), np.array([0, 2, 2, 3])).ravel().tolist()
    [3.0, 0.0, 4.0]
    """
    sums = np.zeros((len(offsets) - 1, values.shape[1]), values.dtype)
    lengths = np.diff(offsets)
    full = np.flatnonzero(lengths)
    if len(full):
        sums[full] = np.add.reduceat(values, offsets[full], axis=0)
    return sums


def segment_constant(values: npt.NDArray[np.float32], offsets: Segments) -> npt.NDArray[np.bool_]:
    """Per segment and column, whether every value is the same (empty segments are constant).

    >>> segment_constant(np.array([[1.0, 1.0], [1.0, 2.0], [4.0, 4.0]]), np.array([0, 2, 2, 3])).tolist()
    [[True, False], [True, True], [True, True]]
    """
    constant = np.ones((len(offsets) - 1, values.shape[1]), bool)
    full = np.flatnonzero(np.diff(offsets))
    if len(full):
        starts = offsets[full]
        constant[full] = np.maximum.reduceat(values, starts, axis=0) == np.minimum.reduceat(values, starts, axis=0)
    return constant


def calibrate(
    raw: npt.NDArray[np.floating], offsets: Segments, count_factors: Sequence[int]
) -> npt.NDArray[np.float32]:
    """The calibrated scores of every candidate (candidates × factors; a user's candidates are one segment).

    >>> raw = np.array([[0.0, 1.0], [0.0, 2.0], [3.0, 3.0], [5.0, 1.0]])
    >>> calibrate(raw, np.array([0, 3, 4]), count_factors=[0]).astype(float).round(3).tolist()
    [[-0.707, -1.225], [-0.707, 0.0], [1.414, 1.225], [0.0, 0.0]]
    """
    x = np.array(raw, np.float32)
    lengths = np.diff(offsets)
    segment = np.repeat(np.arange(len(lengths)), lengths)
    if len(count_factors):
        counts = np.maximum(x[:, count_factors], 0.0)
        positive_sum = segment_sums(counts, offsets)
        positive_n = segment_sums((counts > 0).astype(np.float32), offsets)
        mean = np.divide(positive_sum, positive_n, out=np.ones_like(positive_sum), where=positive_n > 0)
        x[:, count_factors] = np.log1p(counts / mean[segment])
    n = np.maximum(lengths, 1)[:, None].astype(np.float32)
    mean = segment_sums(x, offsets) / n
    centred = x - mean[segment]
    std = np.sqrt(segment_sums(np.square(centred), offsets) / n)
    varies = (std > STD_FLOOR) & ~segment_constant(x, offsets)
    scale = np.where(varies, 1.0 / np.maximum(std, STD_FLOOR), 0.0)
    return (centred * scale[segment]).astype(np.float32, copy=False)
