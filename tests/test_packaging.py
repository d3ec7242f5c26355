"""What ships and how it is deployed: the sdist and the wheel (built once here, offline,
with `python -m build --no-isolation`), their metadata and `twine check --strict`; the
Dockerfile, .dockerignore and the systemd unit in deploy/.

`docker build` cannot run here: this project's CI machine has the docker client but no
Docker engine. So the Dockerfile is checked without one: read instruction by instruction,
its build stage's COPY lines given to the same `pip wheel` its RUN line uses (a file
missing from them fails that build), its CMD run against this venv's console script in
the environment the container gives it (no Slack tokens, no terminal on stdin).
`make dist-check` (.ci/dist-check) goes further with PyPI: it installs the wheel on every
declared Python and runs this suite from the unpacked sdist.
"""

from __future__ import annotations

import email.message
import email.parser
import fnmatch
import grp
import json
import os
import posixpath
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself depends on tomli before 3.11
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
CONSOLE_SCRIPT = Path(sys.executable).parent / "slackonos-telemetry"
BUILD_TIMEOUT = 300
RUN_TIMEOUT = 60
OFFLINE = {"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}

# What a developer's checkout holds and no artifact or image may: copied into the tree the
# sdist is built from, so that leaving one out of MANIFEST.in's exclusions fails a test.
DECOYS = (
    ".venv/pyvenv.cfg",
    ".venv-lowest/pyvenv.cfg",
    "config/config.json",
    "config/telemetry-outbox.json",
    ".pytest_cache/v/cache/nodeids",
    ".mypy_cache/3.11/cli.data.json",
    ".ruff_cache/CACHEDIR.TAG",
    "slackonos_telemetry/__pycache__/cli.cpython-311.pyc",
    "tests/__pycache__/conftest.cpython-311-pytest-9.0.pyc",
    "bench/__pycache__/run.cpython-311.pyc",
)
# A checkout's own state, at its root (the package has a `config` folder of its own), and
# bytecode anywhere: not copied into the tree the sdist is built from.
CHECKOUT_STATE = (".git", ".venv*", "config", "build", "dist", "*.egg-info", ".*_cache")


def _not_source(folder: str, names: list[str]) -> set[str]:
    at_root = Path(folder) == REPO
    return {
        name
        for name in names
        if name == "__pycache__"
        or (at_root and any(fnmatch.fnmatch(name, pattern) for pattern in CHECKOUT_STATE))
    }


# What the sdist's own tests, `make` and the deploy recipes need, besides the package.
SDIST_FILES = (
    "LICENSE",
    "README.md",
    "ARCHITECTURE.md",
    "Makefile",
    "manifest.yaml",
    "pyproject.toml",
    "Dockerfile",
    ".dockerignore",
)
SDIST_TREES = ("tests", "docs", "bench", "deploy", ".ci")


# -- the sdist and the wheel, built once ---------------------------------------------------------


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path
    output: str  # the build's stdout and stderr
    source_files: frozenset[str]  # the tree the sdist was built from, decoys left out


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _files_under(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def _run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )


def _need_setuptools_77() -> None:
    installed = metadata.version("setuptools")
    if int(installed.split(".")[0]) < 77:
        pytest.skip(
            f"setuptools {installed} here; building needs setuptools>=77, which pip would "
            "download (no network in tests)"
        )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    _need_setuptools_77()
    work = tmp_path_factory.mktemp("dist")
    source = work / "src"
    shutil.copytree(REPO, source, ignore=_not_source)
    source_files = frozenset(_files_under(source))
    for decoy in DECOYS:
        (source / decoy).parent.mkdir(parents=True, exist_ok=True)
        (source / decoy).write_text('{"SLACK_BOT_TOKEN": "xoxb-decoy"}\n', encoding="utf-8")
    out = work / "out"
    command = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out)]
    result = _run([*command, str(source)], **OFFLINE)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return Built(sdist, wheel, output, source_files)


def _sdist_names(sdist: Path) -> set[str]:
    """The sdist's files, without the `name-version/` folder they sit in."""
    with tarfile.open(sdist) as archive:
        return {
            member.name.split("/", 1)[1]
            for member in archive.getmembers()
            if member.isfile() and "/" in member.name
        }


def _wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode("utf-8"))


def test_the_sdist_holds_what_its_own_tests_make_and_the_recipes_need(built: Built) -> None:
    names = _sdist_names(built.sdist)

    assert not [name for name in SDIST_FILES if name not in names], sorted(names)
    for tree in SDIST_TREES:
        wanted = {name for name in built.source_files if name.startswith(f"{tree}/")}
        assert wanted, f"nothing under {tree}/ in the source"
        assert wanted <= names, f"{tree}/ lacks {sorted(wanted - names)}"
    package = {name for name in built.source_files if name.startswith("slackonos_telemetry/")}
    assert package <= names, sorted(package - names)
    assert "tests/test_manifest.py" in names and "deploy/slackonos-bot.service" in names


def test_the_sdist_holds_no_venv_cache_or_local_config(built: Built) -> None:
    names = _sdist_names(built.sdist)

    leaked = [
        name
        for name in names
        if name.startswith((".venv", "config/", ".pytest_cache/", ".mypy_cache/", ".ruff_cache/"))
        or "__pycache__" in name
        or name.endswith(".pyc")
    ]
    assert leaked == []
    assert not [name for name in names if name.startswith(".git/")]


def test_the_wheel_holds_the_package_its_license_and_nothing_else(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as archive:
        names = set(archive.namelist())
    dist_info = f"slackonos_telemetry-{_wheel_metadata(built.wheel)['Version']}.dist-info"

    assert f"{dist_info}/licenses/LICENSE" in names, sorted(names)
    assert "slackonos_telemetry/py.typed" in names
    assert "slackonos_telemetry/cli.py" in names
    outside = sorted(n for n in names if not n.startswith(("slackonos_telemetry/", dist_info)))
    assert outside == []
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_the_wheel_metadata_has_license_author_urls_and_classifiers(built: Built) -> None:
    project = _pyproject()["project"]
    meta = _wheel_metadata(built.wheel)

    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["License"] is None, "the deprecated free-text field next to an expression"
    assert meta["Author"] == "The SlackONOS telemetry authors"
    assert meta.get_all("Classifier") == project["classifiers"]
    assert "Development Status :: 4 - Beta" in project["classifiers"]
    assert "Typing :: Typed" in project["classifiers"]
    urls = dict(line.split(", ", 1) for line in meta.get_all("Project-URL") or [])
    assert urls == project["urls"]
    assert set(urls) == {"Homepage", "Documentation", "Source", "Issues"}
    assert all(url.startswith("https://github.com/htilly/SlackONOS") for url in urls.values())
    assert meta["Keywords"] is not None and "slack" in meta["Keywords"].split(",")


def test_the_wheel_keeps_the_python_floor_dependencies_and_entry_points(built: Built) -> None:
    pyproject = _pyproject()
    project = pyproject["project"]
    meta = _wheel_metadata(built.wheel)
    with zipfile.ZipFile(built.wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
        entry_points = archive.read(name).decode("utf-8")

    assert meta["Requires-Python"] == project["requires-python"] == ">=3.10"
    runtime = [Requirement(r) for r in meta.get_all("Requires-Dist") or [] if "extra" not in r]
    assert runtime == [Requirement(r) for r in project["dependencies"]]
    assert len(runtime) == 4
    assert "slackonos-telemetry = slackonos_telemetry.cli:main" in entry_points
    assert "[slackonos.plugins]\ntelemetry = slackonos_telemetry:register" in entry_points


def test_twine_check_strict_passes_on_the_sdist_and_the_wheel(built: Built) -> None:
    command = [sys.executable, "-m", "twine", "check", "--strict"]
    result = _run([*command, str(built.sdist), str(built.wheel)], NO_COLOR="1")

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_every_classifier_is_a_real_trove_classifier() -> None:
    trove = pytest.importorskip("trove_classifiers")
    classifiers = _pyproject()["project"]["classifiers"]

    assert [c for c in classifiers if c not in trove.classifiers] == []
    assert [c for c in classifiers if c in trove.deprecated_classifiers] == []
    assert len(set(classifiers)) == len(classifiers)
    declared = {c.rsplit(" :: ", 1)[1] for c in classifiers if re.fullmatch(r".* :: 3\.\d+", c)}
    assert declared == {"3.10", "3.11", "3.12", "3.13"}


def test_the_license_file_is_mit_with_the_authors_copyright() -> None:
    text = (REPO / "LICENSE").read_text(encoding="utf-8")

    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 The SlackONOS telemetry authors\n" in text
    assert "Permission is hereby granted, free of charge" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text


# The license as setuptools >= 77 reads it: an SPDX string, and no warning when building.


def test_the_license_is_an_spdx_string_as_setuptools_77_wants() -> None:
    pyproject = _pyproject()
    project = pyproject["project"]
    assert isinstance(project["license"], str), "a table is deprecated by setuptools"
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    # With an SPDX expression, a license classifier is an error for setuptools >= 77.
    assert not [c for c in project.get("classifiers", []) if c.startswith("License ::")]
    requires = " ".join(pyproject["build-system"]["requires"])
    assert "setuptools>=77" in requires.replace(" ", ""), requires


def _license_complaints(output: str) -> list[str]:
    return [
        line
        for line in output.splitlines()
        if "project.license" in line
        or ("license" in line.lower() and ("deprecat" in line.lower() or "warn" in line.lower()))
    ]


def test_building_the_wheel_warns_nothing_about_the_license(
    built: Built, docker_stage_build: DockerStageBuild
) -> None:
    # Both builds: the release's (sdist, then the wheel from it) and the image's.
    assert _license_complaints(built.output) == []
    assert docker_stage_build.result.returncode == 0, docker_stage_build.output
    assert _license_complaints(docker_stage_build.output) == []


# -- the Dockerfile --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    arguments: str  # continuation lines joined


def _dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions: comments dropped, continuation lines joined."""
    instructions: list[Instruction] = []
    pending = ""
    for line in (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # Docker drops comment lines, inside a continuation too
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    assert pending == "", "the Dockerfile ends inside a continuation"
    return instructions


def _stages() -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for instruction in _dockerfile():
        if instruction.keyword == "FROM":
            stages.append([])
        assert stages, f"{instruction} before any FROM"
        stages[-1].append(instruction)
    return stages


def _final_stage() -> list[Instruction]:
    return _stages()[-1]


def _arguments(stage: list[Instruction], keyword: str) -> list[str]:
    return [i.arguments for i in stage if i.keyword == keyword]


def _env(stage: list[Instruction]) -> dict[str, str]:
    """ENV as the image has it (both forms: `ENV A=1 B=2` and `ENV A 1`)."""
    env: dict[str, str] = {}
    for arguments in _arguments(stage, "ENV"):
        words = shlex.split(arguments)
        if "=" not in words[0]:
            env[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            key, _, value = word.partition("=")
            env[key] = value
    return env


def _copy_sources(instruction: Instruction) -> tuple[list[str], list[str]]:
    """A COPY's (flags, sources); its last word is the destination."""
    words = shlex.split(instruction.arguments)
    flags = [w for w in words if w.startswith("--")]
    paths = [w for w in words if not w.startswith("--")]
    assert len(paths) >= 2, instruction
    return flags, paths[:-1]


def test_the_image_is_slim_and_runs_socket_mode_explicitly() -> None:
    stages = _stages()
    final = _final_stage()

    assert [stage[0].arguments.split()[0] for stage in stages] == ["python:3.11-slim"] * len(stages)
    (cmd,) = _arguments(final, "CMD")
    assert json.loads(cmd) == ["slackonos-telemetry", "run", "--socket"]
    assert _arguments(final, "ENTRYPOINT") == []
    assert _arguments(final, "STOPSIGNAL") == ["SIGTERM"]
    assert _env(final)["SLACKONOS_CONFIG"] == "/config/config.json"
    assert _arguments(final, "WORKDIR")[-1] == "/config"
    assert [
        json.loads(v) if v.startswith("[") else v.split() for v in _arguments(final, "VOLUME")
    ] == [["/config"]]


def _image_user(final: list[Instruction]) -> str:
    users = _arguments(final, "USER")
    assert users, "no USER: the container would run as root"
    return users[-1].split(":")[0]


def test_the_image_runs_as_a_user_that_is_not_root_and_owns_the_config_volume() -> None:
    final = _final_stage()
    user = _image_user(final)

    assert user not in {"root", "0"}
    # The user is made in the image, after the install (which runs as root), and owns /config.
    keywords = [i.keyword for i in final]
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")
    made = " ".join(_arguments(final, "RUN"))
    assert re.search(rf"useradd\b[^&]*--uid {user}\b", made), made
    assert re.search(rf"chown {user}(:\d+)? /config\b", made), made
    assert "chmod 700 /config" in made


def _container_env(config: Path) -> dict[str, str]:
    """What the container's process gets: the image's ENV (its /config here `config`), a
    PATH finding the console script, the non-root user's HOME; no Slack token."""
    env = {
        "PATH": f"{CONSOLE_SCRIPT.parent}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
        "HOME": "/nonexistent",
        "LANG": "C.UTF-8",
        "HOSTNAME": "0123456789ab",
    }
    for key, value in _env(_final_stage()).items():
        env[key] = (
            str(config) + value.removeprefix("/config") if value.startswith("/config") else value
        )
    return env


@pytest.mark.parametrize(
    ("tokens", "missing"),
    [
        ({}, ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"]),
        ({"SLACK_BOT_TOKEN": "xoxb-test"}, ["SLACK_APP_TOKEN"]),
        ({"SLACK_BOT_TOKEN": "", "SLACK_APP_TOKEN": "xapp-test"}, ["SLACK_BOT_TOKEN"]),
    ],
    ids=["no-tokens", "no-app-token", "empty-bot-token"],
)
def test_the_container_command_without_tokens_exits_2_with_one_line(
    tmp_path: Path, tokens: dict[str, str], missing: list[str]
) -> None:
    (cmd,) = _arguments(_final_stage(), "CMD")
    argv = json.loads(cmd)
    config = tmp_path / "config"  # the volume, as the image leaves it: empty, private
    config.mkdir(mode=0o700)
    env = {**_container_env(config), **tokens}
    program = shutil.which(argv[0], path=env["PATH"])
    assert program is not None and Path(program) == CONSOLE_SCRIPT

    result = subprocess.run(
        [program, *argv[1:]],
        cwd=config,  # the image's WORKDIR, /config
        env=env,
        stdin=subprocess.DEVNULL,  # no terminal: `docker run` without -it
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )

    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("slackonos-telemetry: error: --socket needs "), lines
    assert [name for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN") if name in lines[0]] == missing
    assert result.stdout == ""  # never the console demo's banner
    assert list(config.iterdir()) == []  # a start that failed left the volume as it was


def _dockerignore_rules(text: str | None = None) -> list[tuple[bool, re.Pattern[str]]]:
    """(is an exception `!`, regex) per line, as Docker reads .dockerignore: paths relative
    to the context root, `*` and `?` within one path element, `**` any number of them."""
    if text is None:
        text = (REPO / ".dockerignore").read_text(encoding="utf-8")
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for line in text.splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        exception = pattern.startswith("!")
        pattern = posixpath.normpath(pattern.removeprefix("!").strip()).lstrip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((exception, re.compile(regex)))
    return rules


def _ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether Docker leaves `path` out of the context: the last rule matching it, or a
    folder it is in, decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for exception, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not exception
    return ignored


def test_the_dockerignore_reader_reads_patterns_as_docker_does() -> None:
    rules = _dockerignore_rules("# a comment\n*.txt\n!keep.txt\n/logs/\n**/cache\n*.py[co]\n")

    assert _ignored("a.txt", rules) and not _ignored("keep.txt", rules)
    assert not _ignored("sub/a.txt", rules)  # root-relative, unlike .gitignore
    assert _ignored("logs/today/x.log", rules) and not _ignored("src/logs/x.log", rules)
    assert _ignored("cache/x", rules) and _ignored("a/b/cache/x", rules)
    assert _ignored("x.pyc", rules) and not _ignored("x.py", rules)
    assert not _ignored("# a comment", rules)


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".venv-lowest/lib/python3.11/site-packages/slack_bolt/__init__.py",
        ".venv-3.12/pyvenv.cfg",
        "config/config.json",
        "config/telemetry-outbox.json",
        ".git/HEAD",
        "tests/test_cli.py",
        "tests/support/capture.py",
        "bench/run.py",
        "__pycache__/x.cpython-311.pyc",
        "slackonos_telemetry/__pycache__/cli.cpython-311.pyc",
        "slackonos_telemetry/config/__pycache__/store.cpython-311.pyc",
        "slackonos_telemetry.egg-info/PKG-INFO",
        "build/lib/slackonos_telemetry/cli.py",
        "dist/slackonos_telemetry-0.1.0-py3-none-any.whl",
        ".pytest_cache/v/cache/nodeids",
        ".mypy_cache/3.11/cli.data.json",
        ".ruff_cache/CACHEDIR.TAG",
        "tokens.env",
    ],
)
def test_the_dockerignore_keeps_it_out_of_the_build_context(path: str) -> None:
    assert _ignored(path, _dockerignore_rules())


def test_the_dockerignore_keeps_what_the_build_copies() -> None:
    rules = _dockerignore_rules()
    needed = [
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "slackonos_telemetry/__init__.py",
        "slackonos_telemetry/py.typed",
        "slackonos_telemetry/config/store.py",
    ]
    copied = [
        f"{source}/{name}" if (REPO / source).is_dir() else source
        for instruction in _stages()[0]
        if instruction.keyword == "COPY"
        for source in _copy_sources(instruction)[1]
        for name in (sorted(_files_under(REPO / source)) if (REPO / source).is_dir() else [""])
        if "__pycache__" not in name
    ]

    assert [path for path in needed if _ignored(path, rules)] == []
    assert copied and [path for path in copied if _ignored(path, rules)] == []


def test_the_dockerfile_copies_only_what_building_the_wheel_needs() -> None:
    stages = _stages()
    build, final = stages[0], stages[-1]
    name = build[0].arguments.split()[-1]

    assert len(stages) == 2 and re.fullmatch(r"\S+ AS \S+", build[0].arguments, re.I)
    sources = [s for i in build if i.keyword == "COPY" for s in _copy_sources(i)[1]]
    assert sorted(sources) == ["LICENSE", "README.md", "pyproject.toml", "slackonos_telemetry"]
    assert not [i for i in build + final if i.keyword == "ADD"]
    # The image gets the wheel from the build stage, and installs that wheel alone.
    final_copies = [_copy_sources(i) for i in final if i.keyword == "COPY"]
    assert final_copies == [([f"--from={name}"], ["/wheels"])]
    installs = [r for r in _arguments(final, "RUN") if "pip install" in r]
    assert len(installs) == 1 and re.search(r"pip install /wheels/\*\.whl(\s|$)", installs[0])
    assert re.search(
        r"pip wheel .*--no-deps .*--wheel-dir /wheels \.$", _arguments(build, "RUN")[0]
    )


@dataclass(frozen=True)
class DockerStageBuild:
    result: subprocess.CompletedProcess[str]
    output: str
    wheels: list[Path]


@pytest.fixture(scope="module")
def docker_stage_build(tmp_path_factory: pytest.TempPathFactory) -> DockerStageBuild:
    """The Dockerfile's build stage without Docker: its COPY sources (as .dockerignore lets
    them into the context) in a folder, then its `pip wheel --no-deps`, offline."""
    _need_setuptools_77()
    work = tmp_path_factory.mktemp("docker-build-stage")
    context = work / "src"
    context.mkdir()
    for instruction in _stages()[0]:
        if instruction.keyword != "COPY":
            continue
        for source in _copy_sources(instruction)[1]:
            if (REPO / source).is_dir():
                shutil.copytree(
                    REPO / source,
                    context / source,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                )
            else:
                shutil.copy2(REPO / source, context / source)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    result = _run([*command, "--wheel-dir", str(work / "wheels"), str(context)], **OFFLINE)
    return DockerStageBuild(
        result, result.stdout + result.stderr, sorted((work / "wheels").glob("*.whl"))
    )


def test_the_dockerfile_build_stage_copies_enough_to_build_the_wheel(
    docker_stage_build: DockerStageBuild, built: Built
) -> None:
    assert docker_stage_build.result.returncode == 0, docker_stage_build.output
    (wheel,) = docker_stage_build.wheels
    with zipfile.ZipFile(wheel) as image, zipfile.ZipFile(built.wheel) as release:
        assert sorted(image.namelist()) == sorted(release.namelist())


# -- the systemd unit ------------------------------------------------------------------------------

UNIT = REPO / "deploy" / "slackonos-bot.service"


def _unit() -> dict[str, dict[str, list[str]]]:
    """section -> key -> values (a key may repeat, as Environment= does)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            current = sections.setdefault(stripped[1:-1], {})
            continue
        assert current is not None, f"{line!r} before any section"
        key, _, value = stripped.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_the_systemd_unit_runs_socket_mode_as_its_own_user_and_restarts_on_failure() -> None:
    unit = _unit()
    service = unit["Service"]

    assert service["User"] == ["slackonos"] and service["Group"] == ["slackonos"]
    assert service["Restart"] == ["on-failure"]
    assert service["WorkingDirectory"] == ["/opt/slackonos"]
    assert "SLACKONOS_CONFIG=/var/lib/slackonos/config.json" in service["Environment"]
    assert service["EnvironmentFile"] == ["/etc/slackonos/tokens.env"]
    (exec_start,) = service["ExecStart"]
    assert exec_start == "/opt/slackonos/.venv/bin/slackonos-telemetry run --socket"
    assert service["KillSignal"] == ["SIGTERM"]
    # Longer than the plugin's whole shutdown (TELEMETRY_SHUTDOWN_TIMEOUT, 2 s).
    assert service["TimeoutStopSec"] == ["10"]
    # Exit 2 (a missing token) is not retried: the unit stays failed, with its reason.
    assert service["RestartPreventExitStatus"] == ["2"]
    assert service["StateDirectory"] == ["slackonos"]  # /var/lib/slackonos, the config's
    assert service["StateDirectoryMode"] == ["0700"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def _verifiable_unit(folder: Path) -> Path:
    """The unit as an operator installs it, but runnable here: ExecStart= on this venv's
    console script, User=/Group= those of whoever runs the tests (verify checks both exist)."""
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    text = UNIT.read_text(encoding="utf-8")
    replaced = {
        "ExecStart=/opt/slackonos/.venv/bin/slackonos-telemetry ": f"ExecStart={CONSOLE_SCRIPT} ",
        "\nUser=slackonos\n": f"\nUser={user}\n",
        "\nGroup=slackonos\n": f"\nGroup={group}\n",
    }
    for old, new in replaced.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = folder / UNIT.name
    path.write_text(text, encoding="utf-8")
    return path


def _verify(unit: Path) -> tuple[int, list[str]]:
    """`systemd-analyze verify`'s exit code and the lines it prints about `unit`."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (it is on the CI machine)")
    result = subprocess.run(
        [analyze, "verify", str(unit)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    said = (result.stdout + result.stderr).splitlines()
    return result.returncode, [line for line in said if unit.name in line]


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    code, complaints = _verify(_verifiable_unit(tmp_path))

    assert code == 0 and complaints == [], complaints


def test_systemd_analyze_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    # The check above can fail: a misspelt key and a bad signal are reported by line.
    unit = _verifiable_unit(tmp_path)
    text = unit.read_text(encoding="utf-8")
    unit.write_text(
        text.replace("TimeoutStopSec=", "TimeoutStopSek=").replace("=SIGTERM", "=SIGFOO"),
        encoding="utf-8",
    )

    _, complaints = _verify(unit)

    assert len(complaints) == 2, complaints
