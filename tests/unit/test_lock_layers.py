"""The images install the lock in layers: TensorFlow's part, the notebooks', the rest; together the lock."""

from __future__ import annotations

import pytest

from tfdock import lock_layers
from tfdock.lock import read_lock

ROOTS = ["tensorflow", "jupyterlab"]  # as docker/*.Dockerfile's lock-layers stage names them


def _split(tmp_path, lock_path):
    """Write the layers of a lock into tmp_path/layers; return {layer: its parsed lock}."""
    out = tmp_path / "layers"
    assert lock_layers.main([str(lock_path), str(out), *ROOTS]) == 0
    return {path.stem: read_lock(path) for path in sorted(out.glob("*.txt"))}


@pytest.mark.parametrize("lock_name", ["requirements.txt", "requirements-gpu.txt"])
def test_the_layers_are_exactly_the_lock_pins_and_hashes(repo_root, tmp_path, lock_name):
    """Each pin of the lock lands in exactly one layer, with its version and every hash."""
    lock = read_lock(repo_root / lock_name)
    layers = _split(tmp_path, repo_root / lock_name)
    assert set(layers) == {"tensorflow", "jupyterlab", "rest"}
    names = [name for layer in layers.values() for name in layer.pins]
    assert sorted(names) == sorted(lock.pins), "no pin lost, none twice"
    for layer in layers.values():
        for name, version in layer.pins.items():
            assert version == lock.pins[name]
            assert layer.hashes[name] == lock.hashes[name], (
                f"{name}: hashes kept for --require-hashes"
            )
            assert layer.markers.get(name) == lock.markers.get(name), f"{name}: marker kept"


def test_tensorflow_layer_holds_what_tensorflow_needs_and_nothing_else(repo_root, tmp_path):
    """TensorFlow's layer has its dependencies (numpy, keras; the CUDA wheels for GPU), not Jupyter's."""
    cpu = _split(tmp_path / "cpu", repo_root / "requirements.txt")
    gpu = _split(tmp_path / "gpu", repo_root / "requirements-gpu.txt")
    for layers in (cpu, gpu):
        tensorflow = set(layers["tensorflow"].pins)
        assert {"tensorflow", "numpy", "keras", "h5py", "protobuf"} <= tensorflow
        assert not {"jupyterlab", "matplotlib", "pytest", "ruff"} & tensorflow
        assert "jupyter-server" in layers["jupyterlab"].pins
        assert {"matplotlib", "pytest", "pip-tools"} <= set(layers["rest"].pins)
    cuda = {name for name in gpu["tensorflow"].pins if name.startswith("nvidia-")}
    assert cuda == {
        name
        for name in read_lock(repo_root / "requirements-gpu.txt").pins
        if name.startswith("nvidia-")
    }
    assert set(gpu["tensorflow"].pins) - set(cpu["tensorflow"].pins) == cuda


def test_a_one_package_change_changes_only_the_rest_layer(repo_root):
    """Without one top-level tool in the lock, the TensorFlow and notebook layers are byte-identical."""
    text = (repo_root / "requirements.txt").read_text()
    pins = lock_layers.read_pins(text)
    without = (
        "\n".join(line for pin in pins if pin.name != "pytest-timeout" for line in pin.lines) + "\n"
    )
    assert len(lock_layers.read_pins(without)) == len(pins) - 1
    before = lock_layers.split(lock_layers.read_pins(without), ROOTS)
    after = lock_layers.split(pins, ROOTS)
    for layer in ROOTS:
        assert lock_layers.render(layer, before[layer]) == lock_layers.render(layer, after[layer])
    assert lock_layers.render("rest", before["rest"]) != lock_layers.render("rest", after["rest"])


def test_a_lock_without_via_lines_still_splits_into_the_whole_lock():
    """Without pip-compile's annotations, a root's layer is the root alone and the rest holds the others."""
    text = (
        "numpy==2.0.0 \\\n    --hash=sha256:aa\n"
        "tensorflow==2.21.0 \\\n    --hash=sha256:bb\n"
        "six==1.17.0 \\\n    --hash=sha256:cc\n"
    )
    layers = lock_layers.split(lock_layers.read_pins(text), ROOTS)
    assert [pin.name for pin in layers["tensorflow"]] == ["tensorflow"]
    assert layers["jupyterlab"] == []
    assert [pin.name for pin in layers["rest"]] == ["numpy", "six"]
    assert layers["rest"][0].lines == ["numpy==2.0.0 \\", "    --hash=sha256:aa"]


def test_usage_is_one_line_and_exit_2(capsys):
    """Called without a lock, an output folder and a root, it prints its usage and exits 2."""
    assert lock_layers.main(["requirements.txt"]) == 2
    assert capsys.readouterr().err.startswith("usage: lock_layers.py LOCK OUTDIR ROOT")
