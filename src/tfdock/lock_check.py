"""Check a lock against its .in file: by compiling it again when the index answers.

Offline only the structure can be checked (every requirement pinned within its
range, every pin hashed). When the package index answers, pip-compile compiles
the .in file again from the lock, exactly as `make lock` would (the same flags
and the same pip settings: tfdock.lock_compile's policy), and the result is
compared pin by pin and hash by hash.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from tfdock.errors import TfdockError
from tfdock.lock import Lock, lock_drift, read_lock
from tfdock.lock_compile import (
    index_name,
    last_reason,
    pip_compile_command,
    pip_compile_environment,
)

INDEX_PROBE_SECONDS = 120  # pip's own timeout and retries run inside this bound
# pip's verbose words for an index that answered but refused (tfdock.lock_check.index_refusal).
_REFUSED = re.compile(r"\b(401|403)\b (?:Client )?Error")
_UNTRUSTED = re.compile(r"CERTIFICATE_VERIFY_FAILED|problem confirming the ssl certificate", re.I)
# urllib3's debug line for a request the index answered: '"GET /simple/six/ HTTP/1.1" 404'.
_HTTP_ANSWER = re.compile(r'"GET \S+ HTTP/[\d.]+" \d{3}')
_NO_CLIENT_CERT = re.compile(r"TLS certificate file|client certificate|PEM lib", re.I)
COMPILE_TIMEOUT_SECONDS = 900
# pip's report of downloads whose hashes are not the lock's: "    six==1.16.0 from URL (...):"
_HASH_MISMATCH_HEADER = "THESE PACKAGES DO NOT MATCH THE HASHES"
_HASH_MISMATCH = re.compile(r"^\s+([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) from \S+.*:$", re.M)


def lock_check(requirements_in: Path, lock_path: Path, offline: bool = False) -> int:
    """`tfdock lock-check`: the structure offline, and a recompile when the index answers."""
    if not requirements_in.is_file():
        raise TfdockError(f"{requirements_in} does not exist; run from the repository root.")
    lock = read_lock(lock_path)
    problems = lock_drift(requirements_in, lock)
    environment = None if offline or problems else pip_compile_environment()
    online = environment is not None and index_answers(environment, next(iter(lock.pins), "pip"))
    if online:
        problems = recompile_problems(requirements_in, lock_path, environment)
    if problems:
        for problem in problems:
            print(f"{lock_path}: {problem}", file=sys.stderr)
        print(
            f"tfdock: error: {lock_path} no longer matches {requirements_in}; "
            "run `make lock` to recompile it (never edit it by hand).",
            file=sys.stderr,
        )
        return 1
    if online:
        print(f"{lock_path} matches {requirements_in}: pip-compile made the same pins and hashes")
    else:
        why = "--offline" if offline else "the package index did not answer"
        print(
            f"{lock_path} matches {requirements_in} in structure only ({why}): every requirement "
            "is pinned within its range and hashed, but the pins and hashes were not recompiled"
        )
    return 0


def index_answers(environment: Mapping[str, str], project: str = "pip") -> bool:
    """Say whether the package index that pip-compile would use answers now.

    pip itself asks (`pip index versions PROJECT`), in pip-compile's very environment,
    so credentials in the URL, client certificates, trusted hosts and proxies count as
    they will when compiling. An index that refuses the credentials or whose certificate
    is not trusted is an error that names the setting to fix, never "did not answer".
    """
    command = [sys.executable, "-m", "pip", "-vv", "index", "versions", "--no-input", project]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, env=dict(environment),
            stdin=subprocess.DEVNULL, timeout=INDEX_PROBE_SECONDS, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return False
    if result.returncode == 0:
        return True
    output = result.stdout + result.stderr
    refusal = index_refusal(output, index_name(environment))
    if refusal:
        raise TfdockError(refusal)
    # Any HTTP answer counts (a 404 for a package it does not have, say): pip-compile
    # then says what is wrong. Without one, the index was not reached.
    return _HTTP_ANSWER.search(output) is not None


def index_refusal(pip_output: str, index: str) -> str | None:
    """The sentence for an index that answered but refused us, from pip's verbose output."""
    code = _REFUSED.search(pip_output)
    if code:
        return (
            f"the package index {index} refused the credentials (HTTP {code.group(1)}); fix "
            "the user and password or token in index-url (PIP_INDEX_URL or pip.conf)."
        )
    if _UNTRUSTED.search(pip_output):
        return (
            f"the package index {index} has a TLS certificate this machine does not trust; "
            "point cert (PIP_CERT or pip.conf) at the CA bundle that signs it."
        )
    if _NO_CLIENT_CERT.search(pip_output):
        return (
            "client-cert (PIP_CLIENT_CERT or pip.conf) names a file that cannot be read as a "
            "certificate and key; point it at your client certificate's PEM file."
        )
    return None


def recompile_problems(
    requirements_in: Path, lock_path: Path, environment: Mapping[str, str]
) -> list[str]:
    """Compile ``requirements_in`` again from the lock, as `make lock` would; list the differences.

    Like `make lock`, pip-compile starts from the existing lock: it keeps each
    pin that still fits (so a newer release on the index is no difference) and
    reuses its hashes, checking them against every file it downloads. A pin
    changed by hand therefore fails pip's hash check, which is reported per
    package; any other difference shows in the compiled result.
    """
    with tempfile.TemporaryDirectory(prefix="tfdock-lock-check-") as scratch:
        output = Path(scratch) / Path(lock_path).name
        shutil.copyfile(lock_path, output)
        result = _run_pip_compile(requirements_in, output, environment)
        if result.returncode == 0:
            return compare_locks(read_lock(lock_path), read_lock(output))
    mismatched = _HASH_MISMATCH.findall(result.stderr)
    if _HASH_MISMATCH_HEADER in result.stderr and mismatched:
        return [
            f"{name}=={version} has hashes that are not those of its files on the package index"
            for name, version in mismatched
        ]
    raise TfdockError(
        f"pip-compile could not compile {requirements_in} ({last_reason(result.stderr)}); "
        "fix it, then run `make lock`."
    )


def _run_pip_compile(
    requirements_in: Path, output: Path, environment: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    command = pip_compile_command(requirements_in, output)
    try:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=dict(environment),
            timeout=COMPILE_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise TfdockError(
            f"pip-compile did not finish {requirements_in} within {COMPILE_TIMEOUT_SECONDS} s; "
            "check the package index, or run `tfdock lock-check --offline` for the structure only."
        ) from None


def compare_locks(lock: Lock, fresh: Lock) -> list[str]:
    """List how ``lock`` differs from ``fresh`` (pip-compile's own result), pin by pin."""
    problems = []
    for name in sorted(set(lock.pins) | set(fresh.pins)):
        if name not in fresh.pins:
            problems.append(f"{name}=={lock.pins[name]} is pinned, but pip-compile drops it")
        elif name not in lock.pins:
            problems.append(f"{name}=={fresh.pins[name]} is missing (pip-compile pins it)")
        elif lock.pins[name] != fresh.pins[name]:
            problems.append(
                f"{name} is pinned to {lock.pins[name]}, pip-compile pins {fresh.pins[name]}"
            )
        elif sorted(lock.hashes[name]) != sorted(fresh.hashes[name]):
            problems.append(
                f"{name}=={lock.pins[name]} has hashes that are not those of its files "
                "on the package index"
            )
        elif str(lock.markers.get(name)) != str(fresh.markers.get(name)):
            problems.append(
                f"{name} has the marker {lock.markers.get(name)}, pip-compile writes "
                f"{fresh.markers.get(name)}"
            )
    return problems
