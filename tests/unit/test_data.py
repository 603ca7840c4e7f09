"""MNIST loading: both local formats, the download cache, and a clear sentence for bad data."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tfdock import data
from tfdock.data import IDX_FILES, load_idx_folder, load_mnist, load_npz, read_idx
from tfdock.errors import TfdockError


def _arrays(train=60_000, test=10_000, label_dtype=np.uint8, image_shape=(28, 28)):
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (train, *image_shape), dtype=np.uint8),
        "y_train": rng.integers(0, 10, train).astype(label_dtype),
        "x_test": rng.integers(0, 256, (test, *image_shape), dtype=np.uint8),
        "y_test": rng.integers(0, 10, test).astype(label_dtype),
    }


def _write_npz(path: Path, arrays: dict) -> Path:
    np.savez(path, **arrays)
    return path


def _idx_bytes(array: np.ndarray) -> bytes:
    if array.ndim == 3:
        header = struct.pack(">IIII", 2051, *array.shape)
    else:
        header = struct.pack(">II", 2049, array.shape[0])
    return header + array.tobytes()


@pytest.fixture(scope="module")
def good_npz(tmp_path_factory) -> Path:
    return _write_npz(tmp_path_factory.mktemp("npz") / "mnist.npz", _arrays())


def test_npz_loads_as_uint8_arrays(good_npz):
    """A Keras-format npz loads with the official shapes and dtypes."""
    mnist = load_npz(good_npz)
    assert mnist.x_train.shape == (60_000, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.y_test.shape == (10_000,)
    assert mnist.source == str(good_npz)


def test_data_argument_beats_environment(good_npz, monkeypatch, tmp_path):
    """--data wins over $TFDOCK_DATA, and $TFDOCK_DATA is used when --data is absent."""
    monkeypatch.setenv("TFDOCK_DATA", str(tmp_path / "nowhere"))
    assert load_mnist(good_npz).source == str(good_npz)
    monkeypatch.setenv("TFDOCK_DATA", str(good_npz))
    assert load_mnist().source == str(good_npz)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("y_test"), "lacks y_test"),
        (lambda a: a.update(x_train=a["x_train"][:100]), r"expected \(60000, 28, 28\)"),
        (lambda a: a.update(y_train=a["y_train"].astype(np.int64)), "expected uint8"),
        (lambda a: a.update(x_test=a["x_test"].astype(np.float32)), "expected uint8"),
        (lambda a: a["y_train"].__setitem__(5, 11), "labels are 0 to 9"),
    ],
    ids=[
        "missing-array",
        "wrong-shape",
        "wrong-label-dtype",
        "wrong-image-dtype",
        "label-out-of-range",
    ],
)
def test_bad_npz_content_is_named(tmp_path, change, message):
    """Each kind of wrong content gives a sentence naming the file and what was expected."""
    arrays = _arrays()
    change(arrays)
    path = _write_npz(tmp_path / "bad.npz", arrays)
    before = path.read_bytes()
    with pytest.raises(TfdockError, match=message) as caught:
        load_npz(path)
    assert str(path) in str(caught.value)
    assert path.read_bytes() == before, "a user's file must never be changed"


def test_truncated_npz_is_reported_and_kept(good_npz, tmp_path):
    """A truncated npz is reported as truncated or corrupt, and the file is left alone."""
    path = tmp_path / "mnist.npz"
    path.write_bytes(good_npz.read_bytes()[:100_000])
    with pytest.raises(TfdockError, match="truncated or corrupt"):
        load_mnist(path)
    assert path.stat().st_size == 100_000


def test_missing_path_says_how_to_fix(tmp_path):
    """A path that does not exist names the path and the offline options."""
    with pytest.raises(TfdockError, match=r"not found at .*--data PATH"):
        load_mnist(tmp_path / "absent.npz")


def test_idx_folder_missing_files_are_listed(tmp_path):
    """A folder without the four IDX files lists the missing ones."""
    (tmp_path / IDX_FILES["x_train"][0]).write_bytes(b"x")
    with pytest.raises(TfdockError, match=r"lacks train-labels-idx1-ubyte.gz, t10k-images"):
        load_idx_folder(tmp_path)


def test_idx_wrong_checksum_is_refused(tmp_path, mnist_dir):
    """An IDX file whose sha256 differs from the published one is refused by name."""
    for name, _ in IDX_FILES.values():
        shutil.copy(mnist_dir / name, tmp_path / name)
    victim = tmp_path / IDX_FILES["y_test"][0]
    victim.write_bytes(victim.read_bytes()[:-10])
    with pytest.raises(TfdockError, match=r"t10k-labels-idx1-ubyte.gz has sha256 .* official"):
        load_idx_folder(tmp_path)
    assert victim.exists()


def test_idx_folder_loads_the_official_files(mnist_dir):
    """The official files load with the published per-digit counts."""
    mnist = load_idx_folder(mnist_dir)
    assert mnist.x_train.shape == (60_000, 28, 28)
    assert np.bincount(mnist.y_test).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]


def test_npz_identity_is_its_sha256(good_npz):
    """An npz's identity, recorded in every run, is the sha256 of the file's bytes."""
    assert load_npz(good_npz).sha256 == hashlib.sha256(good_npz.read_bytes()).hexdigest()


def test_idx_folder_identity_is_the_sha256_of_its_four_files(mnist_dir):
    """A folder's identity is the sha256 of its four .gz files, in the order IDX_FILES lists them."""
    digest = hashlib.sha256()
    for name, _ in IDX_FILES.values():
        digest.update((mnist_dir / name).read_bytes())
    assert load_idx_folder(mnist_dir).sha256 == digest.hexdigest()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (gzip.compress(_idx_bytes(np.zeros(5, np.uint8)))[:-6], "cannot be decompressed"),
        (gzip.compress(b"\x00\x00\x08\x99" + b"\x00" * 20), "not an MNIST IDX file"),
        (gzip.compress(_idx_bytes(np.zeros((3, 28, 28), np.uint8))[:-1]), "truncated or corrupt"),
        (b"plain bytes, not gzip", "cannot be decompressed"),
    ],
    ids=["truncated-gzip", "bad-magic", "short-payload", "not-gzip"],
)
def test_corrupt_idx_is_reported(tmp_path, payload, message):
    """A corrupt IDX file gives one sentence naming it."""
    path = tmp_path / "file-idx1-ubyte.gz"
    path.write_bytes(payload)
    with pytest.raises(TfdockError, match=message):
        read_idx(path)


class _Server:
    """Serve one folder over HTTP on loopback, counting requests."""

    def __init__(self, folder: Path):
        self.requests = 0
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def do_GET(self):
                outer.requests += 1
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mnist.npz"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_corrupt_cache_is_discarded_and_fetched_once(tmp_path, monkeypatch, good_npz):
    """A corrupt file in the kit's own cache is replaced by one fresh download."""
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(good_npz, served / "mnist.npz")
    digest = hashlib.sha256((served / "mnist.npz").read_bytes()).hexdigest()
    server = _Server(served)
    try:
        monkeypatch.setattr(data, "KERAS_MNIST_URL", server.url)
        monkeypatch.setattr(data, "KERAS_MNIST_SHA256", digest)
        monkeypatch.delenv("TFDOCK_DATA", raising=False)
        cache = tmp_path / "cache"
        cache.mkdir()
        (cache / "mnist.npz").write_bytes(b"garbage from an interrupted download")
        mnist = load_mnist(cache_dir=cache)
        assert mnist.x_train.shape == (60_000, 28, 28)
        assert server.requests == 1
        load_mnist(cache_dir=cache)
        assert server.requests == 1, "a good cached file is not downloaded again"
    finally:
        server.close()


def test_no_network_gives_offline_hint(tmp_path, monkeypatch):
    """When the download fails, the sentence names the URL and the offline option."""
    monkeypatch.setattr(data, "KERAS_MNIST_URL", "http://127.0.0.1:9/mnist.npz")
    monkeypatch.delenv("TFDOCK_DATA", raising=False)
    with pytest.raises(TfdockError, match=r"cannot download MNIST from .*--data PATH"):
        load_mnist(cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == [], "no half-written download is left behind"


def test_download_with_wrong_checksum_leaves_nothing(tmp_path, monkeypatch, good_npz):
    """A download whose sha256 is wrong is refused and not kept."""
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(good_npz, served / "mnist.npz")
    server = _Server(served)
    try:
        monkeypatch.setattr(data, "KERAS_MNIST_URL", server.url)
        cache = tmp_path / "cache"
        with pytest.raises(TfdockError, match=r"has sha256 .* expected 731c5ac6"):
            load_mnist(cache_dir=cache)
        assert list(cache.iterdir()) == []
    finally:
        server.close()


@pytest.fixture
def served_mnist(tmp_path, good_npz):
    """An mnist.npz served over HTTP on loopback: (URL, its sha256)."""
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(good_npz, served / "mnist.npz")
    server = _Server(served)
    yield server.url, hashlib.sha256((served / "mnist.npz").read_bytes()).hexdigest()
    server.close()


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664)])
def test_the_cached_download_gets_the_mode_the_umask_gives(tmp_path, served_mnist, umask, mode):
    """The cached mnist.npz is created like any file the user writes, so a shared cache is readable to the team."""
    url, digest = served_mnist
    cached = tmp_path / "cache" / "mnist.npz"
    code = (
        "import os, sys; from pathlib import Path; from tfdock.data import download; "
        f"os.umask({umask}); download(sys.argv[1], Path(sys.argv[2]), sys.argv[3])"
    )
    subprocess.run([sys.executable, "-c", code, url, str(cached), digest], check=True, timeout=120)
    assert cached.stat().st_mode & 0o777 == mode


def test_a_full_disk_while_caching_says_so_not_the_network(small_disk, served_mnist, monkeypatch):
    """A cache on a full disk (a 16 MiB tmpfs; MNIST is larger) is a full-disk sentence, and no partial file stays."""
    url, digest = served_mnist
    monkeypatch.setattr(data, "KERAS_MNIST_URL", url)
    monkeypatch.setattr(data, "KERAS_MNIST_SHA256", digest)
    monkeypatch.delenv("TFDOCK_DATA", raising=False)
    with pytest.raises(TfdockError) as failure:
        load_mnist(cache_dir=small_disk)
    assert str(failure.value) == (
        f"no space left on the disk holding {small_disk}; free some, or set TFDOCK_CACHE to a "
        "folder on another disk."
    )
    assert os.listdir(small_disk) == []


def test_a_cache_that_cannot_be_written_names_it(tmp_path, monkeypatch):
    """A cache folder that cannot be made is one sentence naming the file and TFDOCK_CACHE, not a traceback."""
    monkeypatch.delenv("TFDOCK_DATA", raising=False)
    (tmp_path / "a-file").write_text("")
    cache = tmp_path / "a-file" / "cache"
    with pytest.raises(TfdockError) as failure:
        load_mnist(cache_dir=cache)
    assert str(failure.value) == (
        f"cannot write the MNIST cache {cache / 'mnist.npz'} (Not a directory); set TFDOCK_CACHE "
        f"to a folder you can write to, or {data.OFFLINE_HINT}."
    )
