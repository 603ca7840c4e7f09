"""Accept a GPU host: verify on the GPU, train on it, and prove two deterministic runs identical.

`make gpu-check` runs doctor on the host, then this module in the GPU image with the
GPU passed through (`python -m tfdock.gpu_acceptance --output DIR --doctor FILE`).
Each stage is a real `tfdock` command; the first stage that fails stops the check,
and the report (DIR/report.json) says which one and why. Stages:

1. ``verify``: `tfdock verify --require-gpu --json` (placement on GPU:0, the loaded
   CUDA runtime and cuDNN against the build).
2. ``train``: a 1-epoch `tfdock train --strategy one-device`: tfdock's graph loop on
   the GPU (OneDeviceStrategy("/gpu:0")).
3. ``determinism``: two `tfdock train --deterministic` runs, whose metrics and
   weights must be equal bit for bit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tfdock import __version__
from tfdock._files import write_json
from tfdock.run_dir import METRICS_FILE, MODEL_FILE

REPORT_FILE = "report.json"
STAGE_TIMEOUT_S = 3 * 3600  # a bound for one stage; a first PTX JIT compile can take long
DETERMINISM_SEED = 42


def main(argv: list[str] | None = None) -> int:
    """Run the stages in order, stop at the first failure, write the report; 0 when all pass."""
    parser = argparse.ArgumentParser(prog="python -m tfdock.gpu_acceptance")
    parser.add_argument("--output", type=Path, required=True, help="folder for runs and report")
    parser.add_argument("--doctor", type=Path, default=None, help="doctor's output on the host")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        args.output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _cannot_write_report(args.output, exc)
    report = run_stages(args.output, args.doctor, args.epochs)
    try:
        write_json(args.output / REPORT_FILE, report)
    except OSError as exc:
        return _cannot_write_report(args.output, exc)
    print(
        f"gpu-check: {'passed' if report['ok'] else 'failed'}; report in {args.output / REPORT_FILE}"
    )
    return 0 if report["ok"] else 1


def _cannot_write_report(output: Path, exc: OSError) -> int:
    print(
        f"gpu-check: cannot write the report under {output} ({exc.strerror}); "
        "run it from a folder you can write to.",
        file=sys.stderr,
    )
    return 2


class StageFailed(Exception):
    """A stage's command succeeded but left something unusable; the message says what."""


def run_stages(output: Path, doctor: Path | None, epochs: int) -> dict[str, Any]:
    """Run verify, train and determinism in order; stop at the first failure; return the report."""
    report = new_report(doctor)
    for stage in (stage_verify, stage_train, stage_determinism):
        started = time.perf_counter()
        try:
            result = stage(output, epochs)
        except StageFailed as failure:
            result = _stage(stage.__name__.removeprefix("stage_"), False, str(failure))
        result["seconds"] = round(time.perf_counter() - started, 1)
        report["stages"].append(result)
        print(
            f"gpu-check: {result['name']}: {'ok' if result['ok'] else 'FAILED'}: {result['detail']}"
        )
        if not result["ok"]:
            break
    report["ok"] = len(report["stages"]) == 3 and all(s["ok"] for s in report["stages"])
    return report


def new_report(doctor: Path | None) -> dict[str, Any]:
    """Start the report: the kit's version and the host's doctor output."""
    try:
        text = doctor.read_text() if doctor is not None and doctor.is_file() else None
    except OSError as exc:
        text = f"cannot read {doctor} ({exc.strerror})"
    return {"tfdock": __version__, "doctor": text.splitlines() if text else None, "stages": []}


def stage_verify(output: Path, epochs: int) -> dict[str, Any]:
    """`tfdock verify --require-gpu --json`: every check must pass."""
    done = _tfdock("verify", "--require-gpu", "--json")
    try:
        verify = json.loads(done.stdout)
    except ValueError:
        return _stage("verify", False, f"verify printed no JSON: {_tail(done)}")
    failed = [f"{c['name']}: {c['detail']}" for c in verify["checks"] if not c["ok"]]
    gpus = ", ".join(verify.get("tensorflow", {}).get("gpus") or []) or "none"
    detail = failed[0] if failed else f"all {len(verify['checks'])} checks passed on {gpus}"
    return _stage("verify", done.returncode == 0 and not failed, detail, verify=verify)


def stage_train(output: Path, epochs: int) -> dict[str, Any]:
    """A short `tfdock train` on one GPU through tfdock's graph loop."""
    run_dir = output / "train"
    done = _train_on_one_gpu(run_dir, epochs)
    if done.returncode != 0:
        return _stage(
            "train", False, f"tfdock train failed (exit {done.returncode}): {_tail(done)}"
        )
    metrics = _read_metrics(run_dir)
    config = metrics["config"]
    summary = {
        "run_dir": str(run_dir),
        "training_loop": config.get("training_loop"),
        "strategy": config.get("strategy_used"),
        "test_accuracy": metrics["test"]["accuracy"],
        "fit_seconds": metrics["fit_seconds"],
        "samples_per_second": metrics["samples_per_second"],
        "devices": metrics["environment"]["devices"],
    }
    ok = summary["training_loop"] == "graph" and any("GPU" in d for d in summary["devices"])
    detail = (
        f"{epochs} epoch(s), loop {summary['training_loop']}, test accuracy "
        f"{summary['test_accuracy']:.4f}, {summary['samples_per_second']:,.0f} samples/s"
    )
    if not ok:
        detail = (
            f"expected the graph loop on a GPU, got {detail} on {', '.join(summary['devices'])}"
        )
    return _stage("train", ok, detail, train=summary)


def stage_determinism(output: Path, epochs: int) -> dict[str, Any]:
    """Two `tfdock train --deterministic` runs with one seed: equal metrics and weights, bit for bit."""
    runs = []
    for name in ("deterministic-a", "deterministic-b"):
        run_dir = output / name
        done = _train_on_one_gpu(
            run_dir, epochs, "--deterministic", "--seed", str(DETERMINISM_SEED)
        )
        if done.returncode != 0:
            return _stage(
                "determinism", False, f"{name} failed (exit {done.returncode}): {_tail(done)}"
            )
        runs.append(run_dir)
    difference = compare_runs(*runs)
    detail = difference or "metrics and weights of the two runs are identical, bit for bit"
    return _stage("determinism", difference is None, detail, runs=[str(r) for r in runs])


def compare_runs(first: Path, second: Path) -> str | None:
    """Return the first difference between two runs' metrics or weights, or None."""
    metrics = [_read_metrics(run) for run in (first, second)]
    epochs = [len(run["epochs"]) for run in metrics]
    if epochs[0] != epochs[1]:
        return f"{first.name} ran {epochs[0]} epoch(s) but {second.name} ran {epochs[1]}"
    for (name, a), (_, b) in zip(*map(_numbers, metrics), strict=True):
        if a != b:
            return f"{name} differs: {a!r} in {first.name}, {b!r} in {second.name}"
    weights = [_weights(run / MODEL_FILE) for run in (first, second)]
    if len(weights[0]) != len(weights[1]):
        return (
            f"{first.name} has {len(weights[0])} weight arrays but {second.name} has "
            f"{len(weights[1])}"
        )
    for index, (a, b) in enumerate(zip(*weights, strict=True)):
        if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
            return f"weight {index} {a.shape} differs between {first.name} and {second.name}"
    return None


def _read_metrics(run_dir: Path) -> dict[str, Any]:
    """Read a finished run's metrics.json, or fail the stage saying why it cannot be read."""
    path = run_dir / METRICS_FILE
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise StageFailed(
            f"`tfdock train` exited 0 but {path} cannot be read ({exc.strerror})"
        ) from None
    except ValueError as exc:
        raise StageFailed(f"`tfdock train` exited 0 but {path} is not JSON ({exc})") from None


def _numbers(metrics: dict[str, Any]) -> list[tuple[str, float]]:
    pairs = [("test loss", metrics["test"]["loss"]), ("test accuracy", metrics["test"]["accuracy"])]
    for number, epoch in enumerate(metrics["epochs"], start=1):
        pairs += [
            (f"epoch {number} loss", epoch["loss"]),
            (f"epoch {number} accuracy", epoch["accuracy"]),
        ]
    return pairs


def _weights(model_file: Path) -> list[Any]:
    if not model_file.is_file():
        raise StageFailed(f"`tfdock train` exited 0 but wrote no {model_file}")
    import keras

    try:
        return keras.saving.load_model(model_file).get_weights()
    except (OSError, ValueError) as exc:
        raise StageFailed(f"{model_file} cannot be loaded ({exc})") from None


def _train_on_one_gpu(run_dir: Path, epochs: int, *extra: str) -> subprocess.CompletedProcess:
    return _tfdock(
        "train", "--epochs", str(epochs), "--strategy", "one-device", "--run-dir", str(run_dir),
        *extra,
    )  # fmt: skip


def _tfdock(*arguments: str) -> subprocess.CompletedProcess:
    """Run one stage's `tfdock` command; one past STAGE_TIMEOUT_S is killed and says so."""
    command = [sys.executable, "-m", "tfdock", *arguments]
    try:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=STAGE_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        stopped = (
            f"`tfdock {arguments[0]}` did not finish within {STAGE_TIMEOUT_S} s and was stopped"
        )
        return subprocess.CompletedProcess(command, 124, "", stopped)


def _tail(done: subprocess.CompletedProcess) -> str:
    lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
    return lines[-1][:400]


def _stage(name: str, ok: bool, detail: str, **data: Any) -> dict[str, Any]:
    return {"name": name, "ok": ok, "detail": detail, **data}


if __name__ == "__main__":
    sys.exit(main())
