"""The ``tfdock`` command line: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfdock import __version__
from tfdock._native_logs import quiet_native_logs
from tfdock.errors import TfdockError
from tfdock.settings import (
    DEFAULTS,
    PINNED,
    SETTINGS,
    Setting,
    check_settings,
    worker_arguments,
)

if TYPE_CHECKING:
    from tfdock.train import TrainConfig

    _Commands = argparse._SubParsersAction[argparse.ArgumentParser]
    _Flags = argparse.ArgumentParser | argparse._MutuallyExclusiveGroup

# Each local worker is a whole TensorFlow process (about half a gigabyte of
# memory): more than this many on one machine is a typo, not a test.
MAX_WORKERS = 32


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    # TensorFlow's C++ INFO lines (oneDNN, CPU features) are noise to a user.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except TfdockError as exc:
        print(f"tfdock: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        then = f"; {exc}" if str(exc) else ""  # how to go on, where the command knows it
        print(f"tfdock: interrupted{then}", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    """Describe the subcommands and their flags; each subcommand names its handler."""
    parser = argparse.ArgumentParser(
        prog="tfdock", description="A reproducible TensorFlow environment kit."
    )
    parser.add_argument("--version", action="version", version=f"tfdock {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in (
        _add_train,
        _add_multiworker,
        _add_task,
        _add_k8s,
        _add_verify,
        _add_lab,
        _add_lab_health,
        _add_tensorboard,
        _add_lock,
        _add_container_check,
        _add_lock_check,
    ):
        add_command(commands)
    return parser


def _add_train(commands: _Commands) -> None:
    """Add `tfdock train`: the training settings, and which folder the run trains into."""
    train = commands.add_parser(
        "train",
        help="train the quickstart MNIST model",
        description="Train the TensorFlow quickstart model on MNIST.",
    )
    _add_train_arguments(train, for_workers=False)
    place = train.add_mutually_exclusive_group()
    _add_folder(
        place,
        "--run-dir",
        "DIR",
        "train into exactly this folder instead of a new one under --output-dir; "
        "if it holds this run's unfinished attempt, continue it",
    )
    _add_folder(
        place,
        "--resume",
        "RUN_DIR",
        "continue an interrupted run from its last completed epoch, with its saved settings",
    )
    train.set_defaults(handler=_train)


def _add_multiworker(commands: _Commands) -> None:
    """Add `tfdock multiworker`: how many workers, and the settings they all get."""
    from tfdock.launch import DEFAULT_WORKERS

    multiworker = commands.add_parser(
        "multiworker",
        help="train as a real multi-worker job of N local processes",
        description="Start N `tfdock train --strategy multi-worker` processes on free loopback "
        "ports, each with its own TF_CONFIG, sharing one run directory that only the chief "
        "(worker 0) writes. Fails with one sentence when a worker dies.",
    )
    multiworker.add_argument(
        "--workers",
        type=_whole_number(1, MAX_WORKERS),
        default=DEFAULT_WORKERS,
        metavar="N",
        help="number of worker processes (default %(default)s)",
    )
    _add_train_arguments(multiworker, for_workers=True)
    _add_folder(
        multiworker,
        "--resume",
        "RUN_DIR",
        "continue an interrupted multi-worker run from its last completed epoch",
    )
    # Its runs are multi-worker runs, given so as if by the flag (which it does not offer).
    multiworker.set_defaults(handler=_multiworker, strategy="multi-worker")


def _add_task(commands: _Commands) -> None:
    """Add `tfdock task`: the command each task of a scheduled job runs."""
    task = commands.add_parser(
        "task",
        help="run COMMAND as one task of a Slurm job or Kubernetes Indexed Job, TF_CONFIG set",
        description="In a Slurm step (srun) or a pod of the Indexed Job that `tfdock k8s` "
        "renders: set TF_CONFIG from the scheduler (unless it is set), then run COMMAND in "
        "place of this process (docs/clusters.md).",
    )
    task.add_argument(
        "task_command", nargs=argparse.REMAINDER, metavar="COMMAND ...", help="what to run"
    )
    task.set_defaults(handler=_task)


def _add_k8s(commands: _Commands) -> None:
    """Add `tfdock k8s`: the job's image, size and storage; training flags after `--`."""
    from tfdock.k8s import DEFAULT_PORT

    k8s = commands.add_parser(
        "k8s",
        help="print Kubernetes manifests for an N-worker training job (Indexed Job + Service)",
        description="Print YAML for a headless Service and an Indexed Job of N pods, each "
        "running `tfdock task tfdock train --strategy multi-worker` in IMAGE, the run folder "
        "on a PersistentVolumeClaim. Flags after `--` go to `tfdock train` (docs/clusters.md).",
    )
    k8s.add_argument("--image", default="", help="the image, by digest (`make push` prints it)")
    k8s.add_argument("--workers", type=_whole_number(1, MAX_WORKERS), default=2,
                     help="pods, one worker each (default %(default)s)")  # fmt: skip
    k8s.add_argument("--name", default="tfdock-train", help="the Job's and Service's name")
    k8s.add_argument("--claim", default="tfdock-shared",
                     help="the PersistentVolumeClaim every pod mounts (default %(default)s)")  # fmt: skip
    k8s.add_argument(
        "--mount", default="/shared", help="where it is mounted; runs go to MOUNT/runs"
    )
    k8s.add_argument("--port", type=_whole_number(1024, 65535), default=DEFAULT_PORT,
                     help="each pod's gRPC port (default %(default)s)")  # fmt: skip
    k8s.add_argument("--cpu", default="2", help="CPU each pod requests (default %(default)s)")
    k8s.add_argument("--memory", default="4Gi", help="memory per pod (default %(default)s)")
    k8s.add_argument("--gpus-per-worker", type=_whole_number(0), default=0, metavar="N",
                     help="nvidia.com/gpu per pod, for the GPU image (default 0)")  # fmt: skip
    k8s.add_argument("train_flags", nargs=argparse.REMAINDER, metavar="-- TRAIN_FLAGS",
                     help="flags for `tfdock train`, e.g. -- --epochs 5 --data /shared/mnist")  # fmt: skip
    k8s.set_defaults(handler=_k8s)


def _add_verify(commands: _Commands) -> None:
    """Add `tfdock verify`: which lock to check against, and how to report."""
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
    verify.set_defaults(handler=_verify)


def _add_lab(commands: _Commands) -> None:
    """Add `tfdock lab`: where JupyterLab listens and which folder it opens."""
    from tfdock.lab import DEFAULT_IP, DEFAULT_PORT

    lab = commands.add_parser(
        "lab",
        help="start JupyterLab with a token (printed with its URL)",
        description="Start JupyterLab. A token is always required: $JUPYTER_TOKEN, else a "
        "random one, printed in the URL.",
    )
    _add_listening_arguments(lab, DEFAULT_IP, DEFAULT_PORT)
    lab.add_argument(
        "--root-dir",
        type=Path,
        default=Path.cwd(),
        metavar="DIR",
        help="folder the lab opens (default: the current folder)",
    )
    lab.set_defaults(handler=_lab)


def _add_listening_arguments(server: argparse.ArgumentParser, ip: str, port: int) -> None:
    """Add where a server (the lab, TensorBoard) listens and the port its printed URL shows."""
    server.add_argument(
        "--ip",
        default=ip,
        help="address to listen on (default %(default)s; 0.0.0.0 in containers)",
    )
    server.add_argument(
        "--port",
        type=_whole_number(1),
        default=port,
        help="port to listen on (default %(default)s)",
    )
    server.add_argument(
        "--url-port",
        type=_whole_number(1),
        default=None,
        metavar="PORT",
        help="port to show in the printed URL, when a container publishes "
        "--port under another number",
    )


def _add_lab_health(commands: _Commands) -> None:
    """Add `tfdock lab-health`, the container health check."""
    lab_health = commands.add_parser(
        "lab-health",
        help="exit 0 when the local JupyterLab answers (container health check)",
    )
    lab_health.set_defaults(handler=_lab_health)


def _add_tensorboard(commands: _Commands) -> None:
    """Add `tfdock tensorboard`: which runs it shows and where it listens."""
    from tfdock.board import DEFAULT_IP, DEFAULT_PORT

    board = commands.add_parser(
        "tensorboard",
        help="start TensorBoard over a folder of runs (its URL printed)",
        description="Start TensorBoard over every run under --logdir, each run's own logs "
        "side by side.",
    )
    board.add_argument(
        "--logdir",
        type=Path,
        default=Path("runs"),
        metavar="DIR",
        help="the folder that holds the runs (default %(default)s)",
    )
    _add_listening_arguments(board, DEFAULT_IP, DEFAULT_PORT)
    board.set_defaults(handler=_tensorboard)


def _add_lock(commands: _Commands) -> None:
    """Add `tfdock lock`: recompile the locks, upgrading all or some pins."""
    lock = commands.add_parser(
        "lock",
        help="recompile requirements.txt and requirements-gpu.txt from their .in files",
        description="Recompile both locks with pip-compile (the CPU lock, then the GPU lock "
        "constrained by it), keeping every pin the .in files allow unless asked to upgrade. "
        "pip-compile sees only your pip's index URL, certificates, trusted hosts, proxy, "
        "timeout and retries (see docs/lock.md).",
    )
    upgrade = lock.add_mutually_exclusive_group()
    upgrade.add_argument(
        "--upgrade", action="store_true", help="move every pin to the newest the ranges allow"
    )
    upgrade.add_argument(
        "--upgrade-package",
        action="append",
        default=[],
        metavar="NAME",
        help="move only NAME (and what it needs) to the newest allowed; repeatable",
    )
    lock.set_defaults(handler=_lock)


def _add_container_check(commands: _Commands) -> None:
    """Add `tfdock container-check`."""
    container_check = commands.add_parser(
        "container-check",
        help="fail when this container is older than the workspace's lock",
        description="In the kit's images: exit 1 with one sentence when the mounted "
        "workspace's lock differs from the one the image was built from.",
    )
    container_check.set_defaults(handler=_container_check)


def _add_lock_check(commands: _Commands) -> None:
    """Add `tfdock lock-check`: which pair of files, online or offline."""
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
    lock_check.set_defaults(handler=_lock_check)


def _add_folder(parser: _Flags, flag: str, metavar: str, help_text: str) -> None:
    """Add a flag naming a folder, None when not given."""
    parser.add_argument(flag, type=Path, default=None, metavar=metavar, help=help_text)


def _add_train_arguments(parser: argparse.ArgumentParser, *, for_workers: bool) -> None:
    """Add a flag for each training setting (those passed on to workers, ``for_workers``).

    Each flag's argparse default is None, so that a flag the user gave is known
    even when its value equals the built-in default: --resume honours or
    refuses every one.
    """
    for setting in SETTINGS.values():
        if setting.workers or not for_workers:
            parser.add_argument(setting.flag, help=setting.help_text, **_flag_options(setting))


def _flag_options(setting: Setting) -> dict[str, Any]:
    """Return how argparse reads a setting's flag: a switch, a choice, or a checked value."""
    options: dict[str, Any] = {"default": None}
    if setting.metavar is not None:
        options["metavar"] = setting.metavar
    if setting.kind is bool:
        options["action"] = "store_true"
    elif setting.choices:
        options["choices"] = setting.choices
    elif setting.bounds is not None:
        options["type"] = _whole_number(*setting.bounds)
    else:
        options["type"] = setting.kind
    return options


def _whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """Return an argparse type for a whole number from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"of at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"expected a whole number {bounds}, got {value}")
        return value

    return parse


# The handlers, one per subcommand. Those that load TensorFlow filter its native
# start-up chatter; the others keep the real standard error (`lab` replaces
# itself with JupyterLab).


def _train(args: argparse.Namespace) -> int:
    """Train one run, in this process (a task that a scheduler started reads its cluster there)."""
    from tfdock.train import train

    with quiet_native_logs():
        _tf_config_from_scheduler()
        train(_train_config(args), run_dir=args.resume or args.run_dir)
    return 0


def _multiworker(args: argparse.Namespace) -> int:
    """Check the job once, then start its local workers into one run folder."""
    from tfdock.launch import launch_local
    from tfdock.train import check_before_workers

    config = _train_config(args)
    run_dir = check_before_workers(config, args.resume)
    return launch_local(args.workers, _worker_arguments(config, run_dir), run_dir)


def _task(args: argparse.Namespace) -> int:
    """Set TF_CONFIG from the scheduler that started this task, then become its command."""
    from tfdock.cluster import in_scheduled_task

    if not args.task_command:
        raise TfdockError("say what each task runs, e.g. `srun tfdock task python my_train.py`.")
    if not in_scheduled_task():
        raise TfdockError(
            "tfdock task runs as one task of a Slurm job step or of the Kubernetes Indexed Job "
            "that `tfdock k8s` renders, which this is not: submit it with "
            "`make slurm-run CMD=...` (docs/clusters.md)."
        )
    # Before TensorFlow loads for the cluster (seconds): a misspelt command is told at once.
    if shutil.which(args.task_command[0]) is None:
        raise _cannot_run(args.task_command[0], "not found, or not executable")
    with quiet_native_logs():
        _tf_config_from_scheduler()
    try:
        os.execvp(args.task_command[0], args.task_command)
    except OSError as exc:
        raise _cannot_run(args.task_command[0], exc.strerror) from None


def _cannot_run(command: str, why: str) -> TfdockError:
    return TfdockError(
        f"cannot run {command!r} ({why}); name a command that exists in the task's environment."
    )


def _tf_config_from_scheduler() -> None:
    """Without TF_CONFIG, in a Slurm step or an Indexed Job's pod: set it, and say so."""
    from tfdock.cluster import set_tf_config_from_scheduler

    line = set_tf_config_from_scheduler()
    if line:
        print(line, flush=True)


def _k8s(args: argparse.Namespace) -> int:
    """Print the job's manifests."""
    from tfdock.k8s import JobSpec, render

    flags = args.train_flags[1:] if args.train_flags[:1] == ["--"] else args.train_flags
    spec = JobSpec(
        name=args.name, image=args.image, workers=args.workers, claim=args.claim,
        mount=args.mount, port=args.port, cpu=args.cpu, memory=args.memory,
        gpus_per_worker=args.gpus_per_worker, train_flags=flags,
    )  # fmt: skip
    sys.stdout.write(render(spec))
    return 0


def _verify(args: argparse.Namespace) -> int:
    """Prove the environment is the lock and TensorFlow trains."""
    from tfdock.verify import verify

    with quiet_native_logs():
        return verify(args.lock, require_gpu=args.require_gpu, as_json=args.json)


def _lab(args: argparse.Namespace) -> int:
    """Start JupyterLab in place of this process."""
    from tfdock.lab import start_lab

    return start_lab(args.ip, args.port, args.url_port, args.root_dir)


def _lab_health(args: argparse.Namespace) -> int:
    """Say whether the local JupyterLab answers."""
    from tfdock.lab import lab_health

    return lab_health()


def _tensorboard(args: argparse.Namespace) -> int:
    """Serve TensorBoard over the runs until it is stopped."""
    from tfdock.board import start_tensorboard

    with quiet_native_logs():
        return start_tensorboard(args.logdir, args.ip, args.port, args.url_port)


def _lock(args: argparse.Namespace) -> int:
    """Recompile both locks, then say how each door catches up."""
    from tfdock.lock_compile import compile_locks

    changes = compile_locks(args.upgrade, tuple(args.upgrade_package))
    for change in changes:
        print(change.summary())
    if any(change.added or change.removed or change.changed for change in changes):
        from tfdock.container import IN_IMAGE_ENV, resync_hint

        if os.environ.get(IN_IMAGE_ENV):
            print(f"Next: {resync_hint()}.")
        else:
            print(
                "Next: `make setup` re-syncs .venv; `make image` / `make image-gpu` rebuild the "
                "images; in VS Code, Dev Containers: Rebuild Container."
            )
    return 0


def _container_check(args: argparse.Namespace) -> int:
    """Fail, in one sentence, when this container is older than the workspace's lock."""
    from tfdock.container import stale_container_message

    message = stale_container_message()
    if message:
        print(f"tfdock: {message}", file=sys.stderr)
        return 1
    return 0


def _lock_check(args: argparse.Namespace) -> int:
    """Check that a lock still matches its .in file."""
    from tfdock.lock_check import lock_check

    return lock_check(args.requirements_in, args.lock, args.offline)


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """Build the run's settings from the flags given, or from the saved run with --resume.

    Reads at most the run's config.json: no data is loaded and no folder made.
    With --resume the saved settings decide; every flag given is honoured, or
    refused when it would change what the run computes.
    """
    from tfdock.train import TrainConfig

    given = {
        name: getattr(args, name) for name in SETTINGS if getattr(args, name, None) is not None
    }
    if args.resume is None:
        return TrainConfig(**given)
    return _resumed_config(args.resume, given)


def _resumed_config(run_dir: Path, given: dict[str, object]) -> TrainConfig:
    """Return a saved run's settings, with the flags ``given`` that do not change its math."""
    from tfdock.run_dir import read_run_config
    from tfdock.train import TrainConfig

    if "output_dir" in given:
        raise TfdockError(
            f"--output-dir is where new runs go, but --resume continues {run_dir} in place; "
            "drop --output-dir."
        )
    saved = read_run_config(run_dir)
    _refuse_changed_pins(run_dir, saved, given)
    return TrainConfig(**{**_saved_settings(run_dir, saved), **given})


def _refuse_changed_pins(run_dir: Path, saved: dict[str, Any], given: dict[str, object]) -> None:
    """Refuse a flag that would change what the saved run computes."""
    for name in PINNED:
        if name in given and given[name] != saved.get(name, given[name]):
            raise TfdockError(
                f"{run_dir} was started {_as_flag(name, saved[name], 'with ')}; a resumed run "
                f"keeps its settings, so drop {_as_flag(name, given[name])} (or start a new run)."
            )


def _saved_settings(run_dir: Path, saved: dict[str, Any]) -> dict[str, Any]:
    """Return config.json's training settings; refuse them when an edit put one out of range."""
    from tfdock.run_dir import CONFIG_FILE

    settings = {name: value for name, value in saved.items() if name in SETTINGS}
    if isinstance(settings.get("output_dir"), str):
        settings["output_dir"] = Path(settings["output_dir"])
    try:
        check_settings({**DEFAULTS, **settings})
    except TfdockError as exc:
        raise TfdockError(
            f"{run_dir / CONFIG_FILE} was edited: {str(exc).rstrip('.')}; restore it, or start "
            "a new run."
        ) from None
    return settings


def _as_flag(name: str, value: object, prefix: str = "") -> str:
    """Say how a setting is given on the command line: --epochs 3, --deterministic, without --limit."""
    arguments = SETTINGS[name].arguments(value)
    return f"{prefix}{' '.join(arguments)}" if arguments else f"without {SETTINGS[name].flag}"


def _worker_arguments(config: TrainConfig, run_dir: Path) -> list[str]:
    """Return the `tfdock train` flags every local worker of a multiworker job gets."""
    return ["--run-dir", str(run_dir), *worker_arguments(asdict(config))]
