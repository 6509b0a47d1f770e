"""The feedback loop: Hedge (exponentiated gradient) over factors, shrunk toward a prior while history is short."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def hedge_step(
    log_weights: npt.NDArray[np.float64], losses: npt.NDArray[np.float64], learning_rate: float
) -> npt.NDArray[np.float64]:
    """One Hedge update in log space: w_f ← w_f · exp(-η · loss_f); the result is re-centred (max 0).

    >>> hedge_step(np.zeros(2), np.array([0.0, 1.0]), 1.0).round(3).tolist()
    [0.0, -1.0]
    """
    updated = log_weights - learning_rate * losses
    return updated - updated.max()


def to_weights(log_weights: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Softmax of log weights."""
    exp = np.exp(log_weights - log_weights.max())
    return exp / exp.sum()


def rank_losses(scaled_ranks: npt.NDArray[np.float64], strength: float) -> npt.NDArray[np.float64]:
    """Each factor's loss for one event: the acted item's scaled rank under that factor (0 = ranked first).

    For a negative event (a skip, a low rating) a factor that ranked the item high was wrong, so the loss flips.
    """
    ranks = np.clip(scaled_ranks, 0.0, 1.0)
    return ranks if strength >= 0 else 1.0 - ranks


def shrink_to_prior(
    weights: npt.NDArray[np.float64], prior: npt.NDArray[np.float64], n_feedback: int, prior_strength: float
) -> npt.NDArray[np.float64]:
    """Blends a user's weights with the global prior: (n·w + κ·prior)/(n + κ); a new user gets the prior.

    >>> shrink_to_prior(np.array([1.0, 0.0]), np.array([0.5, 0.5]), 0, 10.0).tolist()
    [0.5, 0.5]
    """
    blended = (n_feedback * weights + prior_strength * prior) / (n_feedback + prior_strength)
    return blended / blended.sum()
