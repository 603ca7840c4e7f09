"""The ``tfdock`` command line: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tfdock import __version__
from tfdock._native_logs import quiet_native_logs
from tfdock.errors import TfdockError

if TYPE_CHECKING:
    from tfdock.train import TrainConfig


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Describe the subcommands and their flags."""
    from tfdock.distribute import DEFAULT_STRATEGY, STRATEGIES
    from tfdock.graph_loop import DEFAULT_LOOP, LOOPS
    from tfdock.lab import DEFAULT_IP, DEFAULT_PORT
    from tfdock.launch import DEFAULT_WORKERS

    parser = argparse.ArgumentParser(
        prog="tfdock", description="A reproducible TensorFlow environment kit."
    )
    parser.add_argument("--version", action="version", version=f"tfdock {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train the quickstart MNIST model",
        description="Train the TensorFlow quickstart model on MNIST.",
    )
    _add_train_arguments(train)
    train.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default=DEFAULT_STRATEGY,
        help="tf.distribute strategy: auto = multi-worker when TF_CONFIG names a cluster, "
        "mirrored when more than one GPU is visible, else the default (default %(default)s)",
    )
    train.add_argument(
        "--loop",
        choices=LOOPS,
        default=DEFAULT_LOOP,
        help="auto = tfdock's graph loop (fit's math, faster) where it is exact, else Keras "
        "fit; fit = always Keras fit, to compare (default %(default)s)",
    )
    place = train.add_mutually_exclusive_group()
    place.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="train into exactly this folder instead of a new one under --output-dir; "
        "if it holds this run's unfinished attempt, continue it",
    )
    place.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue an interrupted run from its last completed epoch, with its saved settings",
    )

    multiworker = commands.add_parser(
        "multiworker",
        help="train as a real multi-worker job of N local processes",
        description="Start N `tfdock train --strategy multi-worker` processes on free loopback "
        "ports, each with its own TF_CONFIG, sharing one run directory that only the chief "
        "(worker 0) writes. Fails with one sentence when a worker dies.",
    )
    multiworker.add_argument(
        "--workers",
        type=_positive_int,
        default=DEFAULT_WORKERS,
        metavar="N",
        help="number of worker processes (default %(default)s)",
    )
    _add_train_arguments(multiworker)
    multiworker.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue an interrupted multi-worker run from its last completed epoch",
    )

    verify = commands.add_parser(
        "verify",
        help="prove the environment matches the lock and TensorFlow trains",
        description="Check Python, the installed packages against the lock, TensorFlow and "
        "its devices, and a short training both ways (Keras fit and the graph loop that "
        "`tfdock train` uses). Exit 0 only when all pass.",
    )
    verify.add_argument(
        "--lock",
        type=Path,
        default=None,
        help="the lock this environment was made from "
        "(default: $TFDOCK_LOCK, else ./requirements.txt)",
    )
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.add_argument(
        "--require-gpu", action="store_true", help="fail when TensorFlow sees no GPU"
    )

    lab = commands.add_parser(
        "lab",
        help="start JupyterLab with a token (printed with its URL)",
        description="Start JupyterLab. A token is always required: $JUPYTER_TOKEN, else a "
        "random one, printed in the URL.",
    )
    lab.add_argument(
        "--ip",
        default=DEFAULT_IP,
        help="address to listen on (default %(default)s; 0.0.0.0 in containers)",
    )
    lab.add_argument(
        "--port",
        type=_positive_int,
        default=DEFAULT_PORT,
        help="port to listen on (default %(default)s)",
    )
    lab.add_argument(
        "--url-port",
        type=_positive_int,
        default=None,
        metavar="PORT",
        help="port to show in the printed URL, when a container publishes "
        "--port under another number",
    )
    lab.add_argument(
        "--root-dir",
        type=Path,
        default=Path.cwd(),
        metavar="DIR",
        help="folder the lab opens (default: the current folder)",
    )
    commands.add_parser(
        "lab-health", help="exit 0 when the local JupyterLab answers (container health check)"
    )

    lock_check = commands.add_parser(
        "lock-check",
        help="check that requirements.txt still matches requirements.in",
        description="Check that every requirement in the .in file is pinned in the lock within "
        "its range, exactly and hashed, and that the lock pins nothing the .in no longer names. "
        "When the package index answers, also compile the .in file again with pip-compile and "
        "compare pins and hashes; otherwise say that only the structure was checked.",
    )
    lock_check.add_argument(
        "requirements_in", type=Path, nargs="?", default=Path("requirements.in")
    )
    lock_check.add_argument("lock", type=Path, nargs="?", default=Path("requirements.txt"))
    lock_check.add_argument(
        "--offline",
        action="store_true",
        help="check the structure only; do not ask the package index",
    )
    return parser


# Commands that load TensorFlow, whose native start-up chatter is filtered.
# Others must keep the real standard error: `lab` replaces itself with JupyterLab.
_WITH_TENSORFLOW = frozenset({"train", "verify"})


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags that decide a training run (shared by train and multiworker)."""
    from tfdock.train import (
        DEFAULT_BATCH_SIZE,
        DEFAULT_EPOCHS,
        DEFAULT_INTER_OP_THREADS,
        DEFAULT_INTRA_OP_THREADS,
        DEFAULT_OUTPUT_DIR,
        DEFAULT_SEED,
        DEFAULT_STEPS_PER_EXECUTION,
    )

    parser.add_argument(
        "--epochs",
        type=_positive_int,
        default=DEFAULT_EPOCHS,
        help="passes over the training set (default %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=DEFAULT_BATCH_SIZE,
        help="images per optimizer step (default %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help="random seed for weights, dropout and shuffling (default %(default)s)",
    )
    parser.add_argument(
        "--data",
        default=None,
        metavar="PATH",
        help="a Keras mnist.npz or a folder of the four official MNIST .gz files "
        "(default: $TFDOCK_DATA, else download and cache)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_OUTPUT_DIR,
        metavar="DIR",
        help="where each run gets its own new folder (default %(default)s)",
    )
    parser.add_argument(
        "--steps-per-execution",
        type=_positive_int,
        default=DEFAULT_STEPS_PER_EXECUTION,
        metavar="N",
        help="optimizer steps per call into the graph; the math is unchanged (default %(default)s)",
    )
    parser.add_argument(
        "--intra-op-threads",
        type=int,
        default=DEFAULT_INTRA_OP_THREADS,
        metavar="N",
        help="threads inside one op; 0 = all cores "
        "(default %(default)s, fastest for this small model)",
    )
    parser.add_argument(
        "--inter-op-threads",
        type=int,
        default=DEFAULT_INTER_OP_THREADS,
        metavar="N",
        help="ops run at once; 0 = TensorFlow's choice (default %(default)s, fastest for this "
        "small model; multi-worker jobs always use TensorFlow's choice)",
    )
    parser.add_argument(
        "--limit",
        type=_positive_int,
        default=None,
        metavar="N",
        help="train on the first N images only, for quick checks",
    )
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="seeded, with TensorFlow's op determinism: two runs on the same machine "
        "give identical metrics, bit for bit",
    )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    # TensorFlow's C++ INFO lines (oneDNN, CPU features) are noise to a user.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    args = build_parser().parse_args(argv)
    try:
        if args.command in _WITH_TENSORFLOW:
            with quiet_native_logs():
                return _dispatch(args)
        return _dispatch(args)
    except TfdockError as exc:
        print(f"tfdock: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tfdock: interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "train":
        from tfdock.train import train

        config = _train_config(args)
        train(config, run_dir=args.resume or args.run_dir)
        return 0
    if args.command == "multiworker":
        from tfdock.launch import launch_local

        config = _train_config(args)
        return launch_local(args.workers, _worker_arguments(args, config), args.run_dir)
    if args.command == "verify":
        from tfdock.verify import verify

        return verify(args.lock, require_gpu=args.require_gpu, as_json=args.json)
    if args.command == "lab":
        from tfdock.lab import start_lab

        return start_lab(args.ip, args.port, args.url_port, args.root_dir)
    if args.command == "lab-health":
        from tfdock.lab import lab_health

        return lab_health()
    if args.command == "lock-check":
        from tfdock.pip_compile import lock_check

        return lock_check(args.requirements_in, args.lock, args.offline)
    raise AssertionError(f"unhandled command {args.command}")


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """Build the run's settings from the flags, or from the saved run with --resume.

    With --resume the run's config.json decides; a flag given with a value other
    than its default must agree with it, or the resume is refused.
    """
    from tfdock.train import TrainConfig

    flags = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "data": args.data,
        "output_dir": args.output_dir,
        "steps_per_execution": args.steps_per_execution,
        "intra_op_threads": args.intra_op_threads,
        "inter_op_threads": args.inter_op_threads,
        "limit": args.limit,
        "deterministic": args.deterministic,
    }
    if getattr(args, "strategy", None) is not None:
        flags["strategy"] = args.strategy
    if getattr(args, "loop", None) is not None:
        flags["loop"] = args.loop
    if args.command == "multiworker":
        flags["strategy"] = "multi-worker"
    if args.resume is None:
        config = TrainConfig(**flags)
        if args.command == "multiworker":
            from tfdock.data import load_mnist
            from tfdock.train import new_run_dir

            # Bad settings or data fail here, once, before the run folder exists
            # (and a download happens once, not in every worker).
            config.validate()
            load_mnist(config.data)
            args.run_dir = new_run_dir(Path(args.output_dir))
        return config

    from tfdock.resume import PINNED_SETTINGS, read_run_config

    saved = read_run_config(args.resume)
    defaults = TrainConfig()
    settings = {}
    for name, value in flags.items():
        given = value != getattr(defaults, name)
        if name in PINNED_SETTINGS and given and name in saved and saved[name] != value:
            flag = "--" + name.replace("_", "-")
            raise TfdockError(
                f"{args.resume} was started with {flag} {saved[name]}; a resumed run keeps its "
                f"settings, so drop {flag} {value} (or start a new run)."
            )
        settings[name] = value if given or name not in saved else saved[name]
    settings["output_dir"] = Path(settings["output_dir"])
    if args.command == "multiworker":
        args.run_dir = args.resume
    return TrainConfig(**settings)


def _worker_arguments(args: argparse.Namespace, config: TrainConfig) -> list[str]:
    """Return the `tfdock train` flags every local worker of a multiworker job gets."""
    arguments = [
        "--run-dir",
        str(args.run_dir),
        "--epochs",
        str(config.epochs),
        "--batch-size",
        str(config.batch_size),
        "--seed",
        str(config.seed),
        "--output-dir",
        str(config.output_dir),
        "--steps-per-execution",
        str(config.steps_per_execution),
        "--intra-op-threads",
        str(config.intra_op_threads),
        "--inter-op-threads",
        str(config.inter_op_threads),
    ]
    if config.data is not None:
        arguments += ["--data", str(config.data)]
    if config.limit is not None:
        arguments += ["--limit", str(config.limit)]
    if config.deterministic:
        arguments.append("--deterministic")
    return arguments
