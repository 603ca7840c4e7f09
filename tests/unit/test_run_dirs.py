"""Run directories: never shared by two runs, never taken from a user, resumed only when a run."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.child_output import wait_for_line
from tests.commands import one_error_line, tfdock
from tfdock.cli import _train_config, build_parser
from tfdock.errors import TfdockError
from tfdock.run_dir import LOCK_FILE, claim_run_dir, new_run_dir


def _make_run_dir(args):
    barrier_wait, output_dir = args
    barrier_wait()
    return str(new_run_dir(Path(output_dir)))


def test_runs_started_at_the_same_moment_get_separate_dirs(tmp_path):
    """Eight processes released by one barrier each get their own new run directory."""
    context = multiprocessing.get_context("fork")
    barrier = context.Manager().Barrier(8)
    with context.Pool(8) as pool:
        dirs = pool.map(_make_run_dir, [(barrier.wait, tmp_path)] * 8)
    assert len(set(dirs)) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(Path(d).name for d in dirs)


def test_resume_of_a_folder_that_is_not_a_run_is_refused(tmp_path):
    """--resume on a user's folder says it is not a run and leaves the folder's files alone."""
    (tmp_path / "notes.txt").write_text("mine")
    line = one_error_line(tfdock("train", "--resume", str(tmp_path)))
    assert "is not a tfdock run directory" in line
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_resume_of_a_missing_folder_is_refused(tmp_path):
    """--resume on a path that does not exist is one sentence, and creates nothing."""
    line = one_error_line(tfdock("train", "--resume", str(tmp_path / "nope")))
    assert "is not a folder" in line
    assert not (tmp_path / "nope").exists()


def test_run_dir_that_holds_other_files_is_refused(tmp_path, mnist_dir):
    """--run-dir on a non-empty folder that is no run refuses to train there, touching nothing."""
    (tmp_path / "thesis.tex").write_text("precious")
    line = one_error_line(tfdock("train", "--data", str(mnist_dir), "--run-dir", str(tmp_path)))
    assert "is not empty and is not a tfdock run" in line
    assert [p.name for p in tmp_path.iterdir()] == ["thesis.tex"]


def test_resume_of_a_finished_run_says_there_is_nothing_to_do(tmp_path, mnist_dir):
    """--resume on a run that wrote metrics.json is refused and changes nothing."""
    (tmp_path / "config.json").write_text(json.dumps({"epochs": 1, "data": str(mnist_dir)}))
    (tmp_path / "metrics.json").write_text("{}")
    line = one_error_line(tfdock("train", "--resume", str(tmp_path)))
    assert "holds a finished run" in line
    assert (tmp_path / "metrics.json").read_text() == "{}"


def test_resume_with_a_different_epoch_count_is_refused(tmp_path):
    """A resumed run keeps its settings; asking for other ones is one sentence naming the flag."""
    (tmp_path / "config.json").write_text(json.dumps({"epochs": 3}))
    line = one_error_line(tfdock("train", "--resume", str(tmp_path), "--epochs", "7"))
    assert "--epochs 3" in line and "drop --epochs 7" in line


def _saved_run(run_dir, **settings):
    """Make ``run_dir`` look like an unfinished run started with ``settings``."""
    run_dir.mkdir(exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(settings))
    return run_dir


@pytest.mark.parametrize(
    ("flags", "saved", "refusal"),
    [
        (["--epochs", "5"], "--epochs 3", "drop --epochs 5"),
        (["--batch-size", "32"], "--batch-size 16", "drop --batch-size 32"),
        (["--seed", "42"], "--seed 7", "drop --seed 42"),
        (["--limit", "60000"], "--limit 5000", "drop --limit 60000"),
        (["--deterministic"], "without --deterministic", "drop --deterministic"),
    ],
)
def test_resume_refuses_a_changed_setting_even_at_its_default_value(
    tmp_path, flags, saved, refusal
):
    """A flag given with --resume is never dropped silently, even when it equals the default."""
    run_dir = _saved_run(
        tmp_path / "run", epochs=3, batch_size=16, seed=7, limit=5000, deterministic=False
    )
    line = one_error_line(tfdock("train", "--resume", str(run_dir), *flags))
    assert f"{run_dir} was started with {saved}" in line or f"started {saved}" in line
    assert refusal in line
    assert [p.name for p in run_dir.iterdir()] == ["config.json"]


def test_resume_honours_the_flags_that_keep_the_math(tmp_path):
    """Given with --resume, the speed flags and the loop are used, even at their default values."""
    run_dir = _saved_run(
        tmp_path / "run",
        epochs=3,
        steps_per_execution=50,
        intra_op_threads=2,
        inter_op_threads=0,
        loop="fit",
    )
    args = build_parser().parse_args(
        [
            "train",
            "--resume",
            str(run_dir),
            "--epochs",
            "3",
            "--steps-per-execution",
            "100",
            "--intra-op-threads",
            "1",
            "--inter-op-threads",
            "1",
            "--loop",
            "auto",
        ]
    )
    config = _train_config(args)
    assert (config.epochs, config.steps_per_execution) == (3, 100)
    assert (config.intra_op_threads, config.inter_op_threads, config.loop) == (1, 1, "auto")
    unchanged = _train_config(build_parser().parse_args(["train", "--resume", str(run_dir)]))
    assert (unchanged.steps_per_execution, unchanged.loop) == (50, "fit"), "saved settings kept"


def test_resume_refuses_output_dir(tmp_path):
    """--output-dir cannot be honoured by a resume, which continues in place: refused."""
    run_dir = _saved_run(tmp_path / "run", epochs=3)
    line = one_error_line(
        tfdock("train", "--resume", str(run_dir), "--output-dir", str(tmp_path / "runs"))
    )
    assert "drop --output-dir" in line
    assert not (tmp_path / "runs").exists()


def test_resume_refuses_a_hand_edited_setting(tmp_path):
    """config.json is untrusted: a setting tfdock would refuse as a flag is refused from it."""
    run_dir = _saved_run(tmp_path / "run", epochs="three", batch_size=32)
    line = one_error_line(tfdock("train", "--resume", str(run_dir)))
    assert f"{run_dir / 'config.json'} was edited: --epochs must be a whole number" in line


def test_resume_with_other_data_is_refused(tmp_path, mnist_dir, mnist, mnist_npz):
    """The data's sha256 is part of a run: resuming on other data (here an npz) is refused."""
    run_dir = _saved_run(
        tmp_path / "run",
        epochs=1,
        data=str(mnist_dir),
        data_source=str(mnist_dir),
        data_sha256=mnist.sha256,
    )
    before = (run_dir / "config.json").read_bytes()
    line = one_error_line(tfdock("train", "--resume", str(run_dir), "--data", str(mnist_npz)))
    assert f"{run_dir} was trained on other data ({mnist_dir}, sha256 {mnist.sha256[:12]}" in line
    assert str(mnist_npz) in line
    assert [p.name for p in run_dir.iterdir()] == ["config.json"]
    assert (run_dir / "config.json").read_bytes() == before


def _record(mnist_dir, **settings):
    """The config.json record of a run on the real MNIST with the default settings."""
    from tfdock.data import load_mnist
    from tfdock.train import TrainConfig, run_record

    return run_record(TrainConfig(data=str(mnist_dir), **settings), load_mnist(mnist_dir))


def test_a_run_dir_has_one_writer_at_a_time(tmp_path, mnist_dir):
    """While a run holds its folder, a second run into it is refused and touches nothing."""
    run_dir = tmp_path / "run"
    record = _record(mnist_dir)
    with claim_run_dir(run_dir, record, writer=True):
        (run_dir / "config.json").write_text(json.dumps(record))
        before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
        line = one_error_line(tfdock("train", "--data", str(mnist_dir), "--run-dir", str(run_dir)))
        assert line == (
            f"tfdock: error: another tfdock run (pid {os.getpid()}) is writing {run_dir}; wait "
            "for it to end, or train into another folder."
        )
        assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
        line = one_error_line(tfdock("train", "--resume", str(run_dir)))
        assert "another tfdock run" in line
        # A multi-worker task that is not the chief only reads: the lock is not its business.
        with claim_run_dir(run_dir, record, writer=False):
            pass


def test_a_dead_writer_leaves_the_folder_free(tmp_path, mnist_dir):
    """The lock dies with its process (the kernel releases it): a killed run never blocks."""
    run_dir = tmp_path / "run"
    record = _record(mnist_dir)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import json, sys, time; from pathlib import Path; "
            "from tfdock.run_dir import claim_run_dir\n"
            "with claim_run_dir(Path(sys.argv[1]), json.loads(sys.argv[2]), writer=True):\n"
            "    print('held', flush=True); time.sleep(600)",
            str(run_dir),
            json.dumps(record),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_line(holder, "^held$", timeout=120)
        refused = f"another tfdock run \\(pid {holder.pid}\\)"
        with (
            pytest.raises(TfdockError, match=refused),
            claim_run_dir(run_dir, record, writer=True),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
    with claim_run_dir(run_dir, record, writer=True):
        assert (run_dir / LOCK_FILE).read_text() == f"{os.getpid()}\n", (
            "the lock names its new holder"
        )


def test_a_finished_run_keeps_no_lock_file(tmp_path, mnist_dir):
    """The writer removes its lock file once metrics.json marks the run finished."""
    run_dir = tmp_path / "run"
    with claim_run_dir(run_dir, _record(mnist_dir), writer=True):
        (run_dir / "metrics.json").write_text("{}")
    assert [p.name for p in run_dir.iterdir()] == ["metrics.json"]


def test_a_run_dir_holding_only_a_stale_lock_file_is_empty(tmp_path, mnist_dir):
    """A lock file left by a run killed before it wrote config.json does not make the folder taken.

    The new run holds the folder, and a run started after it is told this run's pid, not the dead one's.
    """
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / LOCK_FILE).write_text("12345\n")
    record = _record(mnist_dir)
    with claim_run_dir(run_dir, record, writer=True):
        assert (run_dir / LOCK_FILE).read_text() == f"{os.getpid()}\n", "the dead run's pid is gone"
        held = rf"^another tfdock run \(pid {os.getpid()}\) is writing {re.escape(str(run_dir))}; "
        with pytest.raises(TfdockError, match=held), claim_run_dir(run_dir, record, writer=True):
            pass
    assert [p.name for p in run_dir.iterdir()] == [LOCK_FILE]
