"""Read pip-tools locks and compare them with requirements.in and with an environment.

Requirement lines are read the way pip reads them (continuation lines joined,
comments dropped, options split off) and parsed with ``packaging``, so
extras, URL and VCS requirements (``name @ git+https://...``) and environment
markers (``; platform_machine == "x86_64"``) are understood.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from tfdock.errors import TfdockError

if TYPE_CHECKING:
    from packaging.markers import Marker
    from packaging.requirements import Requirement

DEFAULT_LOCK = Path("requirements.txt")
LOCK_ENV = "TFDOCK_LOCK"
# The kit's own package is installed on top of the lock with --no-deps.
PROJECT_NAME = "tfdock"

_COMMENT = re.compile(r"(^|\s+)#.*$")
_VIA_INPUT = re.compile(r"#\s+(?:via\s+)?-r\s+(\S+)")
_INCLUDES = ("-r", "--requirement", "-c", "--constraint")
_EGG = re.compile(r"#egg=([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass
class Lock:
    """A compiled lock: exact pins, their hashes, and where each came from."""

    path: Path
    pins: dict[str, str]
    """{name: version}, or {name: URL} for a URL or VCS requirement."""
    hashes: dict[str, list[str]]
    markers: dict[str, Marker | None] = field(default_factory=dict)
    """Each pin's environment marker, None when it applies everywhere."""
    direct: dict[str, set[str]] = field(default_factory=dict)
    """For each ``-r FILE`` named in the lock's comments, the packages it asked for."""
    loose: list[str] = field(default_factory=list)
    """Requirements that are neither ``==`` pins nor URLs (a lock has none)."""

    def applies(self, name: str) -> bool:
        """Say whether the pin ``name`` applies to this machine (its marker, if any, holds)."""
        marker = self.markers.get(name)
        return marker is None or marker.evaluate()


@dataclass(frozen=True)
class RequirementLine:
    """One requirement of a requirements file, with its options."""

    requirement: Requirement
    options: tuple[str, ...]


def read_text(path: Path, what: str) -> str:
    """Read a lock (``what="lock"``) or a .in file, or raise one sentence saying why it cannot be."""
    fix = (
        f"pass the requirements.txt that pip-compile wrote (or set {LOCK_ENV} to it)"
        if what == "lock"
        else "pass the requirements.in that the lock is compiled from"
    )
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TfdockError(f"cannot read the {what} {path} ({exc.strerror}); {fix}.") from None
    except UnicodeDecodeError:
        raise TfdockError(
            f"the {what} {path} is not a text file (it is binary, or not UTF-8); {fix}."
        ) from None


def requirement_lines(path: Path, text: str) -> list[RequirementLine]:
    """Parse the requirement lines of a requirements file; options lines are skipped."""
    return [entry for _, entry in _entries(path, text) if entry is not None]


def _entries(path: Path, text: str) -> list[tuple[str, RequirementLine | None]]:
    """Return each logical line with its parsed requirement (None for comments and options)."""
    return [(line, _parse_line(path, number, line)) for number, line in _logical_lines(text)]


def _parse_line(path: Path, number: int, line: str) -> RequirementLine | None:
    """Split a line into requirement and options as pip does, and parse the requirement."""
    from packaging.requirements import InvalidRequirement, Requirement

    tokens = _COMMENT.sub("", line).split()
    if tokens and tokens[0] in ("-e", "--editable"):
        tokens = [*_editable_as_requirement(path, number, tokens[1:]).split(), *tokens[2:]]
    split = next((i for i, token in enumerate(tokens) if token.startswith("-")), len(tokens))
    if split == 0:
        return None  # a comment, a blank line, or an option such as -r, -c or --index-url
    try:
        requirement = Requirement(" ".join(tokens[:split]))
    except InvalidRequirement as exc:
        raise TfdockError(
            f"line {number} of {path} is not a requirement pip can read ({exc}); write a "
            "name with a version range, or `name @ URL` for a URL or VCS requirement."
        ) from None
    return RequirementLine(requirement, tuple(tokens[split:]))


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join lines continued with a backslash, as pip does; number them by their first line."""
    lines, buffer, first = [], "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not buffer:
            first = number
        if raw.endswith("\\"):
            buffer += raw[:-1] + " "
            continue
        lines.append((first, buffer + raw))
        buffer = ""
    if buffer:
        lines.append((first, buffer))
    return lines


def _editable_as_requirement(path: Path, number: int, rest: list[str]) -> str:
    url = rest[0] if rest else ""
    egg = _EGG.search(url)
    if not egg:
        raise TfdockError(
            f"line {number} of {path} is an editable requirement without a name; write it "
            "as `-e URL#egg=NAME`, or `NAME @ URL`."
        )
    return f"{egg.group(1)} @ {url.split('#', 1)[0]}"


def read_lock(path: Path) -> Lock:
    """Parse a requirements.txt written by ``pip-compile --generate-hashes``."""
    lock = Lock(Path(path), pins={}, hashes={})
    current = None
    for line, entry in _entries(path, read_text(path, "lock")):
        if entry is not None:
            current = _add_pin(lock, entry)
        via = _VIA_INPUT.search(line)
        if current and via:
            lock.direct.setdefault(Path(via.group(1)).name, set()).add(current)
    if not lock.pins:
        raise TfdockError(f"{path} pins no packages; regenerate it with `make lock`.")
    return lock


def _add_pin(lock: Lock, entry: RequirementLine) -> str | None:
    """Record one requirement of the lock; return its name, or None when it is not a pin."""
    requirement = entry.requirement
    name = canonicalize_name(requirement.name)
    specifiers = list(requirement.specifier)
    if requirement.url:
        lock.pins[name] = requirement.url
    elif (
        len(specifiers) == 1 and specifiers[0].operator == "==" and "*" not in specifiers[0].version
    ):
        lock.pins[name] = specifiers[0].version
    else:
        lock.loose.append(str(requirement))
        return None
    lock.markers[name] = requirement.marker
    lock.hashes[name] = [
        option.removeprefix("--hash=") for option in entry.options if option.startswith("--hash=")
    ]
    return name


def read_requirements_in(path: Path) -> dict[str, Requirement]:
    """Return {normalized name: requirement} for what a .in file (and its ``-r`` files) names."""
    wanted: dict[str, Requirement] = {}
    for source in _with_included_files(Path(path)):
        for line in requirement_lines(source, read_text(source, "requirements file")):
            wanted[canonicalize_name(line.requirement.name)] = line.requirement
    return wanted


def _with_included_files(path: Path, seen: tuple[Path, ...] = ()) -> list[Path]:
    """Return ``path`` and every file it includes with ``-r``, each once."""
    if path.resolve() in seen:
        return []
    files = [path]
    for _, line in _logical_lines(read_text(path, "requirements file")):
        tokens = _COMMENT.sub("", line).split()
        if len(tokens) == 2 and tokens[0] in ("-r", "--requirement"):
            included = path.parent / tokens[1]
            files += _with_included_files(included, (*seen, path.resolve()))
    return files


def files_pip_compile_reads(requirements_in: Path) -> list[Path]:
    """Return ``requirements_in`` and each existing file it names with -r or -c, recursively."""
    found: list[Path] = []
    pending = [Path(requirements_in)]
    while pending:
        path = pending.pop(0)
        if path in found or not path.is_file():
            continue
        found.append(path)
        for _, line in _logical_lines(read_text(path, "requirements file")):
            tokens = _COMMENT.sub("", line).split()
            if len(tokens) == 2 and tokens[0] in _INCLUDES:
                pending.append(Path(os.path.normpath(path.parent / tokens[1])))
    return found


def lock_drift(requirements_in: Path, lock: Lock) -> list[str]:
    """List how ``lock`` disagrees with ``requirements_in`` in structure; empty when it agrees.

    Offline, this is what can be checked: every requirement is pinned within its
    range (or to its URL), the lock pins nothing only a dropped requirement
    asked for, and every pin is exact and hashed. Whether the pins and hashes
    are what pip-compile makes of the .in file needs the index: lock_check.py's
    ``recompile_problems`` compiles it again and compares.
    """
    requirements_in = Path(requirements_in)
    files = _with_included_files(requirements_in)
    wanted = read_requirements_in(requirements_in)
    problems = [f"{text} is not pinned exactly (==version)" for text in lock.loose]
    for name, requirement in sorted(wanted.items()):
        problems += _pin_problems(name, requirement, lock, requirements_in.name)
    asked = set().union(*(lock.direct.get(f.name, set()) for f in files))
    for name in sorted(asked - set(wanted)):
        problems.append(f"{name} is pinned via {requirements_in.name}, which no longer names it")
    unhashed = sorted(name for name, digests in lock.hashes.items() if not digests)
    if unhashed:
        problems.append(f"pins without hashes: {', '.join(unhashed)}")
    return problems


def _pin_problems(name: str, requirement: Requirement, lock: Lock, in_name: str) -> list[str]:
    if name not in lock.pins:
        return [f"{name} is in {in_name} but not pinned in the lock"]
    pinned = lock.pins[name]
    if requirement.url:
        if pinned != requirement.url:
            return [
                f"{name} is pinned to {pinned} in the lock, but {in_name} asks for {requirement.url}"
            ]
        return []
    if "://" in pinned:
        return [
            f"{name} is pinned to the URL {pinned}, but {in_name} asks for {name}{requirement.specifier}"
        ]
    if not requirement.specifier.contains(pinned, prereleases=True):
        return [f"{name}=={pinned} in the lock does not satisfy {name}{requirement.specifier}"]
    return []


def installed_distributions() -> dict[str, str]:
    """Return {normalized name: version} for every distribution this Python can import."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist.version)
    return found


@dataclass
class EnvironmentDrift:
    """How an environment differs from a lock."""

    missing: dict[str, str]
    extra: dict[str, str]
    different: dict[str, tuple[str, str]]

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.different)

    def lines(self) -> list[str]:
        """Describe each difference, one package per line."""
        out = [f"missing: {n}=={v}" for n, v in sorted(self.missing.items())]
        out += [f"extra: {n}=={v} (not in the lock)" for n, v in sorted(self.extra.items())]
        out += [
            f"different: {n} is {have}, the lock pins {want}"
            for n, (want, have) in sorted(self.different.items())
        ]
        return out


def environment_drift(
    lock: Lock, installed: dict[str, str], ignore: frozenset[str] = frozenset({PROJECT_NAME})
) -> EnvironmentDrift:
    """Compare installed distributions with the pins that apply to this machine."""
    pins = {n: v for n, v in lock.pins.items() if lock.applies(n) and "://" not in v}
    missing = {n: v for n, v in pins.items() if n not in installed}
    extra = {n: v for n, v in installed.items() if n not in lock.pins and n not in ignore}
    different = {
        n: (v, installed[n])
        for n, v in pins.items()
        if n in installed and _canonical_version(installed[n]) != _canonical_version(v)
    }
    missing |= {n: v for n, v in lock.pins.items() if "://" in v and n not in installed}
    return EnvironmentDrift(missing, extra, different)


def _canonical_version(version: str) -> str:
    from packaging.version import InvalidVersion, Version

    try:
        return str(Version(version))
    except InvalidVersion:
        return version
