"""The weights over factors as a learned function of context: w_u = softmax(θ + r_u + A·ĉ_u).

θ is the prior (what a user with an average context and no history of their own is served), A maps the user's
standardised context ĉ_u (`weighting.context`) to a tilt of the log-weights, and r_u is the user's own residual
(kept in the user's state, shrunk toward 0). θ and A are learned online from every user's feedback; the context is
standardised by running moments of the contexts seen, so no scale is fixed in advance.
"""

from __future__ import annotations

import numpy as np

from weighting.fusion_learning import Weights, softmax

LOG_WEIGHT_RANGE = (-8.0, 8.0)
CONTEXT_CLIP = 3.0
"""A standardised context value stays within ±this."""


class ContextWeights:
    """θ, A and the running moments of the context; `step` moves θ and A by one feedback event's gradient."""

    def __init__(
        self, n_factors: int, n_context: int, learning_rate: float = 0.05, context_learning_rate: float = 0.005
    ) -> None:
        self.learning_rate = learning_rate
        self.context_learning_rate = context_learning_rate
        self.log_weights: Weights = np.zeros(n_factors)
        self.context_map: Weights = np.zeros((n_factors, n_context))
        self.context_count = 0
        self.context_mean: Weights = np.zeros(n_context)
        self.context_m2: Weights = np.zeros(n_context)
        self.updates = 0

    def standardised(self, context: Weights) -> Weights:
        """(c − mean) / std by the running moments, clipped; zeros until two contexts were observed."""
        if self.context_count < 2:
            return np.zeros_like(context)
        std = np.sqrt(self.context_m2 / (self.context_count - 1))
        scaled = np.divide(context - self.context_mean, std, out=np.zeros_like(context), where=std > 1e-9)
        return np.clip(scaled, -CONTEXT_CLIP, CONTEXT_CLIP)

    def observe(self, context: Weights) -> None:
        """Adds one context to the running moments (Welford's update)."""
        self.context_count += 1
        delta = context - self.context_mean
        self.context_mean = self.context_mean + delta / self.context_count
        self.context_m2 = self.context_m2 + delta * (context - self.context_mean)

    def logits(self, residual: Weights, standardised: Weights) -> Weights:
        return self.log_weights + residual + self.context_map @ standardised

    def weights(self, residual: Weights, standardised: Weights) -> Weights:
        """The weights served to a user with this residual and standardised context (summing to 1)."""
        return softmax(self.logits(residual, standardised))

    def step(self, gradient: Weights, standardised: Weights) -> None:
        """θ and A climb one event's gradient of the log-likelihood with respect to the logits."""
        self.log_weights = np.clip(self.log_weights + self.learning_rate * gradient, *LOG_WEIGHT_RANGE)
        self.context_map = np.clip(
            self.context_map + self.context_learning_rate * np.outer(gradient, standardised), *LOG_WEIGHT_RANGE)
        self.updates += 1

    def prior(self) -> Weights:
        """The weights at the average context without a residual."""
        return softmax(self.log_weights)


def residual_step(residual: Weights, gradient: Weights, learning_rate: float, shrinkage: float,
                  bound: float) -> Weights:
    """A user's residual after one feedback event: shrunk toward 0, then a step along the event's gradient.

    >>> residual_step(np.array([1.0, -1.0]), np.array([2.0, 0.0]), 0.5, 0.1, 1.5).tolist()
    [1.5, -0.9]
    """
    return np.clip((1.0 - shrinkage) * residual + learning_rate * gradient, -bound, bound)
