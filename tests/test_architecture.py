"""ARCHITECTURE.md's checkable rules, read from the source with ``ast`` or seen in a real
process.

- Layers: ``run -> slack -> admin -> telemetry -> config``; a module imports only
  from its own layer and the layers below it (function-level and TYPE_CHECKING
  imports included: a lazy import is still a dependency).
- No import cycle between modules, counting function-level imports.
- ``register()`` leaves posthog and tinydb out of ``sys.modules``, for an ``App`` and
  an ``AsyncApp``, and imports only its budget on the host's thread.
- The opt-out rule reads its environment variables in one module.
- At-fork hooks import nothing, wait on no lock, touch no file.
- Every deferred import of ours, on the plugin's threads or the host's, runs inside
  ``forksafe.importing()`` (a fork meanwhile waits for it).
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
import asyncio, json, sys, threading
from slack_bolt import App
from slack_bolt.async_app import AsyncApp

main_thread_imports = []


class Recorder:
    def find_spec(self, fullname, path=None, target=None):
        if threading.current_thread() is threading.main_thread():
            main_thread_imports.append(fullname)
        return None


sys.meta_path.insert(0, Recorder())
import slackonos_telemetry
if sys.argv[2] == "async":
    app = AsyncApp(token="xoxb-probe", signing_secret="s")
else:
    app = App(token="xoxb-probe", signing_secret="s", token_verification_enabled=False)
slackonos_telemetry.register(app, config_path=sys.argv[1])
heavy_now = sorted(m for m in sys.modules if m.split(".")[0] in ("posthog", "tinydb"))
print(json.dumps({"main": main_thread_imports, "heavy_now": heavy_now}))
"""


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("enabled", ["true", "false"])
def test_register_leaves_posthog_and_tinydb_unloaded(
    tmp_path: Path, enabled: str, kind: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", REGISTER_PROBE, str(tmp_path / "config.json"), kind],
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
    budget = REGISTER_IMPORT_BUDGET | (ASYNC_EDGE if kind == "async" else SYNC_EDGE)
    assert ours <= budget, sorted(ours - budget)


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
    f"{PACKAGE}.slack.plugin",
}
SYNC_EDGE = {f"{PACKAGE}.slack.middleware"}
# An AsyncApp's host has asyncio loaded already: its edge loads the worker and port with it.
ASYNC_EDGE = {
    f"{PACKAGE}.slack.async_middleware",
    f"{PACKAGE}.slack.worker",
    f"{PACKAGE}.slack.port",
}


# -- the opt-out's rule has one home ------------------------------------------------------

RULE_VARIABLES = {"DO_NOT_TRACK", "TELEMETRY_ENABLED", "CI"}
RULE_HOME = {f"{PACKAGE}.telemetry.consent"}


def _reads_of(tree: ast.AST, names: set[str]) -> Iterator[int]:
    """Lines where ``tree`` reads one of ``names`` from a mapping: ``x.get(NAME)``,
    ``x[NAME]``, ``os.getenv(NAME)``, the name given as a constant or a variable."""

    def named(node: ast.AST | None) -> bool:
        if isinstance(node, ast.Name):
            return node.id in names
        return isinstance(node, ast.Constant) and node.value in names

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and named(node.args[0]):
            function = node.func
            if isinstance(function, ast.Attribute) and function.attr in ("get", "getenv", "pop"):
                yield node.lineno
        elif isinstance(node, ast.Subscript) and named(node.slice):
            yield node.lineno


def test_only_the_consent_module_reads_the_opt_out_variables() -> None:
    found = [
        f"{path.relative_to(ROOT.parent)}:{line}"
        for module, path in modules().items()
        if module not in RULE_HOME
        for line in _reads_of(ast.parse(path.read_text(encoding="utf-8")), RULE_VARIABLES)
    ]
    assert found == [], found


def test_the_rule_checker_sees_a_read(tmp_path: Path) -> None:
    source = "import os\nwhy = os.environ.get('DO_NOT_TRACK')\nci = env[CI]\n"
    assert list(_reads_of(ast.parse(source), RULE_VARIABLES)) == [2, 3]


# -- at-fork hooks: no import, no lock, no file -------------------------------------------

# A before-hook may poll with short sleeps, bounded (it waits for an import in flight);
# nothing may wait on a lock or do I/O.
FORBIDDEN_IN_HOOKS = ("open", "acquire", "wait", "flock", "lockf", "read", "write")


def _hook_functions(tree: ast.Module) -> list[ast.FunctionDef]:
    """The module-level functions a module registers with ``os.register_at_fork``, and
    every module-level function they call, by name."""
    defined = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    pending = [
        keyword.value.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "register_at_fork"
        for keyword in node.keywords
        if isinstance(keyword.value, ast.Name)
    ]
    found: dict[str, ast.FunctionDef] = {}
    while pending:
        name = pending.pop()
        if name in found or name not in defined:
            continue
        found[name] = defined[name]
        pending += [
            call.func.id
            for call in ast.walk(defined[name])
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
        ]
    return list(found.values())


def _hook_problems(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for function in _hook_functions(tree):
        for node in ast.walk(function):
            where = f"{path.name}:{getattr(node, 'lineno', '?')} in {function.name}"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                yield f"{where}: imports"
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                yield f"{where}: a with block (a lock, a file)"
            elif isinstance(node, ast.Call):
                called = node.func
                name = (
                    called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
                )
                if name in FORBIDDEN_IN_HOOKS:
                    yield f"{where}: calls {name}()"


def test_at_fork_hooks_import_nothing_wait_on_no_lock_and_touch_no_file() -> None:
    hooked = [path for path in modules().values() if "register_at_fork" in path.read_text()]
    assert hooked, "no at-fork hook found: the checker would pass vacuously"
    problems = [problem for path in hooked for problem in _hook_problems(path)]
    assert problems == [], problems


def test_the_hook_checker_sees_a_bad_hook(tmp_path: Path) -> None:
    source = tmp_path / "hooked.py"
    source.write_text(
        "import os\n"
        "def helper():\n    with lock:\n        pass\n"
        "def hook():\n    import json\n    helper()\n"
        "os.register_at_fork(after_in_child=hook)\n"
    )
    problems = list(_hook_problems(source))
    assert len(problems) == 2 and "imports" in problems[0] + problems[1], problems


# -- deferred imports run inside forksafe.importing() -------------------------------------

IMPORT_PROBE = """
import json, sys, threading
from slackonos_telemetry import forksafe

events = []


def hook(event, args):
    if event != "import":
        return
    name = args[0]
    thread = threading.current_thread()
    inside = threading.get_ident() in forksafe._importers
    events.append((thread.name, name, inside))


from slack_bolt import App
from slack_bolt.request import BoltRequest
import slackonos_telemetry
from slackonos_telemetry.run.local_slack import LocalSlack, ADMIN_CHANNEL_ID
from slack_sdk import WebClient

sys.addaudithook(hook)
slack = LocalSlack()
app = App(client=WebClient(token="xoxb-probe", base_url=slack.url), signing_secret="s",
          token_verification_enabled=False)
plugin = slackonos_telemetry.register(app, config_path=sys.argv[1])
registered = len(events)  # register() itself is the host importing us, on its own thread


def say(text, number):
    body = {"type": "event_callback", "team_id": "T1", "event_id": f"Ev{number}",
            "event": {"type": "message", "channel": ADMIN_CHANNEL_ID, "user": "U0ADMIN01",
                      "text": text, "ts": f"1700000000.00000{number}"}}
    app.dispatch(BoltRequest(body=json.dumps(body), mode="socket_mode"))


say("telemetry status", 1)  # before the background start: built on the spot
assert plugin.start_now(30)
for number, text in enumerate(["telemetry preview", "setconfig telemetryEnabled true"], 2):
    say(text, number)
plugin.shutdown(10)
slack.close()
later = events[registered:]
ours = [e for e in later if e[0].startswith("slackonos-telemetry") or e[0] == "MainThread"]
print(json.dumps([e for e in ours if e[0] != "MainThread" or e[1].startswith("slackonos")]))
"""


def test_deferred_imports_of_ours_happen_inside_importing(tmp_path: Path) -> None:
    from tests.support.capture import capture_server

    config_path = tmp_path / "config" / "config.json"
    config_path.parent.mkdir()
    config_path.write_text('{"telemetryNoticeShown": true}', encoding="utf-8")
    with capture_server() as server:
        result = subprocess.run(
            [sys.executable, "-c", IMPORT_PROBE, str(config_path)],
            env=clean_environ({"TELEMETRY_HOST": server.url}),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert server.events, "nothing was sent: the SDK's path was not taken"
    imports = json.loads(result.stdout.splitlines()[-1])
    assert any(inside for _, _, inside in imports), "the probe saw no deferred import"
    outside = [(thread, name) for thread, name, inside in imports if not inside]
    assert outside == [], outside
