"""Ablations of the dynamic weights, learned side by side with the model on the same judged rankings.

An arm is the model's context → weight map (`weighting.context_weights`) restricted: some factors left out, or no
context, or no per-user residual. It is served, judged and stepped exactly as the model is on every feedback
event, so its hits are paired with the model's on the same events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sinks.online_model import USER_LOG_WEIGHT_BOUND, Judgement
from weighting.config import WeightingConfig
from weighting.context import CONTEXT_FEATURES
from weighting.context_weights import ContextWeights, residual_step
from weighting.factors import FACTORS, Factor
from weighting.fusion_learning import Weights, feedback_gradient


@dataclass(frozen=True)
class ArmSpec:
    name: str
    left_out: tuple[Factor, ...] = ()
    context: bool = True
    residual: bool = True


class FusionArm:
    """One ablation's weights, learned online from the judgements it is shown."""

    def __init__(self, spec: ArmSpec, config: WeightingConfig) -> None:
        self.spec = spec
        self.config = config
        self.weights = ContextWeights(len(FACTORS), len(CONTEXT_FEATURES), config.prior_learning_rate,
                                      config.context_learning_rate)
        self.residuals: dict[str, Weights] = {}
        self.kept = np.ones(len(FACTORS))
        self.kept[list(spec.left_out)] = 0.0

    def served(self, judgement: Judgement) -> Weights:
        """The arm's weights for the judged user: its own logits, with the factors the model had no use for at
        that moment (weight 0 in effect) and the arm's left-out factors at 0, the query's scaled as the model's."""
        residual = self.residuals.get(judgement.user_id) if self.spec.residual else None
        context = judgement.standardised if self.spec.context else np.zeros(len(CONTEXT_FEATURES))
        weights = self.weights.weights(np.zeros(len(FACTORS)) if residual is None else residual, context) * self.kept
        weights *= judgement.weights > 0
        weights[Factor.QUERY] *= judgement.context[CONTEXT_FEATURES.index("search_recency")]
        total = weights.sum()
        return weights / total if total > 0 else weights

    def learn(self, judgement: Judgement, weights: Weights) -> None:
        if judgement.target < 0:
            return
        gradient = feedback_gradient(judgement.candidates.calibrated, weights, judgement.target,
                                     self.config.fusion_sharpness, judgement.wanted)
        context = judgement.standardised if self.spec.context else np.zeros(len(CONTEXT_FEATURES))
        self.weights.step(gradient, context)
        if self.spec.residual:
            residual = self.residuals.get(judgement.user_id, np.zeros(len(FACTORS)))
            self.residuals[judgement.user_id] = residual_step(residual, gradient, self.config.learning_rate,
                                                              self.config.user_shrinkage, USER_LOG_WEIGHT_BOUND)


def default_arms(config: WeightingConfig) -> Sequence[FusionArm]:
    """Without the text factors, without the sequence model, and the prior alone (no context, no residual)."""
    return [FusionArm(spec, config) for spec in (
        ArmSpec("dynamic without text factors", left_out=(Factor.SHORT_TERM, Factor.LONG_TERM, Factor.QUERY)),
        ArmSpec("dynamic without the sequence model", left_out=(Factor.SEQUENCE,)),
        ArmSpec("dynamic without context", context=False),
        ArmSpec("prior only (no context, no residual)", context=False, residual=False),
    )]
