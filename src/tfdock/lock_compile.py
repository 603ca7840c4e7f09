"""Compile the locks with pip-tools, through the user's one package index and nothing else.

pip reads its settings from config files (/etc/pip.conf, ~/.config/pip/pip.conf, the
venv's pip.conf, $PIP_CONFIG_FILE) and from PIP_* variables. pip-compile runs with
every config file switched off (PIP_CONFIG_FILE=/dev/null), no PIP_* variable of the
caller, and only the settings in PASSED_SETTINGS, read from pip itself: those say how to
reach the index (its URL, certificates, proxy, patience). Settings that would change
what is resolved (constraint, find-links, extra-index-url, no-index, pre, ...) are
dropped: one index keeps out a second source of the same name (dependency confusion),
and keeps every platform's hashes in the lock (a local mirror or find-links folder
offers only the files it holds, so pip-tools would hash only those).
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tfdock._files import replace_together
from tfdock.errors import TfdockError
from tfdock.lock import files_pip_compile_reads, read_lock
from tfdock.redact import redact

# The CPU lock first: the GPU one is compiled with it as constraint ("-c requirements.txt").
LOCK_PAIRS = (
    (Path("requirements.in"), Path("requirements.txt")),
    (Path("requirements-gpu.in"), Path("requirements-gpu.txt")),
)
COMPILE_FLAGS = (
    "--generate-hashes",
    "--allow-unsafe",
    "--strip-extras",
    "--no-emit-index-url",
    "--no-emit-find-links",
)
# What passes: pip setting -> the names pip knows it by in pip.conf and PIP_* variables.
PASSED_SETTINGS = {
    "index-url": ("index-url",),
    "cert": ("cert",),
    "client-cert": ("client-cert",),
    "trusted-host": ("trusted-host",),
    "proxy": ("proxy",),
    "timeout": ("timeout", "default-timeout"),
    "retries": ("retries",),
}
# The hidden folder beside the locks where `tfdock lock` compiles them (see _staging_folder).
STAGING_PREFIX = ".tfdock-lock-"
DEFAULT_INDEX = "https://pypi.org/simple"  # pip's, when no index-url is given
# The sections `pip install` (and so pip-compile) reads, weakest first, as pip orders them.
_SECTIONS = ("global", "install", ":env:")


def pip_configuration(python: str = sys.executable) -> dict[str, str]:
    """Return pip's own view of its settings, {"section.key": value}, from `pip config list`."""
    result = subprocess.run(
        [python, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    if result.returncode != 0:
        said = " ".join(result.stderr.split()) or "no message"
        raise TfdockError(
            f"pip cannot read its configuration ({said}); fix the pip.conf or PIP_* variable "
            "it names."
        )
    settings = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            settings[key] = ast.literal_eval(value)
    return settings


def index_settings(configuration: dict[str, str]) -> dict[str, str]:
    """Pick the settings that pass to pip-compile, each as pip would resolve it."""
    chosen = {}
    for setting, names in PASSED_SETTINGS.items():
        found = [
            configuration[f"{section}.{name}"]
            for section in _SECTIONS
            for name in names
            if configuration.get(f"{section}.{name}")
        ]
        if found:
            chosen[setting] = found[-1]  # the strongest section wins
    return chosen


def compile_environment(
    settings: dict[str, str], environ: dict[str, str] | None = None
) -> dict[str, str]:
    """Return the environment pip-compile runs in: no pip config, only ``settings`` as PIP_*."""
    environ = dict(os.environ if environ is None else environ)
    clean = {name: value for name, value in environ.items() if not name.startswith("PIP_")}
    clean["PIP_CONFIG_FILE"] = os.devnull
    for setting, value in settings.items():
        clean["PIP_" + setting.upper().replace("-", "_")] = value
    return clean


def pip_compile_environment() -> dict[str, str]:
    """Return the environment for pip-compile under this module's policy (see the top)."""
    return compile_environment(index_settings(pip_configuration()))


def pip_compile_command(requirements_in: Path, lock: Path, *extra: str) -> list[str]:
    """Return the pip-compile command line that writes ``lock`` from ``requirements_in``."""
    pip_compile = Path(sys.executable).parent / "pip-compile"
    if not pip_compile.is_file():
        raise TfdockError(
            f"pip-compile is not installed next to {sys.executable}; "
            "run `make setup` (it comes from the lock)."
        )
    return [
        str(pip_compile),
        "--quiet",
        *COMPILE_FLAGS,
        *extra,
        "--output-file",
        str(lock),
        str(requirements_in),
    ]


@dataclass
class LockChange:
    """What one compile changed in one lock."""

    lock: Path
    added: dict[str, str]
    removed: dict[str, str]
    changed: dict[str, tuple[str, str]]

    def summary(self) -> str:
        parts = [f"{n} {old} -> {new}" for n, (old, new) in sorted(self.changed.items())]
        parts += [f"+{n} {v}" for n, v in sorted(self.added.items())]
        parts += [f"-{n} {v}" for n, v in sorted(self.removed.items())]
        return f"{self.lock}: " + ("; ".join(parts) if parts else "no pin changed")


def compile_locks(upgrade: bool = False, packages: tuple[str, ...] = ()) -> list[LockChange]:
    """Recompile both locks in a staging folder, then replace the pair in one step.

    A failure, Ctrl-C or SIGTERM while pip-compile runs leaves both locks as they
    were; one during the replacement waits until both are replaced.
    """
    _check_inputs(packages)
    extra = ["--upgrade"] if upgrade else [f"--upgrade-package={p}" for p in packages]
    environment = pip_compile_environment()
    pins_before = {lock: read_lock(lock).pins if lock.is_file() else {} for _, lock in LOCK_PAIRS}
    with _staging_folder() as staging:
        for requirements_in, lock in LOCK_PAIRS:
            command = pip_compile_command(requirements_in, lock, *extra)
            _run_pip_compile(command, environment, lock, cwd=staging)
        replace_together({staging / lock: lock for _, lock in LOCK_PAIRS})
    return [_change(lock, old) for lock, old in pins_before.items()]


@contextlib.contextmanager
def _staging_folder() -> Iterator[Path]:
    """Yield a hidden folder beside the locks holding copies of what pip-compile reads.

    pip-compile runs there with the same relative names, so the locks it writes
    are the ones it would write in place (the GPU .in's "-c requirements.txt"
    finds the new CPU lock), and the folder is on the locks' disk, so they move
    into place by rename.
    """
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir="."))
    try:
        for source in _files_to_stage():
            copy = staging / source
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy)
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _files_to_stage() -> list[Path]:
    """The locks and every file the .in files name, refusing one outside this folder."""
    files = [lock for _, lock in LOCK_PAIRS if lock.is_file()]
    for requirements_in, _ in LOCK_PAIRS:
        for path in files_pip_compile_reads(requirements_in):
            if path.is_absolute() or path in files:
                continue
            if path.parts[0] == "..":
                raise TfdockError(
                    f"{requirements_in} names {path}, outside this folder; `make lock` compiles "
                    "in a copy of this folder, so keep the files it names inside it."
                )
            files.append(path)
    return files


def _check_inputs(packages: tuple[str, ...]) -> None:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    for requirements_in, lock in LOCK_PAIRS:
        if not requirements_in.is_file():
            raise TfdockError(f"{requirements_in} does not exist; run from the repository root.")
        if not os.access(lock.parent, os.W_OK) or (lock.exists() and not os.access(lock, os.W_OK)):
            raise TfdockError(
                f"{lock.resolve()} cannot be written by this user (uid {os.getuid()}); "
                "run `make lock` as the owner of the repository."
            )
    pinned = set().union(*(read_lock(lock).pins for _, lock in LOCK_PAIRS if lock.is_file()))
    for package in packages:
        try:
            name = canonicalize_name(Requirement(package).name)
        except InvalidRequirement:
            raise TfdockError(
                f"PACKAGE={package} is not a package name (or name==version); "
                "e.g. `make upgrade PACKAGE=numpy`."
            ) from None
        if name not in pinned:
            raise TfdockError(
                f"{package} is in neither lock: to add it, name it in requirements.in "
                "and run `make lock`."
            )


def _run_pip_compile(
    command: list[str], environment: dict[str, str], lock: Path, cwd: Path
) -> None:
    """Run pip-compile; on failure, show pip's ERROR lines (not its traceback) and one sentence."""
    try:
        result = subprocess.run(
            command, env=environment, stderr=subprocess.PIPE, text=True, cwd=cwd
        )
    except OSError as exc:
        raise TfdockError(f"cannot run {command[0]} ({exc.strerror}); run `make setup`.") from None
    errors = [redact(line.strip()) for line in result.stderr.splitlines() if "ERROR:" in line]
    if result.returncode == 0:
        sys.stderr.write(redact(result.stderr))  # pip-compile's warnings, if it had any
        return
    for line in dict.fromkeys(errors):
        print(line, file=sys.stderr)
    raise TfdockError(
        f"pip-compile could not compile {lock} from {index_name(environment)} "
        f"({last_reason(result.stderr)}); both locks are left as they were."
    )


def last_reason(stderr: str) -> str:
    """Return the gist of pip-compile's failure: its exception's message, else its last line."""
    lines = [redact(line.strip()) for line in stderr.splitlines() if line.strip()]
    if not lines:
        return "no message"
    exception = re.match(r"^[\w.]+: (.+)$", lines[-1])
    return exception.group(1) if exception else lines[-1].removeprefix("ERROR: ")


def index_name(environment: dict[str, str]) -> str:
    """Name the index pip-compile used, without any credentials in its URL."""
    url = urlsplit(environment.get("PIP_INDEX_URL") or DEFAULT_INDEX)
    return f"{url.scheme}://{url.hostname}{f':{url.port}' if url.port else ''}{url.path}"


def _change(lock: Path, old: dict[str, str]) -> LockChange:
    new = read_lock(lock).pins
    return LockChange(
        lock,
        added={n: v for n, v in new.items() if n not in old},
        removed={n: v for n, v in old.items() if n not in new},
        changed={n: (old[n], v) for n, v in new.items() if n in old and old[n] != v},
    )
