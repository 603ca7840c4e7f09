"""Run the CLI as ``python -m tfdock``."""

import sys

from tfdock.cli import main

sys.exit(main())
