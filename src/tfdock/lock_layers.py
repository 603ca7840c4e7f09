"""Split a pip-compile lock into install layers: each root with what it needs, then the rest.

The images install the lock in layers by how often they change: TensorFlow and
everything it needs (in the GPU lock, the CUDA wheels too) first, then the
notebooks, then the rest. A one-package change to requirements.in then changes
only the layers whose part of the lock changed, and a pull moves megabytes, not
TensorFlow again (docs/images.md). Each part keeps its pins and hashes verbatim,
so every layer's install is hash-checked, and together the parts are exactly the
lock.

What a package needs is read from the lock itself: pip-compile writes, under
each pin, the packages it is there for (``# via keras``). No package is listed
by hand. This runs in the image build on the base's bare Python, before any of
the lock is installed, so it uses the standard library only.

Usage: python3 lock_layers.py LOCK OUTDIR ROOT [ROOT ...]
writes OUTDIR/<root>.txt for each root (its closure less earlier layers') and
OUTDIR/rest.txt, each a requirements file for ``pip install --require-hashes``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")
_VIA_ONE = re.compile(r"^\s+#\s+via\s+(\S+)")
_VIA_MORE = re.compile(r"^\s+#\s{2,}(\S+)")
REST = "rest"


@dataclass
class Pin:
    """One pin of a lock: its lines (requirement, hashes, comments) and who it is there for."""

    name: str
    lines: list[str] = field(default_factory=list)
    wanted_by: set[str] = field(default_factory=set)


def normalize(name: str) -> str:
    """Return the PEP 503 normal form of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(text: str) -> list[Pin]:
    """Read a pip-compile lock into its pins, each with its own lines and its ``via`` names."""
    pins: list[Pin] = []
    for line in text.splitlines():
        start = _PIN.match(line)
        if start:
            pins.append(Pin(normalize(start.group(1)), [line]))
        elif pins and line.startswith((" ", "\t")):
            pins[-1].lines.append(line)
            via = _VIA_ONE.match(line) or _VIA_MORE.match(line)
            if via and not via.group(1).startswith("-"):
                pins[-1].wanted_by.add(normalize(via.group(1)))
    return pins


def closure(pins: list[Pin], root: str) -> set[str]:
    """Return the root and every pin that something in the set is there for, transitively."""
    found = {normalize(root)} & {pin.name for pin in pins}
    grew = True
    while grew:
        before = len(found)
        found |= {pin.name for pin in pins if pin.wanted_by & found}
        grew = len(found) > before
    return found


def split(pins: list[Pin], roots: list[str]) -> dict[str, list[Pin]]:
    """Assign each pin to the first root whose closure holds it, else to the rest."""
    layers: dict[str, list[Pin]] = {}
    taken: set[str] = set()
    for root in roots:
        members = closure(pins, root) - taken
        layers[root] = [pin for pin in pins if pin.name in members]
        taken |= members
    layers[REST] = [pin for pin in pins if pin.name not in taken]
    return layers


def render(layer: str, pins: list[Pin]) -> str:
    """Return one layer's requirements file: a header, then its pins exactly as the lock has them."""
    header = f"# The lock's layer {layer!r}, written by lock_layers.py at image build.\n"
    return header + "".join("\n".join(pin.lines) + "\n" for pin in pins)


def main(argv: list[str] | None = None) -> int:
    """Write each layer's requirements file; say how many pins each holds."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3:
        print("usage: lock_layers.py LOCK OUTDIR ROOT [ROOT ...]", file=sys.stderr)
        return 2
    lock, outdir, roots = Path(args[0]), Path(args[1]), args[2:]
    layers = split(read_pins(lock.read_text(encoding="utf-8")), roots)
    outdir.mkdir(parents=True, exist_ok=True)
    for layer, pins in layers.items():
        (outdir / f"{layer}.txt").write_text(render(layer, pins), encoding="utf-8")
        print(f"lock_layers: {layer}: {len(pins)} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
