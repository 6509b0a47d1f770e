"""The global prior over factor weights, learned from every user's feedback (the cold-start weights)."""

from __future__ import annotations

import numpy as np

from weighting.factors import FACTORS
from weighting.fusion_learning import Weights, log_weight_step

LOG_WEIGHT_RANGE = (-8.0, 4.0)


class GlobalPrior:
    """Log-weights every user starts from; each feedback event takes a small listwise gradient step on them."""

    def __init__(self, learning_rate: float = 0.01, clip: float = 5.0) -> None:
        self.learning_rate = learning_rate
        self.clip = clip
        self.log_weights: Weights = np.zeros(len(FACTORS))
        self.updates = 0

    def update(self, gradient: Weights, weights: Weights) -> None:
        """`gradient` as judged at the served `weights` (see `fusion_learning.listwise_gradient`)."""
        stepped = log_weight_step(self.log_weights, gradient, weights, self.learning_rate, self.clip)
        self.log_weights = np.clip(stepped, *LOG_WEIGHT_RANGE)
        self.updates += 1

    def weights(self) -> Weights:
        """The prior as weights summing to 1."""
        exp = np.exp(self.log_weights - self.log_weights.max())
        return exp / exp.sum()
