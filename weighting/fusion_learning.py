"""The feedback loop: factor weights learned from the fused ranking the user was served.

When a user acts on an item, every factor is judged by how much higher it scored that item than the items the
fused ranking put first: the gradient of the listwise softmax loss −log p(item), p = softmax(Σ_f w_f z_f) over
the user's candidates, is z_f(item) − E_p[z_f]. Log-weights take a gradient step, so weights stay positive and
their overall scale (the softmax's sharpness) is learned too; ranking only depends on their direction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Weights = npt.NDArray[np.float64]


def listwise_gradient(
    scores: npt.NDArray[np.floating[Any]], scale: Weights, weights: Weights, candidates: npt.NDArray[np.bool_],
    row: int,
) -> Weights:
    """z_f(row) − E_p[z_f] for each factor: how much factor f favoured item `row` over what the fusion favoured.

    `scores` is factors × items, raw; each factor is z-scored over the catalogue, z_f = (s_f − mean_f) · scale_f
    (`scale` is 1/std, 0 for a constant factor). Neither the softmax nor the difference depends on the means, so
    none is computed: p = softmax((w · scale) @ s) and the gradient is scale · (s[:, row] − s @ p). The candidates
    are the items the user could have been shown (`row` among them).

    >>> z = np.array([[3.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    >>> listwise_gradient(z, np.ones(2), np.array([0.0, 10.0]), np.ones(3, bool), 0).round(3).tolist()
    [3.0, -3.0]
    >>> listwise_gradient(z + 5.0, np.array([2.0, 1.0]), np.array([0.0, 10.0]), np.ones(3, bool), 0).round(3).tolist()
    [6.0, -3.0]
    """
    fused = np.where(candidates, (weights * scale) @ scores, -np.inf)
    p = np.exp(fused - fused.max())
    p /= p.sum()
    return scale * (scores[:, row] - scores @ p)


def log_weight_step(
    log_weights: Weights, gradient: Weights, weights: Weights, learning_rate: float, clip: float
) -> Weights:
    """One gradient step on log-weights for the listwise loss: θ_f += η · w_f · clip(g_f).

    For an event that says the user did not want the item (a skip) the caller passes −g.

    >>> log_weight_step(np.zeros(2), np.array([1.0, -9.0]), np.array([1.0, 2.0]), 0.5, 5.0).tolist()
    [0.5, -5.0]
    """
    return log_weights + learning_rate * weights * np.clip(gradient, -clip, clip)
