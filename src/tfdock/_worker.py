"""A worker of `tfdock multiworker`: tie its life to the launcher's, then run `tfdock train`."""

import os
import sys

from tfdock.cli import main
from tfdock.errors import TfdockError
from tfdock.launch import LAUNCHER_PID_ENV, die_with_launcher

if __name__ == "__main__":
    try:
        die_with_launcher(int(os.environ[LAUNCHER_PID_ENV]))
    except TfdockError as exc:
        print(f"tfdock: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    sys.exit(main(sys.argv[1:]))
