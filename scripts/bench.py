"""Time the plain quickstart and `tfdock train` side by side on the same data: `make bench`.

Each training run is a fresh process. Three sides take turns, each first in
turn, so all see the same machine load: the baseline, `tfdock train`, and
`tfdock train --loop fit` (tfdock's other levers under Keras fit, to show what
the graph loop adds). The median of the repeats is reported. Also timed:
`tfdock verify`, `import tensorflow` and a no-op `make setup`. The figures go to bench-results/bench-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tfdock._files import write_json
from tfdock.data import DATA_ENV, load_mnist
from tfdock.errors import TfdockError
from tfdock.run_dir import METRICS_FILE
from tfdock.settings import DEFAULTS

REPO_ROOT = Path(__file__).resolve().parents[1]
BASELINE_SCRIPT = REPO_ROOT / "scripts" / "quickstart_baseline.py"
DEFAULT_REPEATS = 3
DEFAULT_OUTPUT_DIR = Path("bench-results")
IMPORT_TENSORFLOW = (
    "import time; started = time.perf_counter(); import tensorflow; "
    "print(time.perf_counter() - started)"
)
BASELINE = "quickstart baseline"
TFDOCK = "tfdock train"
# tfdock's other levers without its graph loop: what the loop itself adds.
TFDOCK_FIT = "tfdock train --loop fit"
SIDES = (BASELINE, TFDOCK, TFDOCK_FIT)


def main(argv: list[str] | None = None) -> int:
    """Run the bench; print the table and write the JSON; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="runs of each side")
    parser.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    parser.add_argument(
        "--limit", type=int, default=None, help="train on the first N images (quick checks)"
    )
    parser.add_argument(
        "--data", default=None, help=f"MNIST npz or folder of the .gz files (default ${DATA_ENV})"
    )
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    try:
        if args.repeats < 1 or args.epochs < 1:
            raise TfdockError("--repeats and --epochs must be at least 1.")
        results = run_bench(args.repeats, args.epochs, args.limit, args.data, args.output_dir)
    except TfdockError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    print(format_table(results))
    return 0


def run_bench(
    repeats: int, epochs: int, limit: int | None, data: str | None, output_dir: Path
) -> dict[str, Any]:
    """Run every measurement ``repeats`` times, interleaved; write and return the figures."""
    data = data or os.environ.get(DATA_ENV) or None
    if data:
        data = str(Path(data).resolve())  # the runs start in the repository root
    mnist = load_mnist(data)  # bad data fails here, in one sentence, before any timing
    train_samples = min(limit or len(mnist.x_train), len(mnist.x_train))
    output_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    load_before = os.getloadavg()[0]
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    verify_runs: list[dict[str, Any]] = []
    import_seconds: list[float] = []
    setup_seconds: list[float | None] = []
    environment: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tfdock-bench-") as scratch:
        for repeat in range(repeats):
            shift = repeat % len(SIDES)  # each side takes each place in the order in turn
            for index, side in enumerate(SIDES[shift:] + SIDES[:shift]):
                workdir = Path(scratch) / f"{repeat}-{index}"
                workdir.mkdir()
                if side == BASELINE:
                    run = _run_baseline(workdir, epochs, limit, data)
                else:
                    loop = ["--loop", "fit"] if side == TFDOCK_FIT else []
                    run, environment = _run_tfdock(workdir, epochs, limit, data, loop)
                runs[side].append(run)
                print(
                    f"bench: {repeat + 1}/{repeats} {side}: fit {run['fit_seconds']:.2f} s, "
                    f"test accuracy {run['test_accuracy']:.4f}",
                    flush=True,
                )
            verify_runs.append(_run_verify())
            import_seconds.append(_import_tensorflow_seconds())
            setup_seconds.append(_noop_setup_seconds())
    setup_known = [s for s in setup_seconds if s is not None]
    sides = {side: _summary(side_runs) for side, side_runs in runs.items()}
    results = {
        "started": started.isoformat(timespec="seconds"),
        "config": {
            "epochs": epochs,
            "batch_size": DEFAULTS["batch_size"],
            "train_samples": train_samples,
            "steps_per_epoch": -(-train_samples // DEFAULTS["batch_size"]),
            "repeats": repeats,
            "data": mnist.source,
        },
        "baseline": sides[BASELINE],
        "tfdock_train": sides[TFDOCK],
        "tfdock_train_fit_loop": sides[TFDOCK_FIT],
        "speed_ratio": sides[TFDOCK]["samples_per_second"] / sides[BASELINE]["samples_per_second"],
        "graph_loop_ratio": sides[TFDOCK]["samples_per_second"]
        / sides[TFDOCK_FIT]["samples_per_second"],
        "accuracy_difference_pp": 100
        * (sides[TFDOCK]["test_accuracy"] - sides[BASELINE]["test_accuracy"]),
        "verify": {
            "seconds": statistics.median(v["seconds"] for v in verify_runs),
            "passed": all(v["passed"] for v in verify_runs),
            "runs": verify_runs,
        },
        "import_tensorflow_seconds": {
            "median": statistics.median(import_seconds),
            "runs": import_seconds,
        },
        "make_setup_noop_seconds": {
            "median": statistics.median(setup_known) if setup_known else None,
            "runs": setup_seconds,
            "note": None if setup_known else "not timed: the venv was out of date",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1min_before": load_before,
            "load_average_1min_after": os.getloadavg()[0],
        },
        "environment": environment,
    }
    target = output_dir / f"bench-{started.strftime('%Y%m%d-%H%M%S')}.json"
    write_json(target, results)
    results["file"] = str(target)
    return results


def format_table(results: dict[str, Any]) -> str:
    """Render the figures as the table `make bench` prints."""
    config, machine = results["config"], results["machine"]
    lines = [
        f"tfdock bench: {config['epochs']} epochs x {config['steps_per_epoch']} steps of batch "
        f"{config['batch_size']} on {config['train_samples']} images; median of "
        f"{config['repeats']} runs each ({machine['cpus']} CPUs, load average "
        f"{machine['load_average_1min_before']:.1f} before, "
        f"{machine['load_average_1min_after']:.1f} after)",
        f"{'':24}{'fit s':>8}{'samples/s':>12}{'test acc':>10}   fit s of each run",
    ]
    for label, key in (
        (BASELINE, "baseline"),
        (TFDOCK, "tfdock_train"),
        (TFDOCK_FIT, "tfdock_train_fit_loop"),
    ):
        side = results[key]
        each = ", ".join(f"{run['fit_seconds']:.2f}" for run in side["runs"])
        lines.append(
            f"{label:24}{side['fit_seconds']:8.2f}{side['samples_per_second']:12,.0f}"
            f"{side['test_accuracy']:10.4f}   {each}"
        )
    verify = results["verify"]
    setup = results["make_setup_noop_seconds"]
    setup_text = f"{setup['median']:.3f} s" if setup["median"] is not None else setup["note"]
    lines += [
        f"speed ratio {results['speed_ratio']:.2f}x samples/s; test accuracy "
        f"{results['accuracy_difference_pp']:+.2f} pp (tfdock train minus baseline)",
        f"graph loop vs Keras fit loop {results['graph_loop_ratio']:.2f}x samples/s",
        f"{'tfdock verify':24}{verify['seconds']:8.2f} s ({'PASS' if verify['passed'] else 'FAIL'})",
        f"{'import tensorflow':24}{results['import_tensorflow_seconds']['median']:8.2f} s",
        f"{'make setup (no-op)':24}{setup_text:>10}",
        f"figures: {results['file']}",
    ]
    return "\n".join(lines)


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "fit_seconds": statistics.median(r["fit_seconds"] for r in runs),
        "samples_per_second": statistics.median(r["samples_per_second"] for r in runs),
        "test_accuracy": statistics.median(r["test_accuracy"] for r in runs),
        "runs": runs,
    }


def _run_baseline(workdir: Path, epochs: int, limit: int | None, data: str | None) -> dict:
    result_file = workdir / "result.json"
    command = [sys.executable, str(BASELINE_SCRIPT), "--epochs", str(epochs)]
    command += ["--result", str(result_file), *_data_args(limit, data)]
    completed, seconds = _timed(command, BASELINE)
    run = json.loads(result_file.read_text())
    return {**run, "process_seconds": seconds, "epoch_lines": _epoch_lines(completed.stdout)}


def _run_tfdock(
    workdir: Path, epochs: int, limit: int | None, data: str | None, extra: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    command = [sys.executable, "-m", "tfdock", "train", "--epochs", str(epochs), *extra]
    command += ["--output-dir", str(workdir), *_data_args(limit, data)]
    completed, seconds = _timed(command, " ".join([TFDOCK, *extra]))
    (run_dir,) = (path for path in workdir.iterdir() if path.is_dir())
    metrics = json.loads((run_dir / METRICS_FILE).read_text())
    run = {
        "fit_seconds": metrics["fit_seconds"],
        "samples_per_second": metrics["samples_per_second"],
        "test_accuracy": metrics["test"]["accuracy"],
        "test_loss": metrics["test"]["loss"],
        "epoch_seconds": [epoch["seconds"] for epoch in metrics["epochs"]],
        "training_loop": metrics["config"]["training_loop"],
        "process_seconds": seconds,
        "epoch_lines": _epoch_lines(completed.stdout),
    }
    return run, metrics["environment"]


def _run_verify() -> dict[str, Any]:
    command = [sys.executable, "-m", "tfdock", "verify", "--lock", "requirements.txt"]
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    return {"seconds": time.perf_counter() - started, "passed": completed.returncode == 0}


def _import_tensorflow_seconds() -> float:
    completed, _ = _timed([sys.executable, "-c", IMPORT_TENSORFLOW], "import tensorflow")
    return float(completed.stdout.strip().splitlines()[-1])


def _noop_setup_seconds() -> float | None:
    """Time `make setup` when it has nothing to do; None when the venv is out of date."""
    make = ["make", "-C", str(REPO_ROOT), "--no-print-directory", f"VENV={sys.prefix}"]
    if subprocess.run([*make, "-q", "setup"], capture_output=True).returncode != 0:
        return None
    _, seconds = _timed([*make, "setup"], "make setup")
    return seconds


def _data_args(limit: int | None, data: str | None) -> list[str]:
    return [*(["--data", data] if data else []), *(["--limit", str(limit)] if limit else [])]


def _timed(command: list[str], what: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        tail = (completed.stdout + completed.stderr).strip().splitlines()[-15:]
        print("\n".join(tail), file=sys.stderr)
        raise TfdockError(
            f"{what} exited with status {completed.returncode} (its last lines are above); "
            "fix that and run `make bench` again."
        )
    return completed, seconds


def _epoch_lines(stdout: str) -> int:
    """Count Keras's per-epoch progress lines, to show progress still prints."""
    return sum(1 for line in stdout.splitlines() if line.startswith("Epoch "))


if __name__ == "__main__":
    raise SystemExit(main())
