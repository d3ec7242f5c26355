"""A fresh bench process: what telemetry adds to a host's start, and to its first commands.

The host has slack_bolt imported and its App built (with one ``ping`` listener)
before the clock starts, as a real host does. Then, timed on the main thread:

    ours / disabled   ``import slackonos_telemetry`` + ``register(app, config_path=...)``
    plain             ``import posthog`` + ``Posthog(key, host=url)``
    none              nothing

Right after that, the host's first commands: ``--commands`` ``ping`` messages sent
through ``app.dispatch`` one after another, each timed until its listener ran
(the listener answers with ``say``, a chat.postMessage to the local Slack stand-in).
With ``--spread S``, instead, a ``ping`` every S seconds for ``--window`` seconds,
to catch a command that arrives while the tracker imports posthog in the background
(it does so once the bot has been up 1 s and quiet 0.3 s); the worst latency
reported leaves out the first command.

The start cost is reported as wall time and as the main thread's CPU time.

Prints one JSON line and leaves with os._exit (no shutdown event to wait for);
a lifetime cap of 60 s ends it whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any

LIFETIME_SECONDS = 60.0


def message_body(index: int) -> str:
    ts = f"{time.time():.6f}"
    return json.dumps(
        {
            "token": "bench",
            "team_id": "T0LOCAL01",
            "api_app_id": "A0BENCH01",
            "type": "event_callback",
            "event_id": f"Ev{index:08d}",
            "event_time": int(time.time()),
            "event": {
                "type": "message",
                "channel": "C0GENERAL",
                "channel_type": "channel",
                "user": "U0HUMAN01",
                "text": "ping",
                "ts": ts,
            },
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", choices=("ours", "disabled", "plain", "none"), required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--slack-url", required=True)
    parser.add_argument("--commands", type=int, default=20)
    parser.add_argument("--spread", type=float, default=0.0)
    parser.add_argument("--window", type=float, default=2.5)
    args = parser.parse_args()
    timer = threading.Timer(LIFETIME_SECONDS, lambda: os._exit(4))
    timer.daemon = True
    timer.start()

    from slack_bolt import App, BoltRequest, Say
    from slack_sdk import WebClient

    app = App(
        client=WebClient(token="xoxb-bench", base_url=args.slack_url),
        signing_secret="bench-signing-secret",
        token_verification_enabled=False,
    )
    answered = threading.Semaphore(0)

    @app.message("ping")
    def ping(say: Say) -> None:
        say(text="pong")
        answered.release()

    keep: Any = None
    began = time.perf_counter()
    began_cpu = time.thread_time()
    if args.variant in ("ours", "disabled"):
        import slackonos_telemetry

        keep = slackonos_telemetry.register(app, config_path=args.config)
    elif args.variant == "plain":
        from posthog import Posthog

        keep = Posthog("phc_bench", host=os.environ["TELEMETRY_HOST"])
    start_cost = time.perf_counter() - began
    start_cpu = time.thread_time() - began_cpu
    register_done = time.perf_counter()

    def command(index: int) -> float:
        sent = time.perf_counter()
        app.dispatch(BoltRequest(body=message_body(index), mode="socket_mode"))
        if not answered.acquire(timeout=10):
            return float("inf")
        return time.perf_counter() - sent

    result: dict[str, Any] = {
        "variant": args.variant,
        "start_ms": start_cost * 1000,
        "start_cpu_ms": start_cpu * 1000,
    }
    if args.spread > 0:
        latencies: list[tuple[float, float]] = []
        index = 0
        while time.perf_counter() - register_done < args.window:
            at = time.perf_counter() - register_done
            latencies.append((at, command(index) * 1000))
            index += 1
            time.sleep(max(0.0, register_done + index * args.spread - time.perf_counter()))
        result["spread"] = latencies
        # The first command pays the host's own first-call costs (auth.test...): left out.
        result["spread_max_ms"] = max(latency for _, latency in latencies[1:])
    else:
        first = [command(index) * 1000 for index in range(args.commands)]
        result["commands_total_ms"] = sum(first)
        result["commands_max_ms"] = max(first)
        result["first_command_ms"] = first[0]
    del keep
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
