"""The model is the TensorFlow quickstart's, compiled the quickstart's way."""

import pytest

from tfdock.model import build_model, compile_model

keras = pytest.importorskip("keras")


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


def test_compile_uses_adam_and_from_logits_loss():
    """The optimizer is Adam and the loss is sparse categorical cross-entropy from logits."""
    model = compile_model(build_model(), steps_per_execution=7)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
    assert model.loss.get_config()["from_logits"] is True
    assert model.steps_per_execution == 7
