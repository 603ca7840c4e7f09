"""The TensorFlow beginner quickstart as people write it: the baseline of `make bench`.

NumPy float64 arrays straight into `model.fit` with Keras defaults (batch 32,
one Python round trip per step). The only changes from the published tutorial:
the arrays come through the kit's loader (so the bench runs offline), the seed
is fixed, fit is timed, and the figures are written as JSON for the bench.
Do not speed this file up: it is what `tfdock train` is measured against.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import tensorflow as tf

from tfdock.data import load_mnist


def main(argv: list[str] | None = None) -> int:
    """Train and evaluate the quickstart model; write fit seconds and accuracy to --result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="MNIST npz or folder (default $TFDOCK_DATA)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images")
    parser.add_argument("--result", type=Path, required=True, help="where to write the JSON")
    args = parser.parse_args(argv)

    tf.keras.utils.set_random_seed(args.seed)
    mnist = load_mnist(args.data)
    x_train, y_train = mnist.x_train[: args.limit], mnist.y_train[: args.limit]
    x_test, y_test = mnist.x_test, mnist.y_test

    # From here on: the quickstart, line for line.
    x_train, x_test = x_train / 255.0, x_test / 255.0

    model = tf.keras.models.Sequential(
        [
            tf.keras.Input(shape=(28, 28)),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(128, activation="relu"),
            tf.keras.layers.Dropout(0.2),
            tf.keras.layers.Dense(10),
        ]
    )
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer="adam", loss=loss_fn, metrics=["accuracy"])

    started = time.perf_counter()
    model.fit(x_train, y_train, epochs=args.epochs)
    fit_seconds = time.perf_counter() - started

    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=2)

    samples = len(x_train) * args.epochs
    args.result.write_text(
        json.dumps(
            {
                "fit_seconds": fit_seconds,
                "samples_per_second": samples / fit_seconds,
                "test_accuracy": float(test_accuracy),
                "test_loss": float(test_loss),
                "train_samples": len(x_train),
                "epochs": args.epochs,
            }
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
