"""Secrets never shown: the API key masked, user info taken out of URLs."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

_MASK_VISIBLE_HEAD = 8
_MASK_VISIBLE_TAIL = 3


def mask_api_key(key: str) -> str:
    """Enough of the key to tell which one it is, not enough to reuse it."""
    if not key:
        return "(none)"
    if len(key) <= _MASK_VISIBLE_HEAD + _MASK_VISIBLE_TAIL:
        return key[:2] + "..."
    return f"{key[:_MASK_VISIBLE_HEAD]}...{key[-_MASK_VISIBLE_TAIL:]}"


def shown_url(url: str) -> str:
    """``url`` without a user name or password, for status, Slack and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(not a URL)" if "@" in url else url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))
