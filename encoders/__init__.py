"""Text to vectors: the encoder protocol, the sentence-transformers encoder, item text and the vector cache."""

from encoders.item_text import item_text
from encoders.text_encoder import TextEncoder

__all__ = ["TextEncoder", "item_text"]
