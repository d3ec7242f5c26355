"""Print pip constraints pinning each runtime dependency to the lowest version
pyproject.toml allows, for the second test venv (`make test-lowest`): what we
claim to support is what we test."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

LOWER_BOUND = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(?:\[[^\]]*\])?\s*.*?>=\s*([0-9][^,;\s]*)")


def main() -> int:
    project = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))["project"]
    for requirement in project["dependencies"]:
        match = LOWER_BOUND.match(requirement)
        if match is None:
            sys.stderr.write(f"no lower bound in {requirement!r}: every dependency needs one\n")
            return 1
        print(f"{match.group(1)}=={match.group(2)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
