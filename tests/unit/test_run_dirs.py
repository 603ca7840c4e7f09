"""Run directories: never shared by two runs, never taken from a user, resumed only when a run."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

from tfdock.train import new_run_dir


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


def _tfdock(*args):
    return subprocess.run(
        [sys.executable, "-m", "tfdock", *args], capture_output=True, text=True, timeout=120
    )


def _one_error_line(result):
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfdock: error: ")
    return lines[0]


def test_resume_of_a_folder_that_is_not_a_run_is_refused(tmp_path):
    """--resume on a user's folder says it is not a run and leaves the folder's files alone."""
    (tmp_path / "notes.txt").write_text("mine")
    line = _one_error_line(_tfdock("train", "--resume", str(tmp_path)))
    assert "is not a tfdock run directory" in line
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_resume_of_a_missing_folder_is_refused(tmp_path):
    """--resume on a path that does not exist is one sentence, and creates nothing."""
    line = _one_error_line(_tfdock("train", "--resume", str(tmp_path / "nope")))
    assert "is not a folder" in line
    assert not (tmp_path / "nope").exists()


def test_run_dir_that_holds_other_files_is_refused(tmp_path, mnist_dir):
    """--run-dir on a non-empty folder that is no run refuses to train there, touching nothing."""
    (tmp_path / "thesis.tex").write_text("precious")
    line = _one_error_line(_tfdock("train", "--data", str(mnist_dir), "--run-dir", str(tmp_path)))
    assert "is not empty and is not a tfdock run" in line
    assert [p.name for p in tmp_path.iterdir()] == ["thesis.tex"]


def test_resume_of_a_finished_run_says_there_is_nothing_to_do(tmp_path, mnist_dir):
    """--resume on a run that wrote metrics.json is refused and changes nothing."""
    (tmp_path / "config.json").write_text(json.dumps({"epochs": 1, "data": str(mnist_dir)}))
    (tmp_path / "metrics.json").write_text("{}")
    line = _one_error_line(_tfdock("train", "--resume", str(tmp_path)))
    assert "holds a finished run" in line
    assert (tmp_path / "metrics.json").read_text() == "{}"


def test_resume_with_a_different_epoch_count_is_refused(tmp_path):
    """A resumed run keeps its settings; asking for other ones is one sentence naming the flag."""
    (tmp_path / "config.json").write_text(json.dumps({"epochs": 3}))
    line = _one_error_line(_tfdock("train", "--resume", str(tmp_path), "--epochs", "7"))
    assert "--epochs 3" in line and "drop --epochs 7" in line
