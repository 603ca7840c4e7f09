"""The model of the TensorFlow beginner quickstart, and how it is compiled."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tfdock.data import IMAGE_SHAPE, NUM_CLASSES

if TYPE_CHECKING:
    import keras

HIDDEN_UNITS = 128
DROPOUT_RATE = 0.2


def build_model(model_class: type[keras.Sequential] | None = None) -> keras.Model:
    """Build Flatten(28x28) -> Dense(128, relu) -> Dropout(0.2) -> Dense(10) logits.

    ``model_class`` is a keras.Sequential subclass to build instead (multi-worker).
    """
    import keras

    return (model_class or keras.Sequential)(
        [
            keras.Input(shape=IMAGE_SHAPE),
            keras.layers.Flatten(),
            keras.layers.Dense(HIDDEN_UNITS, activation="relu"),
            keras.layers.Dropout(DROPOUT_RATE),
            keras.layers.Dense(NUM_CLASSES),
        ],
        name="mnist_quickstart",
    )


def compile_model(model: keras.Model, steps_per_execution: int = 1) -> keras.Model:
    """Compile with Adam, sparse categorical cross-entropy from logits, and accuracy."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model
