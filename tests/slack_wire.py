"""Speaking to a Bolt app the way Slack does: signed requests over HTTP."""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.error
import urllib.request
from collections.abc import Mapping

POST_TIMEOUT_SECONDS = 10.0


def signed_headers(body: str, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's v0 request signature: HMAC-SHA256 of "v0:{timestamp}:{body}"."""
    stamp = int(time.time()) if timestamp is None else timestamp
    base = f"v0:{stamp}:{body}".encode()
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(stamp), "X-Slack-Signature": signature}


def post(
    url: str,
    body: str,
    headers: Mapping[str, str],
    content_type: str = "application/json",
) -> int:
    """POST ``body``; the HTTP status, whatever it is."""
    request = urllib.request.Request(
        url,
        data=body.encode("utf-8"),
        method="POST",
        headers={"Content-Type": content_type, **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=POST_TIMEOUT_SECONDS) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)
