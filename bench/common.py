"""What the figures share: the plan of a run, a table row, the median and spread of rounds,
the environment of every process. Files, processes and waiting are the tests' own
(``tests.support``)."""

from __future__ import annotations

import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.environment import clean_environ
from tests.support.files import write_config

API_KEY = "phc_bench"
DEADLINE = 2.0  # TELEMETRY_SHUTDOWN_TIMEOUT's default
DEADLINE_MARGIN = 0.25
HOST_LIFETIME = 600.0  # every process the bench starts ends by itself after this
ROUNDS = 3


@dataclass(frozen=True)
class Plan:
    quick: bool
    starts_per_round: int  # start cost: fresh processes per variant in one round
    plain_cap: float  # the plain SDK's slow exits are killed after this long
    idle_window: float  # idle CPU: seconds measured, scaled to 60
    outage: float  # events lost: seconds the endpoint is down
    recovery_cap: float  # events lost: longest wait for the outbox to empty after it
    slack_requests: int  # Slack latency: requests of each command in one round
    ack_requests: int  # host ack: requests in one round
    long_requests: int  # long messages: requests of each message to each bot in one round

    @staticmethod
    def make(quick: bool) -> Plan:
        if quick:
            return Plan(True, 1, 20.0, 15.0, 12.0, 20.0, 60, 40, 20)
        return Plan(False, 3, 90.0, 60.0, 30.0, 30.0, 200, 150, 75)


@dataclass
class Row:
    key: str
    figure: str
    target: str
    ours: str
    plain: str
    passed: bool | None  # None: reported, no target
    numbers: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return "info"
        return "PASS" if self.passed else "FAIL"


# -- rounds --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    """One figure measured over rounds; a missing measurement (killed at a cap) is inf."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Spread:
        return cls(tuple(math.inf if value is None else float(value) for value in values))

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else math.nan

    @property
    def low(self) -> float:
        return min(self.values, default=math.nan)

    @property
    def high(self) -> float:
        return max(self.values, default=math.nan)

    def show(self, unit: Callable[[float], str]) -> str:
        """``median [min - max]``."""
        if len(self.values) == 1:
            return unit(self.median)
        return f"{unit(self.median)} [{unit(self.low)} - {unit(self.high)}]"


def ms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "none" if math.isnan(seconds) else "∞"
    return f"{seconds * 1000:.1f} ms"


def secs(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "none" if math.isnan(seconds) else "∞"
    return f"{seconds:.2f} s"


def capped(cap: float) -> Callable[[float], str]:
    """Seconds, with a process killed at ``cap`` shown as such."""
    return lambda seconds: secs(seconds) if math.isfinite(seconds) else f"killed at {cap:g} s"


def mib(size: float) -> str:
    return f"{size / 2**20:+.1f} MiB"


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    index = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# -- processes' environment ----------------------------------------------------------------


def use_bytecode_cache() -> Path:
    """Every process the bench starts runs with compiled bytecode cached, as an installed
    wheel has it.

    This machine sets PYTHONDONTWRITEBYTECODE=1 and the package is an editable install:
    without this every host would compile the package from source at each start. The
    cache sits in the temp folder (kept between runs), never in the repo.
    """
    cache = Path(tempfile.gettempdir()) / "slackonos-bench-pycache"
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(cache)
    return cache


def host_env(**extra: str) -> dict[str, str]:
    """The environment of a bench process: none of the developer's settings (so the state
    folder is the one beside the config, and TELEMETRY_NOTICE_GRACE_SECONDS=0: a bot that
    posts its first-run notice does not hold its events for an hour), a lifetime cap,
    and ``extra``."""
    env = clean_environ()
    env["BENCH_HOST_LIFETIME"] = str(HOST_LIFETIME)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def telemetry_env(host_url: str, **extra: str) -> dict[str, str]:
    return host_env(TELEMETRY_HOST=host_url, TELEMETRY_API_KEY=API_KEY, **extra)


@dataclass(frozen=True)
class Context:
    """One run: its plan, its work folder, and the Slack stand-in every host talks to."""

    plan: Plan
    root: Path
    slack_url: str

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def config(self, name: str, **data: Any) -> Path:
        """A fresh config file of a bot that posted its first-run notice before (no
        notice, no Web API call, no write at start), with ``data``."""
        path = self.root / name / "config" / "config.json"
        write_config(path, {"telemetryNoticeShown": True, **data})
        return path
