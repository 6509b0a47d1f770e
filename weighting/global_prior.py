"""The global prior over factor weights, learned from every user's feedback (the cold-start weights)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from weighting.factors import FACTORS


class GlobalPrior:
    """Tracks each factor's average loss over all users and turns it into weights: softmax(-τ · mean loss)."""

    def __init__(self, smoothing: float = 0.01, temperature: float = 8.0) -> None:
        self.smoothing = smoothing
        self.temperature = temperature
        self.mean_loss = np.full(len(FACTORS), 0.5)
        self.updates = 0

    def update(self, losses: npt.NDArray[np.float64]) -> None:
        rate = max(self.smoothing, 1.0 / (self.updates + 1))
        self.mean_loss = (1.0 - rate) * self.mean_loss + rate * losses
        self.updates += 1

    def weights(self) -> npt.NDArray[np.float64]:
        logits = -self.temperature * self.mean_loss
        exp = np.exp(logits - logits.max())
        return exp / exp.sum()
