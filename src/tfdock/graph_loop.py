"""Keras fit's training math in TensorFlow graph loops, without fit's per-step overhead.

For this small model most of ``model.fit``'s time is not arithmetic: each
step also runs Keras Adam's update as about 20 separate ops per weight, two
metric trackers and the input iterator. Here each call into the graph runs
``steps_per_execution`` steps of a ``tf.while_loop`` whose body is:

- the batch, gathered from the training set by this epoch's order (gathering
  32 rows per step is cheaper than copying the whole shuffled set per epoch);
- the forward pass through the Keras model itself (``model(x, training=True)``,
  so dropout is Keras's own) and the compiled loss;
- the gradients, and Adam's update of the model's own compiled optimizer, as one
  fused ``ResourceApplyAdam`` op per weight on that optimizer's own moment
  variables (the same formula as Keras's ``Adam.update_step``);
- the running sums for the loss and accuracy that Keras would report.

Keras's callbacks (progress bar or epoch lines, TensorBoard, the epoch backup)
see the same calls and logs as under ``fit``. The optimizer's iteration count
and moments are the compiled optimizer's own, so ``model.keras`` and the
backups hold the real optimizer state.

The order of each epoch and each step's dropout mask are functions of
(seed, epoch, step) only, so a run resumed after epoch N trains exactly as the
uninterrupted run would have.

``unsupported_reason`` says when this loop cannot stand in for ``fit`` (a
distributed strategy, another optimizer or loss), and ``missing_internal`` when
this Keras lacks one of the private attributes the loop reaches (_internals.py);
train.py then calls ``fit``.
"""

from __future__ import annotations

from typing import Any

from tfdock._internals import MissingInternal, adam_moments, dropout_seed_states

# What each epoch's random numbers are drawn for: hashed with (seed, epoch) so
# that no two uses, epochs or layers share a stream.
SHUFFLE_STREAM = 0
DROPOUT_STREAM = 1
# Keras folds seed states into int32 (TensorFlow's stateless ops need that);
# staying below 2**30 leaves room for one increment per step.
_SEED_RANGE = 2**30


def unsupported_reason(model: Any, strategy: Any) -> str | None:
    """Return why the graph loop cannot train ``model`` exactly as fit would, or None.

    ``strategy`` is the run's tf.distribute strategy: the loop runs under the
    default one or OneDeviceStrategy, whose variables are plain variables.
    """
    import keras
    import tensorflow as tf

    optimizer = model.optimizer
    default = tf.distribute.get_strategy()  # called outside any scope: the default
    if strategy is not default and not isinstance(strategy, tf.distribute.OneDeviceStrategy):
        return f"{type(strategy).__name__} runs through Keras fit"
    if type(optimizer) is not keras.optimizers.Adam:
        return f"optimizer {type(optimizer).__name__} (only plain Adam is fused)"
    extras = {
        "amsgrad": optimizer.amsgrad,
        "weight_decay": optimizer.weight_decay,
        "clipnorm": optimizer.clipnorm,
        "clipvalue": optimizer.clipvalue,
        "global_clipnorm": optimizer.global_clipnorm,
        "use_ema": optimizer.use_ema,
        "loss_scale_factor": optimizer.loss_scale_factor,
        "gradient_accumulation_steps": optimizer.gradient_accumulation_steps,
    }
    used = [name for name, value in extras.items() if value]
    if used:
        return f"Adam with {', '.join(used)}"
    if not isinstance(model.loss, keras.losses.Loss) or model.losses:
        return "a loss other than one compiled Loss object"
    if any(v.dtype != "float32" for v in model.trainable_variables):
        return "weights that are not float32"
    return None


def missing_internal(model: Any) -> MissingInternal | None:
    """Return which private Keras attribute the loop needs that this Keras lacks, or None.

    Builds ``model``'s optimizer (as fit would) to find its moment variables.
    """
    model.optimizer.build(model.trainable_variables)
    try:
        adam_moments(model.optimizer, model.trainable_variables)
        dropout_seed_states(model)
    except MissingInternal as missing:
        return missing
    return None


def fit_in_graph(
    model: Any,
    x: Any,
    y: Any,
    *,
    epochs: int,
    initial_epoch: int,
    batch_size: int,
    seed: int,
    steps_per_execution: int,
    callbacks: list[Any],
    verbose: int,
) -> dict[str, float]:
    """Train ``model`` on arrays ``x``, ``y`` like ``model.fit``; return the last epoch's logs.

    ``x`` is float32, ``y`` int32; the last batch of an epoch may be short.
    Logs are ``loss`` (the mean over samples of each batch's mean loss, weighted
    by batch size) and ``accuracy``, as Keras computes them. Ask
    ``missing_internal`` first: without them this raises MissingInternal.
    """
    import keras
    import tensorflow as tf

    count = len(x)
    steps = -(-count // batch_size)
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    weights = [_tf_variable(v) for v in model.trainable_variables]
    first_moments, second_moments = adam_moments(optimizer, model.trainable_variables)
    moments = [_tf_variable(v) for v in first_moments]
    velocities = [_tf_variable(v) for v in second_moments]
    iterations = _tf_variable(optimizer.iterations)
    beta_1, beta_2, epsilon = (
        tf.constant(value, tf.float32)
        for value in (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon)
    )
    dropout_states = [_tf_variable(state) for state in dropout_seed_states(model)]
    # tf.constant holds the arrays in host memory; identity moves them once to the
    # device the steps run on (a GPU when there is one; on a CPU it copies nothing).
    images, labels = tf.identity(tf.constant(x)), tf.identity(tf.constant(y))

    def one_step(x_batch: Any, y_batch: Any) -> tuple[Any, Any]:
        with tf.GradientTape() as tape:
            logits = model(x_batch, training=True)
            loss = model.loss(y_batch, logits)
        gradients = tape.gradient(loss, weights)
        local_step = tf.cast(iterations + 1, tf.float32)
        beta_1_power, beta_2_power = tf.pow(beta_1, local_step), tf.pow(beta_2, local_step)
        lr = tf.cast(optimizer.learning_rate, tf.float32)
        for weight, moment, velocity, gradient in zip(
            weights, moments, velocities, gradients, strict=True
        ):
            tf.raw_ops.ResourceApplyAdam(
                var=weight.handle,
                m=moment.handle,
                v=velocity.handle,
                beta1_power=beta_1_power,
                beta2_power=beta_2_power,
                lr=lr,
                beta1=beta_1,
                beta2=beta_2,
                epsilon=epsilon,
                grad=gradient,
            )
        iterations.assign_add(1)
        predicted = tf.argmax(logits, axis=-1, output_type=y_batch.dtype)
        correct = tf.reduce_sum(tf.cast(tf.equal(predicted, y_batch), tf.float32))
        return loss, correct

    # The loop is an explicit tf.while_loop: autograph has nothing to convert,
    # and skipping it takes about 0.1 s off the first call.
    @tf.function(autograph=False)
    def run_steps(order: Any, first: Any, last: Any) -> Any:
        def body(step: Any, loss_sum: Any, correct_sum: Any) -> Any:
            begin = step * batch_size
            end = tf.minimum(begin + batch_size, count)
            batch = order[begin:end]
            loss, correct = one_step(tf.gather(images, batch), tf.gather(labels, batch))
            return (
                step + 1,
                loss_sum + loss * tf.cast(end - begin, tf.float32),
                correct_sum + correct,
            )

        _, loss_sum, correct_sum = tf.while_loop(
            lambda step, *_: step < last,
            body,
            (first, tf.constant(0.0), tf.constant(0.0)),
            parallel_iterations=1,
        )
        return loss_sum, correct_sum

    callback_list = keras.callbacks.CallbackList(
        callbacks,
        add_history=True,
        add_progbar=verbose != 0,
        verbose=verbose,
        epochs=epochs,
        steps=steps,
        model=model,
    )
    model.stop_training = False
    callback_list.on_train_begin()
    logs: dict[str, float] = {}
    for epoch in range(initial_epoch, epochs):
        callback_list.on_epoch_begin(epoch)
        order = epoch_order(count, seed, epoch)
        # Keras's dropout draws its masks from each layer's seed state; starting
        # every epoch from a state fixed by (seed, epoch) makes resumes replay exactly.
        for index, state in enumerate(dropout_states):
            state.assign(tf.constant(epoch_seed(seed, epoch, DROPOUT_STREAM, index), state.dtype))
        loss_total = correct_total = 0.0
        for first in range(0, steps, steps_per_execution):
            last = min(first + steps_per_execution, steps)
            callback_list.on_train_batch_begin(first)
            loss_sum, correct_sum = run_steps(order, tf.constant(first), tf.constant(last))
            loss_total += float(loss_sum)
            correct_total += float(correct_sum)
            seen = min(last * batch_size, count)
            logs = {"accuracy": correct_total / seen, "loss": loss_total / seen}
            callback_list.on_train_batch_end(last - 1, logs)
            if model.stop_training:
                break
        callback_list.on_epoch_end(epoch, dict(logs))
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return logs


def epoch_seed(seed: int, epoch: int, *purpose: int) -> Any:
    """Return the int64 seed pair for one use of randomness in one epoch of a seeded run."""
    import numpy as np

    state = np.random.SeedSequence([seed, epoch, *purpose]).generate_state(2, np.uint64)
    return (state % _SEED_RANGE).astype(np.int64)


def epoch_order(count: int, seed: int, epoch: int) -> Any:
    """Return the order in which the graph loop visits ``count`` samples in ``epoch``."""
    import tensorflow as tf

    return tf.random.experimental.stateless_shuffle(
        tf.range(count), seed=tf.constant(epoch_seed(seed, epoch, SHUFFLE_STREAM))
    )


def _tf_variable(variable: Any) -> Any:
    """The tf.Variable behind a Keras variable (the TensorFlow backend keeps it in .value)."""
    return getattr(variable, "value", variable)
