"""The boolean words accepted everywhere a person types a yes or a no."""

from __future__ import annotations

TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")
BOOLEAN_WORDS_TEXT = "true/false, yes/no, on/off, 1/0"


def parse_bool_word(text: str) -> bool | None:
    """True or False for a boolean word (any case, spaces ignored), else None."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None
