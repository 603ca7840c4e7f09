"""Start TensorBoard over a folder of runs, on a port checked first, with its URL printed.

Every `tfdock train` run writes TensorBoard logs into its run folder (run_dir.py); this
serves all the runs under one folder, so runs can be compared side by side.
"""

from __future__ import annotations

from pathlib import Path

from tfdock.errors import TfdockError
from tfdock.lab import check_port_free, shown_host

DEFAULT_PORT = 6006
DEFAULT_IP = "127.0.0.1"
# What TensorFlow's summary writer names each log file.
EVENT_FILES = "events.out.tfevents.*"


def start_tensorboard(logdir: Path, ip: str, port: int, url_port: int | None) -> int:
    """Check the logs and the port, print the URL, and serve until Ctrl-C or SIGTERM."""
    if not logdir.is_dir() or not any(logdir.rglob(EVENT_FILES)):
        raise TfdockError(
            f"{logdir} holds no TensorBoard logs yet: train a run first (`make train`), or "
            "point --logdir (RUNS for make) at the folder that holds your runs."
        )
    check_port_free(ip, port, program="TensorBoard", retry="make tensorboard TB_PORT")
    print(f"tfdock: TensorBoard is starting; open http://{shown_host(ip)}:{url_port or port}/")
    print(f"tfdock: it shows every run under {logdir} (Ctrl-C stops it)", flush=True)
    from tensorboard import default, program

    class QuietServer(program.WerkzeugServer):
        def print_serving_message(self) -> None:
            """Say nothing: in a container its own URL (0.0.0.0:6006) is not the one to open."""

    board = program.TensorBoard(plugins=default.get_plugins(), server_class=QuietServer)
    board.configure(logdir=str(logdir), host=ip, port=port)
    code = board.main()  # returns when Ctrl-C or SIGTERM stops the server
    print("tfdock: TensorBoard stopped.", flush=True)
    return code
