"""The one small protocol every encoder implements."""

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt


class TextEncoder(Protocol):
    """Encodes a batch of texts into L2-normalised float32 vectors of a fixed dimension."""

    @property
    def model_name(self) -> str:
        """A stable name for the model, used as the vector-cache namespace."""
        ...

    @property
    def dim(self) -> int:
        """The vector dimension."""
        ...

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Returns an array of shape (len(texts), dim)."""
        ...
