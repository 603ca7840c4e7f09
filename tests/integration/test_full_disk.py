"""A full disk ends a run in one sentence, and the run resumes once there is room again.

The disk is a small tmpfs, filled to the byte with a ballast file, so each
write can be made to fail where a real disk would fill: the first epoch's
backup, model.keras, TensorBoard's event file. metrics.json, the mark of a
finished run, is written last, so every one of these leaves a run that resumes.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.commands import tfdock
from tests.run_folders import FINISHED_RUN
from tfdock.errors import TfdockError

MIB = 1 << 20


def _leave_free(disk, free_bytes):
    """Fill ``disk`` with a ballast file so that ``free_bytes`` (page-rounded) stay free."""
    ballast = disk / "ballast"
    ballast.unlink(missing_ok=True)
    stat = os.statvfs(disk)
    with open(ballast, "wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, stat.f_bavail * stat.f_frsize - free_bytes)


def _fails_with(result, sentence):
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "HDF5" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines() == [f"tfdock: error: {sentence}"]


@pytest.mark.slow
def test_full_disk_at_every_write_ends_in_one_sentence_and_resumes(small_disk, mnist_dir):
    """Each failed write says what to do; freeing space and resuming finishes the run."""
    run_dir = small_disk / "run"
    start = [
        "--data",
        str(mnist_dir),
        "--epochs",
        "1",
        "--limit",
        "2000",
        "--run-dir",
        str(run_dir),
    ]
    resume = ["--resume", str(run_dir)]
    no_space = f"no space left on the disk holding {run_dir}; free some and "
    then_resume = f"resume with `tfdock train --resume {run_dir}`."

    _leave_free(small_disk, 0)  # not even config.json fits: there is nothing to resume
    _fails_with(tfdock("train", *start), no_space + "start the run again.")
    assert not (run_dir / "config.json").exists()

    _leave_free(small_disk, 256 * 1024)  # config.json fits; the epoch's backup (1.2 MB) does not
    _fails_with(tfdock("train", *start), no_space + then_resume)
    assert (run_dir / "config.json").is_file()
    assert not (run_dir / "backup" / "state.json").exists()

    _leave_free(small_disk, int(1.6 * MIB))  # the backup fits; model.keras (1.2 MB) does not
    _fails_with(tfdock("train", *resume), no_space + then_resume)
    state = json.loads((run_dir / "backup" / "state.json").read_text())
    assert state["completed_epochs"] == 1
    assert not (run_dir / "model.keras").exists()

    (small_disk / "ballast").unlink()
    (run_dir / "curves.png").mkdir()  # curves.png cannot be written: a failure after model.keras
    _fails_with(
        tfdock("train", *resume),
        f"{run_dir / 'curves.png'}: is a directory; fix that and {then_resume}",
    )
    assert (run_dir / "model.keras").is_file()
    assert not (run_dir / "metrics.json").exists(), "metrics.json is written last"

    (run_dir / "curves.png").rmdir()
    finished = tfdock("train", *resume)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert "resuming after epoch 1 of 1" in finished.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1]
    assert metrics["epochs"][0] == state["epochs"][0]
    assert sorted(p.name for p in run_dir.iterdir()) == FINISHED_RUN
    assert not list(run_dir.rglob(".*.tmp*")), "no temporary files are left behind"


def test_full_disk_under_tensorboard_is_one_sentence(small_disk):
    """TensorBoard's writer fails as a TensorFlow error, not an OSError: the same sentence."""
    import tensorflow as tf

    from tfdock.train import _failed_writes_explained

    run_dir = small_disk / "run"
    (run_dir / "tensorboard").mkdir(parents=True)
    (run_dir / "config.json").write_text("{}")
    _leave_free(small_disk, 0)
    with (
        pytest.raises(TfdockError) as caught,
        _failed_writes_explained(run_dir, cluster=None),
    ):
        tf.summary.create_file_writer(str(run_dir / "tensorboard")).flush()
    assert str(caught.value) == (
        f"no space left on the disk holding {run_dir}; free some and resume with "
        f"`tfdock train --resume {run_dir}`."
    )
