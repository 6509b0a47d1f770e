"""The text an item is encoded from."""

from collections.abc import Sequence


def item_text(title: str, text: str | None = None, tags: Sequence[str] = ()) -> str:
    """Joins title, tags and description into the encoder's input.

    >>> item_text("Heat", "A heist thriller.", ["crime", "action"])
    'Heat. crime, action. A heist thriller.'
    """
    parts = [title.strip()]
    if tags:
        parts.append(", ".join(tag.strip() for tag in tags if tag.strip()))
    if text:
        parts.append(text.strip())
    return ". ".join(part.rstrip(".") for part in parts if part) + "."
