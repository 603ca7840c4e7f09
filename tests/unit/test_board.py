"""`tfdock tensorboard` refuses, in one sentence and before loading TensorBoard, what cannot work."""

from __future__ import annotations

import re
import socket

from tests.commands import make, one_error_line, tfdock


def test_a_folder_without_logs_is_one_sentence_naming_make_train(repo_root, tmp_path):
    """No run has logged yet: `make tensorboard` says to train first, or to point RUNS elsewhere."""
    result = make(repo_root, "--no-print-directory", "tensorboard", f"RUNS={tmp_path}")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    (line,) = [
        line for line in result.stderr.splitlines() if not re.match(r"make(\[\d+\])?: ", line)
    ]
    assert line == (
        f"tfdock: error: {tmp_path} holds no TensorBoard logs yet: train a run first "
        "(`make train`), or point --logdir (RUNS for make) at the folder that holds your runs."
    )


def test_a_busy_port_is_one_sentence_naming_the_next_one(tmp_path):
    """A port already taken on 127.0.0.1 names the program and the next port to try."""
    run = tmp_path / "runs" / "20260101-000000-abcdef" / "tensorboard" / "train"
    run.mkdir(parents=True)
    (run / "events.out.tfevents.1.host.1.v2").write_bytes(b"")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = tfdock("tensorboard", "--logdir", str(tmp_path / "runs"), "--port", str(port))
    assert result.returncode != 0
    assert one_error_line(result) == (
        f"tfdock: error: port {port} on 127.0.0.1 is already in use (another TensorBoard?): "
        f"stop that program or choose another port, e.g. `make tensorboard TB_PORT={port + 1}`."
    )
