"""Pure per-user logic: interest profiles, entropy, the online update of factor weights, cold-start priors."""

from weighting.factors import FACTORS, Factor
from weighting.user_state import UserState

__all__ = ["FACTORS", "Factor", "UserState"]
