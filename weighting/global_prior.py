"""The global prior over factor weights, learned from every user's feedback (the cold-start weights)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from weighting.factors import FACTORS
from weighting.fusion_learning import Weights, log_weight_step

LOG_WEIGHT_RANGE = (-8.0, 4.0)
TILT_RANGE = (-8.0, 8.0)


class GlobalPrior:
    """What every user starts from, learned from all users' feedback: log-weights, and how strongly the entropy
    and the drift of a user's interests tilt them. Each feedback event takes a small listwise gradient step."""

    def __init__(
        self, learning_rate: float = 0.01, clip: float = 5.0, entropy_strength: float = 0.0, drift_strength: float = 0.0
    ) -> None:
        self.learning_rate = learning_rate
        self.clip = clip
        self.log_weights: Weights = np.zeros(len(FACTORS))
        self.tilt_strengths: Weights = np.array([entropy_strength, drift_strength])
        self.updates = 0

    def update(self, gradient: Weights, weights: Weights, tilt_directions: npt.NDArray[np.float64]) -> None:
        """`gradient` as judged at the served `weights`, whose log-weights were tilted along `tilt_directions`
        (2 × factors, entropy then drift; see `fusion_learning.listwise_gradient`)."""
        stepped = log_weight_step(np.zeros(len(FACTORS)), gradient, weights, self.learning_rate, self.clip)
        self.log_weights = np.clip(self.log_weights + stepped, *LOG_WEIGHT_RANGE)
        self.tilt_strengths = np.clip(self.tilt_strengths + tilt_directions @ stepped, *TILT_RANGE)
        self.updates += 1

    def start_from(self, weights: Weights, floor: float = 0.02) -> None:
        """Points the prior at `weights` (a static fusion tuned on earlier data) at its learned overall scale (the
        softmax's sharpness); each factor keeps at least `floor` of the total, so that feedback can still raise it
        (a log-weight step is proportional to the weight)."""
        direction = np.maximum(weights / weights.sum(), floor)
        scale = np.exp(self.log_weights).sum()
        self.log_weights = np.clip(np.log(scale * direction / direction.sum()), *LOG_WEIGHT_RANGE)

    def weights(self) -> Weights:
        """The prior as weights summing to 1."""
        exp = np.exp(self.log_weights - self.log_weights.max())
        return exp / exp.sum()
