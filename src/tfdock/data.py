"""Load MNIST: Keras's mnist.npz (downloaded and cached) or local files for offline use."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import struct
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfdock._files import DISK_FULL, atomic_path, sha256_of
from tfdock.errors import TfdockError
from tfdock.settings import TRAIN_SIZE  # there it bounds --batch-size and --limit

NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)
TEST_SIZE = 10_000

KERAS_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
KERAS_MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")

# The four official IDX files and their published sha256 checksums.
IDX_FILES = {
    "x_train": (
        "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    "y_train": (
        "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    "x_test": (
        "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    "y_test": (
        "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
}
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049

DATA_ENV = "TFDOCK_DATA"
CACHE_ENV = "TFDOCK_CACHE"
OFFLINE_HINT = (
    f"pass --data PATH (or set {DATA_ENV}) to a local mnist.npz or to a folder "
    "holding the four official MNIST .gz files"
)


@dataclass(frozen=True)
class Mnist:
    """The MNIST arrays as published: uint8 images (N, 28, 28) and uint8 labels (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    sha256: str
    """The data's identity: the npz file's sha256, or that of the four .gz files in order."""


def default_cache_dir() -> Path:
    """Return the folder where the downloaded mnist.npz is kept."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tfdock"


def load_mnist(data: str | os.PathLike[str] | None = None, cache_dir: Path | None = None) -> Mnist:
    """Load MNIST from ``data`` (npz file or IDX folder), ``$TFDOCK_DATA``, or the download cache."""
    if data is None or str(data) == "":
        data = os.environ.get(DATA_ENV) or None
    try:
        if data is not None:
            return load_local(Path(data))
        return _load_cached_download(cache_dir or default_cache_dir())
    except PermissionError as exc:
        raise TfdockError(
            f"cannot read {exc.filename or data}: permission denied; make it readable for this "
            "user (and its folders searchable), or pass --data a copy this user can read."
        ) from None


def load_local(path: Path) -> Mnist:
    """Load a user's MNIST: a Keras-format .npz file or a folder of the four IDX .gz files."""
    if not path.exists():
        raise TfdockError(
            f"MNIST data not found at {path}: {OFFLINE_HINT}, or leave both unset to download it."
        )
    if path.is_dir():
        return load_idx_folder(path)
    return load_npz(path)


def load_npz(path: Path) -> Mnist:
    """Load and validate a Keras-format mnist.npz."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in KERAS_MNIST_KEYS if key not in archive.files]
            if missing:
                raise TfdockError(
                    f"{path} is not a Keras-format mnist.npz: it lacks {', '.join(missing)} "
                    f"(expected arrays {', '.join(KERAS_MNIST_KEYS)}); {OFFLINE_HINT}."
                )
            arrays = {key: archive[key] for key in KERAS_MNIST_KEYS}
    except (TfdockError, PermissionError):
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise TfdockError(
            f"{path} cannot be read as a Keras-format mnist.npz ({_reason(exc)}); it may be "
            f"truncated or corrupt: download it again (sha256 {KERAS_MNIST_SHA256}) "
            f"or {OFFLINE_HINT}."
        ) from None
    return _validated(arrays, str(path), sha256_of(path))


def load_idx_folder(folder: Path) -> Mnist:
    """Load the four official IDX .gz files from ``folder``, checking their published sha256."""
    missing = [name for name, _ in IDX_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise TfdockError(
            f"{folder} lacks {', '.join(missing)}: an MNIST folder needs all four official files "
            f"({', '.join(name for name, _ in IDX_FILES.values())})."
        )
    arrays = {}
    identity = hashlib.sha256()
    for key, (name, expected) in IDX_FILES.items():
        file = folder / name
        compressed = file.read_bytes()
        actual = hashlib.sha256(compressed).hexdigest()
        if actual != expected:
            raise TfdockError(
                f"{file} has sha256 {actual}, but the official file has {expected}: "
                "it is corrupt, truncated or not MNIST; replace it with the official download."
            )
        identity.update(compressed)
        arrays[key] = read_idx(file, compressed)
    return _validated(arrays, str(folder), identity.hexdigest())


def read_idx(file: Path, compressed: bytes | None = None) -> np.ndarray:
    """Decode one gzip-compressed IDX file (images or labels) into a uint8 array.

    ``compressed`` is the file's bytes when the caller has read them already.
    """
    try:
        raw = gzip.decompress(file.read_bytes() if compressed is None else compressed)
    except PermissionError:
        raise
    except (OSError, EOFError) as exc:
        raise TfdockError(
            f"{file} cannot be decompressed ({_reason(exc)}); replace it with the official file."
        ) from None
    if len(raw) < 8:
        raise TfdockError(
            f"{file} is too short to be an IDX file; replace it with the official file."
        )
    magic, count = struct.unpack(">II", raw[:8])
    if magic == IDX_IMAGES_MAGIC:
        header = 16
        if len(raw) < header:
            raise TfdockError(
                f"{file} has a truncated IDX header; replace it with the official file."
            )
        rows, cols = struct.unpack(">II", raw[8:16])
        shape: tuple[int, ...] = (count, rows, cols)
    elif magic == IDX_LABELS_MAGIC:
        header = 8
        shape = (count,)
    else:
        raise TfdockError(
            f"{file} is not an MNIST IDX file (magic number {magic}, expected "
            f"{IDX_IMAGES_MAGIC} for images or {IDX_LABELS_MAGIC} for labels)."
        )
    expected_bytes = header + int(np.prod(shape))
    if len(raw) != expected_bytes:
        raise TfdockError(
            f"{file} holds {len(raw)} bytes but its header announces {expected_bytes}: "
            "it is truncated or corrupt; replace it with the official file."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _validated(arrays: dict[str, np.ndarray], source: str, sha256: str) -> Mnist:
    expected_counts = {"train": TRAIN_SIZE, "test": TEST_SIZE}
    for split, count in expected_counts.items():
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.dtype != np.uint8 or labels.dtype != np.uint8:
            raise TfdockError(
                f"{source}: x_{split}/y_{split} have dtypes {images.dtype}/{labels.dtype}, "
                "expected uint8 pixels and uint8 labels as in the official MNIST."
            )
        if images.shape != (count, *IMAGE_SHAPE) or labels.shape != (count,):
            raise TfdockError(
                f"{source}: x_{split} has shape {images.shape} and y_{split} {labels.shape}, "
                f"expected ({count}, 28, 28) and ({count},) as in the official MNIST."
            )
        if labels.max(initial=0) >= NUM_CLASSES:
            raise TfdockError(
                f"{source}: y_{split} holds label {int(labels.max())}, but MNIST labels are 0 to 9."
            )
    return Mnist(
        arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], source, sha256
    )


def _load_cached_download(cache_dir: Path) -> Mnist:
    cached = cache_dir / "mnist.npz"
    if cached.is_file():
        if sha256_of(cached) == KERAS_MNIST_SHA256:
            return load_npz(cached)
        # Our own cache only: a corrupt copy is discarded and fetched again, once.
        cached.unlink()
    download(KERAS_MNIST_URL, cached, KERAS_MNIST_SHA256)
    return load_npz(cached)


def download(url: str, target: Path, sha256: str) -> None:
    """Download ``url`` to ``target`` atomically, refusing a file whose sha256 differs.

    The file gets the mode the umask gives (0644 under umask 022), so a shared cache
    is readable to the team. A network failure and a failed write are told apart.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            _fetch(url, tmp)
            actual = sha256_of(tmp)
            if actual != sha256:
                raise TfdockError(
                    f"the MNIST download from {url} has sha256 {actual}, expected {sha256}; "
                    f"try again later or {OFFLINE_HINT}."
                )
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise TfdockError(
                f"no space left on the disk holding {target.parent}; free some, or set "
                f"{CACHE_ENV} to a folder on another disk."
            ) from None
        raise TfdockError(
            f"cannot write the MNIST cache {target} ({exc.strerror}); set {CACHE_ENV} to a "
            f"folder you can write to, or {OFFLINE_HINT}."
        ) from None


def _fetch(url: str, tmp: Path) -> None:
    """Copy ``url`` into ``tmp``; a failure on the network side is one sentence saying so."""
    with open(tmp, "wb") as out:
        try:
            response = urllib.request.urlopen(url, timeout=60)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise _network_failure(url, exc) from None
        with response:
            while True:
                try:
                    block = response.read(1 << 20)
                except (OSError, TimeoutError, http.client.HTTPException) as exc:
                    raise _network_failure(url, exc) from None
                if not block:
                    return
                out.write(block)  # an OSError here is the disk's, not the network's


def _network_failure(url: str, exc: BaseException) -> TfdockError:
    return TfdockError(
        f"cannot download MNIST from {url} ({_reason(exc)}); check the network or {OFFLINE_HINT}."
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and exc.reason:
        return str(exc.reason)
    return str(exc) or type(exc).__name__
