"""Train the quickstart model on MNIST and leave a self-describing run directory."""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tfdock._files import atomic_path, write_json
from tfdock.data import load_mnist
from tfdock.distribute import DEFAULT_STRATEGY, STRATEGIES, read_cluster
from tfdock.errors import TfdockError
from tfdock.graph_loop import DEFAULT_LOOP, LOOPS
from tfdock.resume import claim_run_dir, epoch_backup

DEFAULT_EPOCHS = 5
DEFAULT_BATCH_SIZE = 32
DEFAULT_SEED = 42
DEFAULT_OUTPUT_DIR = Path("runs")
# Training steps run per call into the TensorFlow graph. Same math (one
# optimizer step per batch of 32); it only removes the Python round trip per
# step that dominates this small model's time, and the progress display is
# updated once per call. Chosen by `make bench`.
DEFAULT_STEPS_PER_EXECUTION = 100
# Threads inside one TensorFlow op. This model's ops are tiny (a 32x784 by
# 784x128 matmul at most): splitting them across threads costs more than it
# saves, so each op runs on one thread while independent ops run side by side.
DEFAULT_INTRA_OP_THREADS = 1
# Threads that run independent ops side by side. With one-thread ops there is
# little to overlap, and handing ops between threads costs more than it wins:
# measured 9% faster fit and 22% less CPU with 1 than with TensorFlow's default.
DEFAULT_INTER_OP_THREADS = 1
# Runs that go through Keras fit (tf.distribute strategies; see graph_loop.py
# for the others) get their batches from `_training_dataset`: it gathers each
# epoch's shuffled copy once and slices batches from it, one small job for one
# private thread. tf.data's autotuner would start more threads, and on a 2-core
# machine they take turns with training itself (~20% slower fit with autotune).
DATA_THREADS = 1
PREFETCH_BATCHES = 4

MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.json"
CURVES_FILE = "curves.png"
TENSORBOARD_DIR = "tensorboard"


@dataclass
class TrainConfig:
    """Everything that decides a training run."""

    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    seed: int = DEFAULT_SEED
    data: str | None = None
    output_dir: Path = DEFAULT_OUTPUT_DIR
    steps_per_execution: int = DEFAULT_STEPS_PER_EXECUTION
    intra_op_threads: int = DEFAULT_INTRA_OP_THREADS
    """Threads per op; 0 lets TensorFlow use every core."""
    inter_op_threads: int = DEFAULT_INTER_OP_THREADS
    """Ops run at once; 0 lets TensorFlow choose."""
    limit: int | None = None
    """Train on the first N training images only (quick checks); None means all 60,000."""
    strategy: str = DEFAULT_STRATEGY
    """auto, one-device, mirrored or multi-worker (tf.distribute)."""
    deterministic: bool = False
    """Turn on TensorFlow's op determinism: same seed, same machine, same bits."""
    loop: str = DEFAULT_LOOP
    """auto (the graph loop where it is exact, else Keras fit) or fit."""

    def validate(self) -> None:
        """Refuse settings that cannot train, with the flag to fix."""
        for flag, value in (
            ("--epochs", self.epochs),
            ("--batch-size", self.batch_size),
            ("--steps-per-execution", self.steps_per_execution),
        ):
            if value < 1:
                raise TfdockError(f"{flag} must be a whole number of at least 1, not {value}.")
        if self.limit is not None and self.limit < self.batch_size:
            raise TfdockError(
                f"--limit {self.limit} is smaller than one batch ({self.batch_size}); "
                "raise it or leave it out to use all training images."
            )
        if self.loop not in LOOPS:
            raise TfdockError(f"--loop must be one of {', '.join(LOOPS)}, not {self.loop!r}.")
        if self.strategy not in STRATEGIES:
            raise TfdockError(
                f"--strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}."
            )


@dataclass
class TrainResult:
    """Where a run landed and how it did."""

    run_dir: Path
    metrics: dict[str, Any]


def new_run_dir(output_dir: Path) -> Path:
    """Create a fresh run directory; two runs started at once never share one."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TfdockError(
            f"cannot create the output folder {output_dir} ({exc.strerror}); "
            "pass --output-dir to a writable folder."
        ) from None
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    while True:
        candidate = output_dir / f"{stamp}-{secrets.token_hex(3)}"
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate


def train(config: TrainConfig, run_dir: Path | None = None) -> TrainResult:
    """Train, evaluate and write the run directory; return where it is.

    With ``run_dir``, train into exactly that folder: a new or empty one starts
    fresh, one holding this run's unfinished attempt resumes from its last
    completed epoch. Under a multi-worker strategy only the chief writes there.
    """
    config.validate()
    cluster = read_cluster()  # a malformed TF_CONFIG fails here, before anything is written
    is_chief = cluster is None or cluster.is_chief
    dataset = load_mnist(config.data)  # bad data fails here, before TensorFlow loads
    config_record = {
        **asdict(config),
        "output_dir": str(config.output_dir),
        "data_source": dataset.source,
    }
    if run_dir is None:
        run_dir = new_run_dir(Path(config.output_dir))
    progress = claim_run_dir(Path(run_dir), config_record, writer=is_chief)
    run_dir = Path(run_dir)

    import keras
    import numpy as np
    import tensorflow as tf

    from tfdock.distribute import (
        is_lost_worker_error,
        lost_worker_reason,
        make_strategy,
        multi_worker_model_class,
        resolve_strategy,
        skip_symbolic_build_reduce,
    )
    from tfdock.graph_loop import fit_in_graph, unsupported_reason
    from tfdock.model import build_model, compile_model
    from tfdock.verify import environment_receipt

    resolved = resolve_strategy(
        config.strategy, cluster, len(tf.config.list_physical_devices("GPU"))
    )
    multi_worker = resolved == "multi-worker"
    tf.config.threading.set_intra_op_parallelism_threads(config.intra_op_threads)
    # A collective op holds its thread while it waits for the peers: with one
    # inter-op thread a multi-worker step could wait on itself, so leave it to TF.
    tf.config.threading.set_inter_op_parallelism_threads(
        0 if multi_worker else config.inter_op_threads
    )
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = make_strategy(tf, resolved)  # multi-worker: waits here until every task is up
    keras.utils.set_random_seed(config.seed)
    replicas = strategy.num_replicas_in_sync
    global_batch = config.batch_size * replicas
    # Keras 3.15's multi-step loop fails under MultiWorkerMirroredStrategy
    # ("You must feed a value for placeholder tensor"): one step per call there.
    steps_per_execution = 1 if multi_worker else config.steps_per_execution

    x_train, y_train = dataset.x_train, dataset.y_train
    if config.limit is not None:
        x_train, y_train = x_train[: config.limit], y_train[: config.limit]
    # Scale once, in float32, the dtype the model computes in.
    x_train = x_train.astype(np.float32) / 255.0
    x_test = dataset.x_test.astype(np.float32) / 255.0
    y_train = y_train.astype(np.int32)

    with strategy.scope():
        model_class = multi_worker_model_class() if multi_worker else None
        model = compile_model(build_model(model_class), steps_per_execution)
        if progress.weights is not None:
            model.optimizer.build(model.trainable_variables)
            model.load_weights(progress.weights)
    if multi_worker:
        skip_symbolic_build_reduce(model)
    # The graph loop is fit's math without fit's per-step overhead (graph_loop.py);
    # what it cannot do exactly as fit would (tf.distribute) goes to fit.
    fit_reason = "--loop fit" if config.loop == "fit" else unsupported_reason(model, strategy)
    training_loop = "keras-fit" if fit_reason else "graph"

    config_record.update(
        train_samples=len(x_train),
        strategy_used=resolved,
        replicas=replicas,
        global_batch_size=global_batch,
        steps_per_execution_used=steps_per_execution,
        training_loop=training_loop,
    )
    if is_chief and progress.completed == 0:
        write_json(run_dir / CONFIG_FILE, config_record)
    epoch_seconds: list[float] = []
    # Saving is collective under multi-worker: workers save into a scratch folder
    # that is removed when they finish, so they leave nothing behind.
    scratch = None if is_chief else tempfile.TemporaryDirectory(prefix="tfdock-worker-")
    callbacks = [
        _epoch_timer(epoch_seconds),
        epoch_backup(run_dir, progress, epoch_seconds, scratch=scratch and Path(scratch.name)),
    ]
    if is_chief:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / TENSORBOARD_DIR)))
    verbose = 1 if sys.stdout.isatty() else 2
    role = f" as {cluster.name} of {cluster.size}" if cluster is not None else ""
    print(
        f"tfdock: training on {len(x_train)} images from {dataset.source}, "
        f"{config.epochs} epochs; strategy {resolved}{role}: {replicas} replica(s) x batch "
        f"{config.batch_size} = global batch {global_batch}; "
        f"loop {training_loop}{f' ({fit_reason})' if fit_reason else ''}; run directory {run_dir}",
        flush=True,
    )
    if progress.completed:
        print(
            f"tfdock: resuming after epoch {progress.completed} of {config.epochs} "
            f"(from {progress.weights})",
            flush=True,
        )
    resumed_after = progress.completed
    started = time.perf_counter()
    try:
        with strategy.scope():
            if fit_reason is None:
                fit_in_graph(
                    model,
                    x_train,
                    y_train,
                    epochs=config.epochs,
                    initial_epoch=progress.completed,
                    batch_size=global_batch,
                    seed=config.seed,
                    steps_per_execution=steps_per_execution,
                    callbacks=callbacks,
                    verbose=verbose,
                )
            else:
                model.fit(
                    _training_dataset(
                        tf, x_train, y_train, config, global_batch, shard_by_data=multi_worker
                    ),
                    initial_epoch=progress.completed,
                    epochs=config.epochs,
                    # The dataset reshuffles itself each epoch; Keras's own flag is for arrays.
                    shuffle=False,
                    callbacks=callbacks,
                    verbose=verbose,
                )
        fit_seconds = time.perf_counter() - started
        # Reading the weights is collective under multi-worker too: every worker reads.
        if multi_worker:
            weights = model.get_weights()
            optimizer_state = [variable.numpy() for variable in model.optimizer.variables]
    except tf.errors.OpError as exc:
        if not (multi_worker and is_lost_worker_error(tf, exc)):
            raise
        raise TfdockError(
            f"{cluster.name} lost contact with another task of the multi-worker job "
            f"({lost_worker_reason(exc)}); restart every task with the same --run-dir "
            f"and training resumes from the last completed epoch saved in {run_dir}."
        ) from None
    finally:
        if scratch is not None:
            scratch.cleanup()
    if not is_chief:
        print(f"tfdock: {cluster.name} finished; the chief writes the artifacts.", flush=True)
        return TrainResult(run_dir, {})

    if multi_worker:
        # Evaluate and save a plain Sequential: model.keras loads without tfdock.
        model = compile_model(build_model(), config.steps_per_execution)
        model.set_weights(weights)
        model.optimizer.build(model.trainable_variables)
        for variable, value in zip(model.optimizer.variables, optimizer_state, strict=True):
            variable.assign(value)
    test_loss, test_accuracy = model.evaluate(x_test, dataset.y_test, batch_size=256, verbose=0)

    with atomic_path(run_dir / MODEL_FILE) as tmp:
        # Keras insists on the .keras suffix; the suffixed name is temporary too.
        try:
            model.save(_keras_name(tmp))
            os.replace(_keras_name(tmp), tmp)
        finally:
            _keras_name(tmp).unlink(missing_ok=True)

    epochs = progress.epochs
    samples = len(x_train) * (config.epochs - resumed_after)
    metrics = {
        "test": {"loss": float(test_loss), "accuracy": float(test_accuracy)},
        "epochs": epochs,
        "fit_seconds": fit_seconds,
        "samples_per_second": samples / fit_seconds,
        "resumed_after_epoch": resumed_after,
        "config": config_record,
        "environment": environment_receipt(),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json(run_dir / METRICS_FILE, metrics)
    _plot_curves(epochs, float(test_accuracy), run_dir / CURVES_FILE)
    print(
        f"tfdock: test accuracy {test_accuracy:.4f}, test loss {test_loss:.4f}, "
        f"fit {fit_seconds:.1f} s ({samples / fit_seconds:,.0f} samples/s); "
        f"artifacts in {run_dir}",
        flush=True,
    )
    return TrainResult(run_dir, metrics)


def _training_dataset(
    tf: Any,
    x: Any,
    y: Any,
    config: TrainConfig,
    global_batch: int | None = None,
    shard_by_data: bool = False,
) -> Any:
    """Batch the arrays in a new shuffled order each epoch, the next batches prepared ahead.

    Each epoch draws a permutation, gathers the whole training set in that order
    once, and slices batches from it: the same batches as shuffling and batching
    the arrays, without per-batch work in tf.data's threads. Under tf.distribute
    each global batch is split across the replicas. For a multi-worker job
    (``shard_by_data``) every worker builds the same seeded order of index
    batches and tf.data's DATA auto-sharding gives each worker its share.
    """
    count = len(x)
    batch = global_batch or config.batch_size
    images, labels = tf.constant(x), tf.constant(y)
    options = tf.data.Options()
    if shard_by_data:
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        return (
            tf.data.Dataset.range(count)
            .shuffle(count, seed=config.seed, reshuffle_each_iteration=True)
            .batch(batch)
            .map(
                lambda index: (tf.gather(images, index), tf.gather(labels, index)),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
            .prefetch(tf.data.AUTOTUNE)
            .with_options(options)
        )

    def one_epoch(order: Any) -> Any:
        shuffled = (tf.gather(images, order), tf.gather(labels, order))
        return tf.data.Dataset.from_tensor_slices(shuffled).batch(batch)

    options.autotune.enabled = False
    options.threading.private_threadpool_size = DATA_THREADS
    return (
        tf.data.Dataset.range(count)
        .shuffle(count, seed=config.seed, reshuffle_each_iteration=True)
        .batch(count)  # one element: this epoch's order
        .flat_map(one_epoch)
        # flat_map hides the length; Keras needs it to count the steps right.
        .apply(tf.data.experimental.assert_cardinality(-(-count // batch)))
        .prefetch(PREFETCH_BATCHES)
        .with_options(options)
    )


def _keras_name(path: Path) -> Path:
    return path.with_name(path.name + ".keras")


def _epoch_timer(seconds: list[float]) -> Any:
    """Return a Keras callback that appends each epoch's wall time to ``seconds``."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            seconds.append(time.perf_counter() - self.started)

    return EpochTimer()


def _plot_curves(epochs: list[dict[str, Any]], test_accuracy: float, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numbers = [e["epoch"] for e in epochs]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(9, 3.5))
    loss_axis.plot(numbers, [e["loss"] for e in epochs], marker="o")
    loss_axis.set(title="training loss", xlabel="epoch")
    accuracy_axis.plot(numbers, [e["accuracy"] for e in epochs], marker="o", label="train")
    accuracy_axis.axhline(
        test_accuracy, color="gray", linestyle="--", label=f"test {test_accuracy:.4f}"
    )
    accuracy_axis.set(title="accuracy", xlabel="epoch")
    accuracy_axis.legend()
    figure.tight_layout()
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
