"""The graph loop trains exactly as Keras fit would, only faster; resumes replay exactly."""

import numpy as np
import pytest

from tfdock import graph_loop
from tfdock.model import build_model, compile_model

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

SEED = 3
COUNT = 200  # 7 steps of batch 32, the last one 8 images
BATCH = 32


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((COUNT, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, COUNT).astype(np.int32)
    return x, y


def _model(weights=None):
    model = compile_model(build_model(), steps_per_execution=1)
    if weights is not None:
        model.set_weights(weights)
    model.optimizer.build(model.trainable_variables)
    return model


def _dropout_states(model):
    return [
        layer.seed_generator.state for layer in model.layers if hasattr(layer, "seed_generator")
    ]


def _state(model) -> list[np.ndarray]:
    """Every weight and every optimizer variable (iterations, moments), as arrays."""
    return [v.value.numpy() for v in model.trainable_variables + model.optimizer.variables]


def _graph_fit(model, x, y, epochs, initial_epoch=0, steps_per_execution=3, **kwargs):
    return graph_loop.fit_in_graph(
        model,
        x,
        y,
        epochs=epochs,
        initial_epoch=initial_epoch,
        batch_size=BATCH,
        seed=SEED,
        steps_per_execution=steps_per_execution,
        callbacks=kwargs.pop("callbacks", []),
        verbose=kwargs.pop("verbose", 0),
    )


def test_one_epoch_equals_keras_fit_on_the_same_batches():
    """Same batches and dropout masks: fit and the graph loop end with the same weights and state."""
    x, y = _data()
    keras.utils.set_random_seed(SEED)
    start = build_model().get_weights()

    graph_model = _model(start)
    logs = _graph_fit(graph_model, x, y, epochs=1)

    # Keras fit, fed the loop's epoch order unshuffled, its dropout state set as the loop sets it.
    fit_model = _model(start)
    for index, state in enumerate(_dropout_states(fit_model)):
        state.assign(graph_loop.epoch_seed(SEED, 0, graph_loop.DROPOUT_STREAM, index))
    order = graph_loop.epoch_order(COUNT, SEED, 0).numpy()
    history = fit_model.fit(
        x[order], y[order], batch_size=BATCH, shuffle=False, epochs=1, verbose=0
    )

    assert int(graph_model.optimizer.iterations) == int(fit_model.optimizer.iterations) == 7
    for graph_value, fit_value in zip(_state(graph_model), _state(fit_model), strict=True):
        np.testing.assert_allclose(graph_value, fit_value, rtol=1e-5, atol=1e-6)
    assert logs["loss"] == pytest.approx(history.history["loss"][0], rel=1e-5)
    assert logs["accuracy"] == pytest.approx(history.history["accuracy"][0], abs=1e-6)
    assert not np.allclose(start[0], graph_model.get_weights()[0]), "the weights moved"


def test_each_epoch_visits_every_sample_once_in_a_new_order():
    """The order is a permutation, new each epoch, the same for the same seed and epoch."""
    first, second = (graph_loop.epoch_order(COUNT, SEED, epoch).numpy() for epoch in (0, 1))
    assert sorted(first) == sorted(second) == list(range(COUNT))
    assert list(first) != list(second) and list(first) != list(range(COUNT))
    assert list(graph_loop.epoch_order(COUNT, SEED, 1).numpy()) == list(second)
    assert list(graph_loop.epoch_order(COUNT, SEED + 1, 1).numpy()) != list(second)


def test_resuming_after_an_epoch_replays_the_uninterrupted_run_exactly():
    """Two epochs at once, or one, a weights file, a fresh model and the second: same bits."""
    x, y = _data()
    keras.utils.set_random_seed(SEED)
    start = build_model().get_weights()

    straight = _model(start)
    _graph_fit(straight, x, y, epochs=2)

    first_half = _model(start)
    _graph_fit(first_half, x, y, epochs=1)
    saved = (
        first_half.get_weights(),
        [v.value.numpy() for v in first_half.optimizer.variables],
    )
    keras.utils.set_random_seed(SEED + 100)  # a new process: other global random state
    resumed = _model(saved[0])
    for variable, value in zip(resumed.optimizer.variables, saved[1], strict=True):
        variable.assign(value)
    _graph_fit(resumed, x, y, epochs=2, initial_epoch=1)

    for a, b in zip(_state(straight), _state(resumed), strict=True):
        np.testing.assert_array_equal(a, b)


def test_steps_per_execution_does_not_change_the_math():
    """One step per call and all steps in one call give the same bits."""
    x, y = _data()
    keras.utils.set_random_seed(SEED)
    start = build_model().get_weights()
    results = []
    for steps_per_execution in (1, 100):
        model = _model(start)
        logs = _graph_fit(model, x, y, epochs=1, steps_per_execution=steps_per_execution)
        results.append((logs, _state(model)))
    (logs_a, state_a), (logs_b, state_b) = results
    # The logs are summed in float32 per call, so only their last digits may differ.
    assert logs_a == pytest.approx(logs_b, rel=1e-6)
    for a, b in zip(state_a, state_b, strict=True):
        np.testing.assert_array_equal(a, b)


def test_keras_progress_and_callbacks_see_every_epoch(capsys):
    """The progress lines show, and callbacks get on_epoch_end with Keras's log names."""
    x, y = _data()
    seen = []

    class Recorder(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, sorted(logs)))

    _graph_fit(_model(), x, y, epochs=2, callbacks=[Recorder()], verbose=2)
    output = capsys.readouterr().out
    assert "Epoch 1/2" in output and "Epoch 2/2" in output
    assert output.count("7/7 - ") == 2
    assert seen == [(0, ["accuracy", "loss"]), (1, ["accuracy", "loss"])]


def test_what_the_loop_cannot_do_exactly_goes_to_fit():
    """Another optimizer, Adam extras or a distributed strategy give a reason; plain Adam none."""
    model = _model()
    assert graph_loop.unsupported_reason(model, tf.distribute.get_strategy()) is None
    assert graph_loop.unsupported_reason(model, tf.distribute.OneDeviceStrategy("/cpu:0")) is None
    mirrored = graph_loop.unsupported_reason(model, tf.distribute.MirroredStrategy(["/cpu:0"]))
    assert "MirroredStrategy" in mirrored

    sgd = build_model()
    sgd.compile(optimizer="sgd", loss=model.loss, metrics=["accuracy"])
    assert "SGD" in graph_loop.unsupported_reason(sgd, tf.distribute.get_strategy())
    amsgrad = build_model()
    amsgrad.compile(optimizer=keras.optimizers.Adam(amsgrad=True), loss=model.loss)
    assert "amsgrad" in graph_loop.unsupported_reason(amsgrad, tf.distribute.get_strategy())
