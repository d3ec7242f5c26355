"""Other users: a config in a folder the bot may read but not write (docs/CONTRACT.md, "The
config file": read-only configs), and programs run as user nobody when the tests run as
root (who ignores folder permissions)."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import slackonos_telemetry
from tests.support.environment import PYTHON, clean_environ

NOBODY = 65534
AS_ROOT = os.geteuid() == 0
TIMEOUT_SECONDS = 60


def python_path() -> str:
    """PYTHONPATH for an interpreter outside the venv: this project and the venv's
    site-packages."""
    project_root = Path(slackonos_telemetry.__file__).resolve().parent.parent
    site_dirs = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    return os.pathsep.join([str(project_root), *sorted(site_dirs)])


def nobody_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a program run as nobody: this project importable, no bytecode
    written (nobody may write nowhere here)."""
    return clean_environ(
        {"PYTHONPATH": python_path(), "PYTHONDONTWRITEBYTECODE": "1", **(extra or {})}
    )


def run_as_nobody(
    command: list[str], cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        env=nobody_environ(env),
        cwd=cwd,
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


@functools.lru_cache(maxsize=1)
def nobody_python() -> str | None:
    """An interpreter user nobody can run that imports this project, else None.

    The venv's interpreter can live under a home folder nobody may not enter, so a
    system interpreter of the same version, given the venv's site dir, is tried too.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [PYTHON]
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        found = shutil.which(f"python{version}", path=directory)
        if found:
            candidates.append(found)
    probe = "import sys, tinydb, slackonos_telemetry.cli; print('%d.%d' % sys.version_info[:2])"
    for candidate in candidates:
        try:
            result = run_as_nobody([candidate, "-c", probe], Path("/"))
        except OSError:
            continue
        if result.returncode == 0 and result.stdout.strip() == version:
            return candidate
    return None


def nobody_python_or_skip() -> str:
    found = nobody_python()
    if found is None:
        pytest.skip("no Python interpreter that user nobody may run imports this project")
    return found


def readable_by_nobody(path: Path) -> bool:
    result = subprocess.run(
        ["cat", str(path)],
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return result.returncode == 0


class ReadOnlyConfig:
    """A config file in a folder the CLI subprocess may read but not write."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def run_cli(
        self, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run_python("-m", "slackonos_telemetry", *args, env=env)

    def run_python(
        self, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``python ARGS`` as a user who may read the file but not write in its folder."""
        cwd = self.path.parent.parent
        if not AS_ROOT:
            return subprocess.run(
                [PYTHON, *args],
                env=clean_environ(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_SECONDS,
                check=False,
            )
        return run_as_nobody([nobody_python_or_skip(), *args], cwd, env)


@contextlib.contextmanager
def read_only_config(content: str) -> Iterator[ReadOnlyConfig]:
    """config/config.json holding ``content`` in a folder the CLI cannot write in.

    As root (which ignores folder permissions) the CLI runs as user nobody: the
    folder is root's, mode 0755, and the file 0644. Otherwise the folder is 0555.
    """
    base = Path(tempfile.mkdtemp(prefix="slackonos-readonly-"))
    folder = base / "config"
    try:
        base.chmod(0o755)  # nobody must reach the file
        folder.mkdir()
        path = folder / "config.json"
        path.write_text(content, encoding="utf-8")
        path.chmod(0o644)
        folder.chmod(0o755 if AS_ROOT else 0o555)
        yield ReadOnlyConfig(path)
    finally:
        with contextlib.suppress(OSError):
            folder.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def writable_by_nobody() -> Iterator[Path]:
    """A folder anyone may write in: the state home of a bot run as user nobody."""
    base = Path(tempfile.mkdtemp(prefix="slackonos-for-nobody-"))
    try:
        base.chmod(0o777)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def owned_by_nobody() -> Iterator[Path]:
    """A folder that user nobody owns (a bot's own), reachable by nobody. Root only."""
    if not AS_ROOT:
        pytest.skip("changing a file's owner needs root")
    base = Path(tempfile.mkdtemp(prefix="slackonos-owner-"))
    try:
        base.chmod(0o755)
        folder = base / "config"
        folder.mkdir(mode=0o750)
        os.chown(folder, NOBODY, NOBODY)
        yield folder
    finally:
        shutil.rmtree(base, ignore_errors=True)
