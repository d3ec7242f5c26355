"""ARCHITECTURE.md's checkable rules, read from the source with ``ast``.

- Layers: ``run -> slack -> admin -> telemetry -> config``; a module imports only
  from its own layer and the layers below it (function-level and TYPE_CHECKING
  imports included: a lazy import is still a dependency).
- No import cycle between modules, counting function-level imports.
- ``register()`` leaves posthog and tinydb out of ``sys.modules`` (a real process).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.environment import clean_environ

PACKAGE = "slackonos_telemetry"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# What each part of the package may import from the package (besides itself).
LEAVES = {f"{PACKAGE}._version", f"{PACKAGE}.forksafe"}
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "telemetry": {"config"},
    "admin": {"config", "telemetry"},
    "slack": {"config", "telemetry", "admin"},
    "run": {"config", "telemetry", "admin", "slack", "plugins"},
    "plugins": set(),
    "cli": {"config", "telemetry", "admin", "run"},
    "__init__": {"slack", "plugins"},
    "__main__": {"cli"},
    "_version": set(),
    "forksafe": set(),
}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def part_of(module: str) -> str:
    """The layer (sub-package or top-level module) a module belongs to."""
    rest = module.removeprefix(PACKAGE).lstrip(".")
    return rest.split(".", 1)[0] if rest else "__init__"


def imported_modules(path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """Every package module ``path`` imports, anywhere in it, with the line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import; use absolute ones"
            base = node.module or ""
            # `from pkg.sub import name` may import the module pkg.sub.name.
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        targets = set()
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name.startswith(PACKAGE) and name != PACKAGE:
                targets.add(name)
        # `from pkg.sub import mod` depends on pkg.sub.mod, not on pkg.sub as well.
        for name in sorted(targets):
            if not any(other.startswith(name + ".") for other in targets):
                yield name, node.lineno


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {
        module: {target for target, _ in imported_modules(path, known) if target != module}
        for module, path in found.items()
    }


def test_every_module_keeps_to_its_layer() -> None:
    found = modules()
    known = set(found)
    broken = []
    for module, path in found.items():
        own = part_of(module)
        for target, line in imported_modules(path, known):
            other = part_of(target)
            if other == own or target in LEAVES:
                continue
            if other not in ALLOWED[own]:
                broken.append(f"{path.relative_to(ROOT.parent)}:{line}: {own} imports {target}")
    assert broken == [], "\n".join(broken)


def test_there_is_no_import_cycle() -> None:
    edges = graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert cycles == [], "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_the_checker_sees_function_level_imports(tmp_path: Path) -> None:
    """The rule above would pass vacuously if lazy imports were missed."""
    source = tmp_path / "lazy.py"
    source.write_text(f"def f():\n    from {PACKAGE}.slack.plugin import register\n")
    found = list(imported_modules(source, set(modules())))
    assert found == [(f"{PACKAGE}.slack.plugin", 2)]


REGISTER_PROBE = """
import json, sys, threading
from slack_bolt import App

main_thread_imports = []


class Recorder:
    def find_spec(self, fullname, path=None, target=None):
        if threading.current_thread() is threading.main_thread():
            main_thread_imports.append(fullname)
        return None


sys.meta_path.insert(0, Recorder())
import slackonos_telemetry
app = App(token="xoxb-probe", signing_secret="s", token_verification_enabled=False)
slackonos_telemetry.register(app, config_path=sys.argv[1])
heavy_now = sorted(m for m in sys.modules if m.split(".")[0] in ("posthog", "tinydb"))
print(json.dumps({"main": main_thread_imports, "heavy_now": heavy_now}))
"""


@pytest.mark.parametrize("enabled", ["true", "false"])
def test_register_leaves_posthog_and_tinydb_unloaded(tmp_path: Path, enabled: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", REGISTER_PROBE, str(tmp_path / "config.json")],
        env=clean_environ({"TELEMETRY_ENABLED": enabled}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # The background start waits for the bot to be quiet before it loads either.
    assert report["heavy_now"] == []
    loaded = report["main"]
    heavy = [name for name in loaded if name.split(".")[0] in ("posthog", "tinydb", "requests")]
    assert heavy == [], heavy
    ours = {name for name in loaded if name.startswith(PACKAGE)}
    # The import budget of the register() path on the host's thread (ARCHITECTURE.md).
    assert ours <= REGISTER_IMPORT_BUDGET, sorted(ours - REGISTER_IMPORT_BUDGET)


REGISTER_IMPORT_BUDGET = {
    PACKAGE,
    f"{PACKAGE}._version",
    f"{PACKAGE}.forksafe",
    f"{PACKAGE}.config",
    f"{PACKAGE}.config.keys",
    f"{PACKAGE}.config.words",
    f"{PACKAGE}.telemetry",
    f"{PACKAGE}.telemetry.consent",
    f"{PACKAGE}.telemetry.quiet",
    f"{PACKAGE}.telemetry.shutdown",
    f"{PACKAGE}.telemetry.threads",
    f"{PACKAGE}.slack",
    f"{PACKAGE}.slack.ids",
    f"{PACKAGE}.slack.edges",
    f"{PACKAGE}.slack.glance",
    f"{PACKAGE}.slack.middleware",
    f"{PACKAGE}.slack.plugin",
}
