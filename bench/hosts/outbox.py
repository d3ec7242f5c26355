"""Outbox work measured in a process of its own (the bench's own process serves the
capture server, and would compete with it for the GIL).

Run by the bench as ``python -m bench.hosts.outbox WORK ...``; prints one JSON line.

    fill        write COUNT events into the outbox in one transaction (as ``flush`` and
                ``add`` find it), made with the config's instance ID
    flush       COUNT events waiting, then ``Delivery.drain`` to TELEMETRY_HOST: the SDK
                client is built first (timed apart: it imports posthog), then the drain
    add         COUNT events waiting, then ``Outbox.add`` of one event, ADDS times, each timed
    plain-flush the plain SDK: ``capture`` COUNT events, then ``flush()``
    plain-add   the plain SDK: ``capture`` of one event, ADDS times, each timed (its
                queue is in memory: nothing survives a crash)
    write-old   an outbox file as an older version left it: COUNT events in one table,
                written with plain ``json`` (no transaction, no cap) beside the config
                file, where versions before the state folder kept it
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.hosts.common import start_lifetime_cap


def make_events(config: Path, count: int) -> list[Any]:
    from slackonos_telemetry.config.settings import resolve_settings
    from slackonos_telemetry.telemetry.events import EventName, RuntimeFacts, make_event
    from slackonos_telemetry.telemetry.identity import ensure_instance_id

    instance_id = ensure_instance_id(resolve_settings(config)).value
    assert instance_id is not None, "the bench's configs can be written"
    facts = RuntimeFacts.gather("0.0.0-bench", "bench")
    return [make_event(EventName.HEARTBEAT, instance_id, facts, 3600.0) for _ in range(count)]


def fill(config: Path, count: int) -> dict[str, Any]:
    from tests.support.files import outbox_for

    outbox = outbox_for(config)
    events = make_events(config, count)
    began = time.perf_counter()
    with outbox.transaction() as transaction:
        transaction.events.insert_multiple(events)
    return {"filled": count, "fill_s": time.perf_counter() - began}


def flush(config: Path, count: int) -> dict[str, Any]:
    from slackonos_telemetry.telemetry.tracker import Tracker

    result = fill(config, count)
    tracker = Tracker(config)
    began = time.perf_counter()
    tracker.delivery.prepare_sender(tracker.settings())
    prepared = time.perf_counter()
    drained = tracker.delivery.drain(time.monotonic() + 60.0)
    ended = time.perf_counter()
    result.update(
        prepare_s=prepared - began,
        drain_s=ended - prepared,
        delivered=drained.delivered,
        left=tracker.outbox.stats().pending,
    )
    return result


def add(config: Path, count: int, adds: int) -> dict[str, Any]:
    from tests.support.files import outbox_for

    result = fill(config, count)
    outbox = outbox_for(config)
    events = make_events(config, adds)
    timings = []
    for event in events:
        began = time.perf_counter()
        outbox.add(event)
        timings.append(time.perf_counter() - began)
    result.update(add_s=timings, pending=outbox.stats().pending)
    return result


def plain_client() -> Any:
    from posthog import Posthog

    return Posthog(os.environ["TELEMETRY_API_KEY"], host=os.environ["TELEMETRY_HOST"])


def plain_flush(count: int) -> dict[str, Any]:
    client = plain_client()
    distinct_id = str(uuid.uuid4())
    began = time.perf_counter()
    for _ in range(count):
        client.capture("heartbeat", distinct_id=distinct_id, uuid=str(uuid.uuid4()))
    client.flush()
    ended = time.perf_counter()
    client.shutdown()
    return {"captured": count, "flush_s": ended - began}


def plain_add(adds: int) -> dict[str, Any]:
    client = plain_client()
    distinct_id = str(uuid.uuid4())
    timings = []
    for _ in range(adds):
        began = time.perf_counter()
        client.capture("heartbeat", distinct_id=distinct_id, uuid=str(uuid.uuid4()))
        timings.append(time.perf_counter() - began)
    client.shutdown()
    return {"add_s": timings}


def write_old(config: Path, count: int) -> dict[str, Any]:
    from slackonos_telemetry.config.paths import state_place

    events = make_events(config, count)
    table = {str(number): event for number, event in enumerate(events, start=1)}
    # Where versions before the state folder kept it: beside the config file. A bot
    # takes it over into its own outbox on its first transaction.
    path = state_place(config).old_outbox
    path.write_text(json.dumps({"events": table}), encoding="utf-8")
    return {"written": count, "bytes": path.stat().st_size}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "work", choices=("fill", "flush", "add", "plain-flush", "plain-add", "write-old")
    )
    parser.add_argument("--config", type=Path)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--adds", type=int, default=20)
    args = parser.parse_args()
    start_lifetime_cap()
    if args.work == "fill":
        result = fill(args.config, args.count)
    elif args.work == "flush":
        result = flush(args.config, args.count)
    elif args.work == "add":
        result = add(args.config, args.count, args.adds)
    elif args.work == "plain-flush":
        result = plain_flush(args.count)
    elif args.work == "plain-add":
        result = plain_add(args.adds)
    else:
        result = write_old(args.config, args.count)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
