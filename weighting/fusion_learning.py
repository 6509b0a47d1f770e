"""The feedback loop: factor weights learned from the fused ranking the user was served.

When a user acts on an item, every factor is judged by how much higher it scored that item than the items the
fused ranking put first: for p = softmax(s · Σ_f w_f z_f) over the user's candidates (z the calibrated factor
scores, s a fixed sharpness), the gradient of log p(item) with respect to the weights is
s · (z(item) − E_p[z]). The weights are a softmax of logits, so the step taken is that gradient through the
softmax's Jacobian: w ∘ (g − w·g).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Weights = npt.NDArray[np.float64]


def softmax(logits: Weights) -> Weights:
    """
    >>> softmax(np.array([0.0, np.log(3.0)])).tolist()
    [0.25, 0.75]
    """
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


def listwise_gradient(
    calibrated: npt.NDArray[np.floating[Any]], weights: Weights, target: int, sharpness: float
) -> Weights:
    """The gradient of log p(target) with respect to the logits of `weights`, where `calibrated` is candidates ×
    factors and p = softmax(sharpness · calibrated @ weights) over the candidates.

    A factor that favoured the target more than the fusion's favourites did gets a positive gradient:

    >>> z = np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 2.0]])
    >>> g = listwise_gradient(z, np.array([0.5, 0.5]), 0, 1.0)
    >>> bool(g[0] > 0 > g[1]), round(float(g.sum()), 12)
    (True, 0.0)
    """
    z = np.asarray(calibrated, np.float64)
    fused = sharpness * (z @ weights)
    p = softmax(fused)
    gradient = sharpness * (z[target] - p @ z)
    return weights * (gradient - weights @ gradient)


def feedback_gradient(
    calibrated: npt.NDArray[np.floating[Any]], weights: Weights, target: int, sharpness: float, wanted: bool
) -> Weights:
    """`listwise_gradient`, negated for an event that says the user did not want the item (a skip)."""
    gradient = listwise_gradient(calibrated, weights, target, sharpness)
    return gradient if wanted else -gradient
