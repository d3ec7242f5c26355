"""What a send came to, in the terms the delivery loop acts on (light: no SDK here)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

BATCH_SIZE = 100
# Retried: the endpoint may answer differently later. Any other 4xx drops the event.
RETRY_STATUSES = frozenset({408, 429})


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    RETRY = "retry"
    REJECTED = "rejected"


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    detail: str = ""
    status: int | None = None
    retry_after: float | None = None
    # Failed at once, before any answer (refused, no such host): trying again within
    # the same second will not help, so a shutdown stops trying and keeps the events.
    unreachable: bool = False
