"""The model is the TensorFlow quickstart's, and its loss and metrics are what the kit records."""

import pytest

from tfdock.model import build_model, compile_model

keras = pytest.importorskip("keras")
np = pytest.importorskip("numpy")


def test_model_has_the_quickstart_layers():
    """Flatten -> Dense 128 relu -> Dropout 0.2 -> Dense 10 with no softmax (logits)."""
    model = build_model()
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Flatten", "Dense", "Dropout", "Dense"]
    hidden, dropout, logits = model.layers[1], model.layers[2], model.layers[3]
    assert hidden.units == 128 and hidden.activation.__name__ == "relu"
    assert dropout.rate == pytest.approx(0.2)
    assert logits.units == 10 and logits.activation.__name__ == "linear"
    assert model.input_shape == (None, 28, 28)
    assert model.count_params() == 784 * 128 + 128 + 128 * 10 + 10


def _batch(count=64):
    rng = np.random.default_rng(0)
    return rng.random((count, 28, 28), dtype=np.float32), rng.integers(0, 10, count).astype(
        np.int32
    )


def _cross_entropy_and_accuracy(logits, labels):
    """What the kit records, computed here from the model's outputs read as logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_softmax[np.arange(len(labels)), labels].mean()
    return loss, (logits.argmax(axis=1) == labels).mean()


def test_evaluate_reports_cross_entropy_of_the_logits_and_accuracy():
    """evaluate's loss is the cross-entropy of softmax(outputs), its accuracy argmax's hit rate."""
    keras.utils.set_random_seed(0)
    model = compile_model(build_model())
    images, labels = _batch()
    logits = np.asarray(model(images, training=False))
    loss, accuracy = model.evaluate(images, labels, batch_size=len(labels), verbose=0)
    expected_loss, expected_accuracy = _cross_entropy_and_accuracy(logits, labels)
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    assert accuracy == pytest.approx(expected_accuracy)


def test_the_compiled_model_trains_in_the_graph_loop():
    """compile_model's choices (plain Adam, one Loss) are what the graph loop runs exactly."""
    import tensorflow as tf

    from tfdock.graph_loop import unsupported_reason

    model = compile_model(build_model(), steps_per_execution=7)
    assert unsupported_reason(model, tf.distribute.get_strategy()) is None
    assert model.steps_per_execution == 7
