"""Speaking to a Bolt app the way Slack does: requests signed with the signing secret,
POSTed over HTTP. The signature is slack_sdk's own (``SignatureVerifier``)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Mapping

from slack_sdk.signature import SignatureVerifier

POST_TIMEOUT_SECONDS = 30.0


def signed_headers(body: str, secret: str, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}


def post(
    url: str,
    body: str,
    headers: Mapping[str, str],
    content_type: str = "application/json",
    timeout: float = POST_TIMEOUT_SECONDS,
) -> int:
    """POST ``body``; the HTTP status, whatever it is."""
    request = urllib.request.Request(
        url,
        data=body.encode("utf-8"),
        method="POST",
        headers={"Content-Type": content_type, **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)
