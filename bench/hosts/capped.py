"""``python -m bench.hosts.capped MODULE ARGS...``: ``python -m MODULE ARGS...`` in this very
process (same pid, so its exit is timed as it is), under the bench's lifetime cap.

The bench runs the package's own CLI (``run --socket``, ``run --console``, ``flush``)
through this, so that even those processes end by themselves.
"""

from __future__ import annotations

import runpy
import sys

from bench.hosts.common import start_lifetime_cap


def main() -> None:
    start_lifetime_cap()
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
