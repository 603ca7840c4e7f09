"""Train the quickstart model on MNIST and leave a self-describing run directory."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tfdock._files import DISK_FULL, atomic_path, write_json
from tfdock._internals import MissingInternal
from tfdock.cluster import Cluster, read_cluster
from tfdock.data import Mnist, load_mnist
from tfdock.errors import TfdockError
from tfdock.resume import Progress, epoch_backup, read_progress, restore_backup
from tfdock.run_dir import (
    CONFIG_FILE,
    CURVES_FILE,
    DATA_IDENTITY,
    METRICS_FILE,
    MODEL_FILE,
    TENSORBOARD_DIR,
    claim_run_dir,
    how_to_go_on,
    new_run_dir,
    read_run_config,
)
from tfdock.settings import DEFAULTS, check_settings

# Runs that go through Keras fit (tf.distribute strategies; see graph_loop.py
# for the others) get their batches from `_training_dataset`: it gathers each
# epoch's shuffled copy once and slices batches from it, one small job for one
# private thread. tf.data's autotuner would start more threads, and on a 2-core
# machine they take turns with training itself (~20% slower fit with autotune).
DATA_THREADS = 1
PREFETCH_BATCHES = 4


@dataclass
class TrainConfig:
    """Everything that decides a training run: one field per row of settings.py's table."""

    epochs: int = DEFAULTS["epochs"]
    batch_size: int = DEFAULTS["batch_size"]
    seed: int = DEFAULTS["seed"]
    data: str | None = DEFAULTS["data"]
    output_dir: Path = DEFAULTS["output_dir"]
    steps_per_execution: int = DEFAULTS["steps_per_execution"]
    intra_op_threads: int = DEFAULTS["intra_op_threads"]
    inter_op_threads: int = DEFAULTS["inter_op_threads"]
    limit: int | None = DEFAULTS["limit"]
    strategy: str = DEFAULTS["strategy"]
    deterministic: bool = DEFAULTS["deterministic"]
    loop: str = DEFAULTS["loop"]

    def validate(self) -> None:
        """Refuse settings that cannot train, with the flag to fix (they may come from a file)."""
        check_settings(asdict(self))


@dataclass
class TrainResult:
    """Where a run landed and how it did."""

    run_dir: Path
    metrics: dict[str, Any]


@dataclass
class _Job:
    """The run as TensorFlow will train it: its settings, place in a cluster and strategy."""

    config: TrainConfig
    cluster: Cluster | None
    strategy: Any
    strategy_name: str
    """The strategy --strategy resolved to: default, one-device, mirrored or multi-worker."""

    @property
    def writer(self) -> bool:
        """Whether this process writes the run folder (under multi-worker, the chief only)."""
        return self.cluster is None or self.cluster.is_chief

    @property
    def multi_worker(self) -> bool:
        return self.strategy_name == "multi-worker"

    @property
    def global_batch(self) -> int:
        return self.config.batch_size * self.strategy.num_replicas_in_sync

    @property
    def steps_per_execution(self) -> int:
        # Keras 3.15's multi-step loop fails under MultiWorkerMirroredStrategy
        # ("You must feed a value for placeholder tensor"): one step per call there.
        return 1 if self.multi_worker else self.config.steps_per_execution


def run_record(config: TrainConfig, dataset: Mnist) -> dict[str, Any]:
    """Return what config.json records of a run: its settings and its data's identity."""
    return {
        **asdict(config),
        "output_dir": str(config.output_dir),
        "data_source": dataset.source,
        DATA_IDENTITY: dataset.sha256,
    }


def check_before_workers(config: TrainConfig, resume: Path | None) -> Path:
    """Check a local multi-worker job before any worker starts; return its run folder.

    Bad settings, data or a run folder that may not be resumed fail here, once
    and before a new run folder is made (and a download happens once, not in
    every worker).
    """
    config.validate()
    dataset = load_mnist(config.data)
    if resume is None:
        return new_run_dir(Path(config.output_dir))
    with claim_run_dir(resume, run_record(config, dataset), writer=True):
        return resume


def train(config: TrainConfig, run_dir: Path | None = None) -> TrainResult:
    """Train, evaluate and write the run directory; return where it is.

    With ``run_dir``, train into exactly that folder: a new or empty one starts
    fresh, one holding this run's unfinished attempt resumes from its last
    completed epoch. Under a multi-worker strategy only the chief writes there.
    Nothing is written before the settings, TF_CONFIG and data are checked.
    """
    config.validate()
    cluster = read_cluster()  # a malformed TF_CONFIG fails here, before anything is written
    dataset = load_mnist(config.data)  # bad data fails here, before TensorFlow loads
    record = run_record(config, dataset)
    writer = cluster is None or cluster.is_chief
    run_dir = _this_tasks_run_dir(run_dir, Path(config.output_dir), writer)
    with claim_run_dir(run_dir, record, writer=writer), _failed_writes_explained(run_dir, cluster):
        progress = read_progress(run_dir, config.epochs)
        job = _start_tensorflow(config, cluster)
        model, fit_reason = _build_model(job, progress, run_dir)
        x_train, y_train = _training_arrays(dataset, config.limit)
        _begin(job, record, run_dir, progress, fit_reason, dataset.source, len(x_train))
        model, training = _fit(job, model, fit_reason, x_train, y_train, progress, run_dir)
        if not job.writer:
            print(f"tfdock: {cluster.name} finished; the chief writes the artifacts.", flush=True)
            return TrainResult(run_dir, {})
        metrics = _finish(model, dataset, run_dir, {**training, "config": record})
    return TrainResult(run_dir, metrics)


def _this_tasks_run_dir(given: Path | None, output_dir: Path, writer: bool) -> Path:
    """The run folder: the one given, else a new one that the writer makes.

    Another task of a multi-worker job writes nothing (docs/distribution.md), so without
    --run-dir it makes no folder either: the chief names the one it makes. Such a task
    only reads its run folder to resume, and a job without --run-dir starts afresh.
    """
    if given is not None:
        return Path(given)
    if writer:
        return new_run_dir(output_dir)
    return output_dir / "the-chief-s-run-folder"


def _start_tensorflow(config: TrainConfig, cluster: Cluster | None) -> _Job:
    """Set TensorFlow's threads and determinism, make the strategy, and seed every generator."""
    import keras
    import tensorflow as tf

    from tfdock.distribute import make_strategy, resolve_strategy

    strategy_name = resolve_strategy(
        config.strategy, cluster, len(tf.config.list_physical_devices("GPU"))
    )
    tf.config.threading.set_intra_op_parallelism_threads(config.intra_op_threads)
    # A collective op holds its thread while it waits for the peers: with one
    # inter-op thread a multi-worker step could wait on itself, so leave it to TF.
    tf.config.threading.set_inter_op_parallelism_threads(
        0 if strategy_name == "multi-worker" else config.inter_op_threads
    )
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = make_strategy(
        tf, strategy_name, cluster
    )  # multi-worker: waits (bounded) for every task
    keras.utils.set_random_seed(config.seed)
    return _Job(config, cluster, strategy, strategy_name)


def _build_model(job: _Job, progress: Progress, run_dir: Path) -> tuple[Any, str | None]:
    """Build and compile the model, restore an earlier attempt's backup; say why fit runs it.

    The graph loop is fit's math without fit's per-step overhead (graph_loop.py);
    what it cannot do exactly as fit would (tf.distribute), or cannot do at all
    with this Keras, goes to fit, and the returned reason says why (None: the
    graph loop trains).
    """
    from tfdock.distribute import multi_worker_model_class, skip_symbolic_build_reduce
    from tfdock.graph_loop import missing_internal, unsupported_reason
    from tfdock.model import build_model, compile_model

    with job.strategy.scope():
        model_class = multi_worker_model_class() if job.multi_worker else None
        model = compile_model(build_model(model_class), job.steps_per_execution)
        if progress.weights is not None:
            model.optimizer.build(model.trainable_variables)
            restore_backup(model, progress)
    if job.multi_worker:
        skip_symbolic_build_reduce(model)
    if job.config.loop == "fit":
        return model, "--loop fit"
    reason = unsupported_reason(model, job.strategy)
    if reason is None:
        with job.strategy.scope():
            missing = missing_internal(model)
        if missing is not None:
            reason = _graph_loop_lost(missing, progress, run_dir)
    return model, reason


def _graph_loop_lost(missing: MissingInternal, progress: Progress, run_dir: Path) -> str:
    """Say that this Keras lacks what the graph loop needs; return fit's reason, or refuse.

    A new run, or one that trained with Keras fit so far, trains with fit: the
    same math, the line says why. A run whose first epochs ran in the graph loop
    is refused: fit's other shuffle and dropout order would quietly end it
    with other numbers than the same run without the interruption, and its
    promise is the same numbers, bit for bit (docs/resume.md). A config.json
    that does not say which loop ran counts as the graph loop's.
    """
    if progress.completed and read_run_config(run_dir).get("training_loop") != "keras-fit":
        epochs = f"{progress.completed} epoch{'s' if progress.completed > 1 else ''}"
        raise TfdockError(
            f"{run_dir} ran its first {epochs} in tfdock's graph loop, and {missing}, which "
            "that loop needs, so the run cannot resume bit for bit here; "
            f"resume it with the {missing.library} version that requirements.txt pins, or "
            f"finish it with Keras fit (close, not bit for bit): "
            f"`tfdock train --resume {run_dir} --loop fit`."
        )
    print(
        f"tfdock: {missing}, so the graph loop is off: training with Keras fit, as --loop fit "
        "does (a resumed run then comes close to the uninterrupted one, not bit for bit).",
        flush=True,
    )
    return f"no usable {missing.name}"


def _training_arrays(dataset: Mnist, limit: int | None) -> tuple[Any, Any]:
    """Return the training images scaled once to float32 (the model's dtype), labels as int32."""
    import numpy as np

    x_train, y_train = dataset.x_train[:limit], dataset.y_train[:limit]
    return x_train.astype(np.float32) / 255.0, y_train.astype(np.int32)


def _begin(
    job: _Job,
    record: dict[str, Any],
    run_dir: Path,
    progress: Progress,
    fit_reason: str | None,
    source: str,
    train_samples: int,
) -> None:
    """Record how the run trains in config.json (a fresh run's writer) and say it on one line."""
    config = job.config
    training_loop = "keras-fit" if fit_reason else "graph"
    replicas = job.strategy.num_replicas_in_sync
    record.update(
        train_samples=train_samples,
        strategy_used=job.strategy_name,
        replicas=replicas,
        global_batch_size=job.global_batch,
        steps_per_execution_used=job.steps_per_execution,
        training_loop=training_loop,
    )
    if job.writer and progress.completed == 0:
        write_json(run_dir / CONFIG_FILE, record)
    cluster = job.cluster
    role = f" as {cluster.name} of {cluster.size}" if cluster is not None else ""
    print(
        f"tfdock: training on {train_samples} images from {source}, "
        f"{config.epochs} epochs; strategy {job.strategy_name}{role}: {replicas} replica(s) x "
        f"batch {config.batch_size} = global batch {job.global_batch}; "
        f"loop {training_loop}{f' ({fit_reason})' if fit_reason else ''}; run directory "
        f"{run_dir if job.writer or run_dir.is_dir() else 'made by the chief'}",
        flush=True,
    )
    if progress.completed:
        print(
            f"tfdock: resuming after epoch {progress.completed} of {config.epochs} "
            f"(from {progress.weights})",
            flush=True,
        )


def _fit(
    job: _Job,
    model: Any,
    fit_reason: str | None,
    x_train: Any,
    y_train: Any,
    progress: Progress,
    run_dir: Path,
) -> tuple[Any, dict[str, Any]]:
    """Train the remaining epochs, backing up after each; return the model and the figures.

    Under multi-worker the returned model is a plain Sequential holding the
    trained weights and optimizer state (model.keras then loads without tfdock).
    """
    import keras
    import tensorflow as tf

    from tfdock.distribute import is_lost_worker_error, lost_worker_reason
    from tfdock.graph_loop import fit_in_graph

    config = job.config
    resumed_after = progress.completed
    epoch_seconds: list[float] = []
    callbacks = [
        _epoch_timer(epoch_seconds),
        epoch_backup(run_dir, progress, epoch_seconds, writer=job.writer),
    ]
    if job.writer:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / TENSORBOARD_DIR)))
    verbose = 1 if sys.stdout.isatty() else 2
    started = time.perf_counter()
    try:
        with job.strategy.scope():
            if fit_reason is None:
                fit_in_graph(
                    model,
                    x_train,
                    y_train,
                    epochs=config.epochs,
                    initial_epoch=resumed_after,
                    batch_size=job.global_batch,
                    seed=config.seed,
                    steps_per_execution=job.steps_per_execution,
                    callbacks=callbacks,
                    verbose=verbose,
                )
            else:
                model.fit(
                    _training_dataset(
                        tf, x_train, y_train, config, job.global_batch, job.multi_worker
                    ),
                    initial_epoch=resumed_after,
                    epochs=config.epochs,
                    # The dataset reshuffles itself each epoch; Keras's own flag is for arrays.
                    shuffle=False,
                    callbacks=callbacks,
                    verbose=verbose,
                )
        seconds = time.perf_counter() - started
        if job.multi_worker:
            # Reading the weights is collective under multi-worker: every worker reads.
            model = _plain_copy(model, config.steps_per_execution)
    except tf.errors.OpError as exc:
        if not (job.multi_worker and is_lost_worker_error(tf, exc)):
            raise
        raise TfdockError(
            f"{job.cluster.name} lost contact with another task of the multi-worker job "
            f"({lost_worker_reason(exc)}); restart every task with the same --run-dir "
            f"and training resumes from the last completed epoch saved in {run_dir}."
        ) from None
    samples = len(x_train) * (config.epochs - resumed_after)
    return model, {
        "epochs": progress.epochs,
        "fit_seconds": seconds,
        "samples_per_second": samples / seconds,
        "resumed_after_epoch": resumed_after,
    }


def _plain_copy(model: Any, steps_per_execution: int) -> Any:
    """Return a plain Sequential with ``model``'s weights and optimizer state."""
    from tfdock.model import build_model, compile_model

    weights = model.get_weights()
    optimizer_state = [variable.numpy() for variable in model.optimizer.variables]
    plain = compile_model(build_model(), steps_per_execution)
    plain.set_weights(weights)
    plain.optimizer.build(plain.trainable_variables)
    for variable, value in zip(plain.optimizer.variables, optimizer_state, strict=True):
        variable.assign(value)
    return plain


def _finish(model: Any, dataset: Mnist, run_dir: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """Evaluate, then write model.keras, curves.png and, last, metrics.json.

    metrics.json marks a finished run: a failure before it (a full disk) leaves
    a run that ``--resume`` completes.
    """
    from tfdock.verify import environment_receipt

    x_test = dataset.x_test.astype("float32") / 255.0
    test_loss, test_accuracy = model.evaluate(x_test, dataset.y_test, batch_size=256, verbose=0)
    _save_model(model, run_dir / MODEL_FILE)
    _plot_curves(metrics["epochs"], float(test_accuracy), run_dir / CURVES_FILE)
    metrics.update(
        test={"loss": float(test_loss), "accuracy": float(test_accuracy)},
        environment=environment_receipt(),
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    write_json(run_dir / METRICS_FILE, metrics)
    print(
        f"tfdock: test accuracy {test_accuracy:.4f}, test loss {test_loss:.4f}, "
        f"fit {metrics['fit_seconds']:.1f} s ({metrics['samples_per_second']:,.0f} samples/s); "
        f"artifacts in {run_dir}",
        flush=True,
    )
    return metrics


def _save_model(model: Any, target: Path) -> None:
    with atomic_path(target) as tmp:
        # Keras insists on the .keras suffix; the suffixed name is temporary too.
        keras_tmp = tmp.with_name(tmp.name + ".keras")
        try:
            model.save(keras_tmp)
            os.replace(keras_tmp, tmp)
        finally:
            keras_tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _failed_writes_explained(run_dir: Path, cluster: Cluster | None) -> Iterator[None]:
    """Turn a write that fails (a full disk, above all) into one sentence saying how to go on.

    Ctrl-C in a single-process run says how to go on too (a multi-worker job's
    launcher says it for the whole job).
    """
    try:
        yield
    except KeyboardInterrupt:
        if cluster is not None:
            raise
        raise KeyboardInterrupt(_how_to_go_on(run_dir, cluster)) from None
    except Exception as exc:
        sentence = _failed_write(exc, run_dir, cluster)
        if sentence is None:
            raise
        raise TfdockError(sentence) from None


def _failed_write(exc: Exception, run_dir: Path, cluster: Cluster | None) -> str | None:
    """Say what failed in the run folder and how to go on; None for an error of another kind."""
    disk_full = _is_disk_full(exc)
    # filename2: the target of a rename, which is the file the user knows.
    named = (exc.filename2 or exc.filename) if isinstance(exc, OSError) else None
    where = Path(named) if named else run_dir
    in_run_dir = run_dir in (where, *where.parents)
    if not (disk_full or (isinstance(exc, OSError) and in_run_dir)):
        return None
    then = _how_to_go_on(run_dir, cluster)
    if disk_full:
        disk = run_dir if in_run_dir else where.parent
        return f"no space left on the disk holding {disk}; free some and {then}."
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"{where}: {reason.lower()}; fix that and {then}."


def _how_to_go_on(run_dir: Path, cluster: Cluster | None) -> str:
    """What continues a run that stopped early: resume it, or start it again."""
    if cluster is None or not (run_dir / CONFIG_FILE).is_file():
        return how_to_go_on(run_dir)
    return f"restart every task with --run-dir {run_dir}"


def _is_disk_full(exc: Exception) -> bool:
    """Whether ``exc`` is a write that failed for lack of space, from Python or TensorFlow."""
    if isinstance(exc, OSError):
        return exc.errno in DISK_FULL
    tf = sys.modules.get("tensorflow")  # TensorBoard's writer fails as a TensorFlow error
    return (
        tf is not None
        and isinstance(exc, tf.errors.ResourceExhaustedError)
        and any(os.strerror(code) in str(exc) for code in DISK_FULL)
    )


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
    try:
        with atomic_path(target) as tmp:
            figure.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(figure)
