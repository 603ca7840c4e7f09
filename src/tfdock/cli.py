"""The ``tfdock`` command line: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tfdock import __version__
from tfdock._native_logs import quiet_native_logs
from tfdock.errors import TfdockError


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
    from tfdock.train import (
        DEFAULT_BATCH_SIZE,
        DEFAULT_EPOCHS,
        DEFAULT_INTER_OP_THREADS,
        DEFAULT_INTRA_OP_THREADS,
        DEFAULT_OUTPUT_DIR,
        DEFAULT_SEED,
        DEFAULT_STEPS_PER_EXECUTION,
    )

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
    train.add_argument(
        "--epochs",
        type=_positive_int,
        default=DEFAULT_EPOCHS,
        help="passes over the training set (default %(default)s)",
    )
    train.add_argument(
        "--batch-size",
        type=_positive_int,
        default=DEFAULT_BATCH_SIZE,
        help="images per optimizer step (default %(default)s)",
    )
    train.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help="random seed for weights, dropout and shuffling (default %(default)s)",
    )
    train.add_argument(
        "--data",
        default=None,
        metavar="PATH",
        help="a Keras mnist.npz or a folder of the four official MNIST .gz files "
        "(default: $TFDOCK_DATA, else download and cache)",
    )
    train.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_OUTPUT_DIR,
        metavar="DIR",
        help="where each run gets its own new folder (default %(default)s)",
    )
    train.add_argument(
        "--steps-per-execution",
        type=_positive_int,
        default=DEFAULT_STEPS_PER_EXECUTION,
        metavar="N",
        help="optimizer steps per call into the graph; the math is unchanged (default %(default)s)",
    )
    train.add_argument(
        "--intra-op-threads",
        type=int,
        default=DEFAULT_INTRA_OP_THREADS,
        metavar="N",
        help="threads inside one op; 0 = all cores "
        "(default %(default)s, fastest for this small model)",
    )
    train.add_argument(
        "--inter-op-threads",
        type=int,
        default=DEFAULT_INTER_OP_THREADS,
        metavar="N",
        help="ops run at once; 0 = TensorFlow's choice "
        "(default %(default)s, fastest for this small model)",
    )
    train.add_argument(
        "--limit",
        type=_positive_int,
        default=None,
        metavar="N",
        help="train on the first N images only, for quick checks",
    )

    verify = commands.add_parser(
        "verify",
        help="prove the environment matches the lock and TensorFlow trains",
        description="Check Python, the installed packages against the lock, TensorFlow and "
        "its devices, and a smoke fit. Exit 0 only when all pass.",
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

    lock_check = commands.add_parser(
        "lock-check",
        help="check that requirements.txt still matches requirements.in",
        description="Offline check that every requirement in the .in file is pinned in the lock "
        "within its range, and that the lock pins nothing the .in no longer names.",
    )
    lock_check.add_argument(
        "requirements_in", type=Path, nargs="?", default=Path("requirements.in")
    )
    lock_check.add_argument("lock", type=Path, nargs="?", default=Path("requirements.txt"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    # TensorFlow's C++ INFO lines (oneDNN, CPU features) are noise to a user.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    args = build_parser().parse_args(argv)
    try:
        with quiet_native_logs():
            return _dispatch(args)
    except TfdockError as exc:
        print(f"tfdock: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tfdock: interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "train":
        from tfdock.train import TrainConfig, train

        train(
            TrainConfig(
                epochs=args.epochs,
                batch_size=args.batch_size,
                seed=args.seed,
                data=args.data,
                output_dir=args.output_dir,
                steps_per_execution=args.steps_per_execution,
                intra_op_threads=args.intra_op_threads,
                inter_op_threads=args.inter_op_threads,
                limit=args.limit,
            )
        )
        return 0
    if args.command == "verify":
        from tfdock.verify import verify

        return verify(args.lock, require_gpu=args.require_gpu, as_json=args.json)
    if args.command == "lock-check":
        return _lock_check(args.requirements_in, args.lock)
    raise AssertionError(f"unhandled command {args.command}")


def _lock_check(requirements_in: Path, lock_path: Path) -> int:
    from tfdock.lock import lock_drift, read_lock

    if not requirements_in.is_file():
        raise TfdockError(f"{requirements_in} does not exist; run from the repository root.")
    problems = lock_drift(requirements_in, read_lock(lock_path))
    if problems:
        for problem in problems:
            print(f"{lock_path}: {problem}", file=sys.stderr)
        print(
            f"tfdock: error: {lock_path} no longer matches {requirements_in}; "
            "run `make lock` to recompile it (never edit it by hand).",
            file=sys.stderr,
        )
        return 1
    print(f"{lock_path} matches {requirements_in}")
    return 0
