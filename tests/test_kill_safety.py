"""Writes are atomic (docs/CONTRACT.md, "The config file"). A writer killed with SIGKILL
at any moment leaves the old file or the new one, whole, with every key it does not own
unchanged."""

from __future__ import annotations

import json
import random
import signal
import stat
import time
from pathlib import Path

from slackonos_telemetry.config.store import ConfigStore
from tests.support.environment import PYTHON, clean_environ
from tests.support.files import FOREIGN, assert_foreign_keys_kept, leftovers
from tests.support.processes import Process

KILLS = 60  # random moments: 60 reach the write, the rename and the fsync many times over
SEED = 20240611
MAX_DELAY_SECONDS = 0.030
READY_TIMEOUT_SECONDS = 15.0
REAP_TIMEOUT_SECONDS = 5.0
TEST_BUDGET_SECONDS = 60.0

# Waits for "go" on stdin (so a spare child can start up while another one is
# being killed), then toggles telemetryEnabled forever, announcing the first toggle.
WRITER_SCRIPT = """
import sys
from pathlib import Path
from slackonos_telemetry.config.store import ConfigStore

store = ConfigStore(Path(sys.argv[1]))
sys.stdin.readline()
value = True
store.update({"telemetryEnabled": value})
print("looping", flush=True)
while True:
    value = not value
    store.update({"telemetryEnabled": value})
"""


def start_writer(config_path: Path) -> Process:
    return Process([PYTHON, "-c", WRITER_SCRIPT, str(config_path)], env=clean_environ())


def test_sigkill_at_random_moments_never_damages_the_file(config_path: Path) -> None:
    config_path.parent.mkdir(parents=True)
    config_path.write_text(json.dumps(FOREIGN, indent=2), encoding="utf-8")
    config_path.chmod(0o644)
    rng = random.Random(SEED)
    seen_values: set[bool] = set()
    temp_files_seen = 0
    started = time.monotonic()

    spare = start_writer(config_path)
    children = [spare]
    try:
        for kill_number in range(KILLS):
            assert time.monotonic() - started < TEST_BUDGET_SECONDS, f"too slow at {kill_number}"
            child, spare = spare, start_writer(config_path)
            children.append(spare)
            start = child.send_line("go")
            looping = child.wait_for_line(
                lambda line: line == "looping", READY_TIMEOUT_SECONDS, start=start
            )
            assert looping is not None, child.describe()
            time.sleep(rng.uniform(0.0, MAX_DELAY_SECONDS))  # a random moment of its loop

            child.signal(signal.SIGKILL)
            assert child.wait_exit(REAP_TIMEOUT_SECONDS) == -signal.SIGKILL, child.describe()
            child.stop()
            children.remove(child)

            data = assert_foreign_keys_kept(config_path)
            assert isinstance(data["telemetryEnabled"], bool), data["telemetryEnabled"]
            assert stat.S_IMODE(config_path.stat().st_mode) == 0o644
            seen_values.add(data["telemetryEnabled"])
            temp_files_seen += bool(leftovers(config_path.parent))
    finally:
        for child in children:
            child.stop()

    # The writers really wrote: both values were left behind by some kill.
    assert seen_values == {True, False}
    # No writer holds the lock after its death: the next write goes through at once,
    # and it clears the temp files that killed writers left. (The opposite of the last
    # value, so that it is a real write: an update that changes nothing writes nothing.)
    last = assert_foreign_keys_kept(config_path)["telemetryEnabled"]
    ConfigStore(config_path).update({"telemetryEnabled": not last})
    assert assert_foreign_keys_kept(config_path)["telemetryEnabled"] is (not last)
    assert leftovers(config_path.parent) == []
    print(f"{KILLS} kills, {temp_files_seen} left a temp file behind")
