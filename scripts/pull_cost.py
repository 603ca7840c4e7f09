"""Say what a pull of NEW moves to a machine that already has OLD: its layers that OLD lacks.

    python scripts/pull_cost.py [--engine podman] OLD NEW

A layer is shared when its content (its diff ID, the sha256 of its tar) is in both
images; a pull fetches only the others. Their bytes are given as the engine stores
them (uncompressed) and gzip-compressed at gzip's default level, as `make push` sends
them. Used for docs/images.md's one-package lock change (make a change, `make image
IMAGE=tfdock-new`, then compare tfdock:cpu with tfdock-new:cpu).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

CHUNK = 1 << 20


def layer_ids(engine: str, image: str) -> list[str]:
    """Return the image's layer diff IDs, base first, or exit with one sentence."""
    result = subprocess.run(
        [engine, "image", "inspect", "--format", "{{json .RootFS.Layers}}", image],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"pull_cost: {engine} has no image {image}; build or pull it first.")
    return json.loads(result.stdout)


def new_layer_sizes(
    engine: str, image: str, ids: list[str], wanted: set[str]
) -> list[tuple[int, int]]:
    """Save the image and return (bytes, gzip bytes) of each of its layers whose diff ID is wanted."""
    with tempfile.TemporaryDirectory(prefix="pull-cost-") as folder:
        archive = Path(folder) / "image.tar"
        saved = subprocess.run(
            [engine, "save", "--output", str(archive), image],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if saved.returncode != 0:
            sys.exit(f"pull_cost: {engine} could not save {image}: {saved.stderr.strip()}")
        with tarfile.open(archive) as tar:
            # The archive lists its layer tars in the order of the config's diff IDs.
            members = json.load(tar.extractfile("manifest.json"))[0]["Layers"]
            return [
                _sizes(tar.extractfile(member))
                for member, layer_id in zip(members, ids, strict=True)
                if layer_id in wanted
            ]


def _sizes(layer) -> tuple[int, int]:
    """Return a layer tar's size, and its size gzip-compressed at gzip's default level."""
    counter, size = _ByteCounter(), 0
    with gzip.GzipFile(fileobj=counter, mode="wb", compresslevel=6, mtime=0) as packed:
        while chunk := layer.read(CHUNK):
            size += len(chunk)
            packed.write(chunk)
    return size, counter.count


class _ByteCounter:
    """A file that keeps nothing and counts the bytes written to it."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes) -> int:
        self.count += len(data)
        return len(data)

    def flush(self) -> None:
        return None


def main(argv: list[str] | None = None) -> int:
    """Print how many of NEW's layers, and how many bytes, a machine with OLD pulls."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default=os.environ.get("ENGINE", "docker"))
    parser.add_argument("old")
    parser.add_argument("new")
    args = parser.parse_args(argv)
    old, new = layer_ids(args.engine, args.old), layer_ids(args.engine, args.new)
    missing = set(new) - set(old)
    sizes = new_layer_sizes(args.engine, args.new, new, missing) if missing else []
    raw, packed = sum(s for s, _ in sizes), sum(p for _, p in sizes)
    print(
        f"pull_cost: {args.new} over {args.old}: {len(missing)} of {len(new)} layers to pull, "
        f"{raw / 1e6:.1f} MB ({packed / 1e6:.1f} MB gzip)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
