"""``python -m tasks.dqn.train [--config PATH] [--resume RUN_DIR] [key=value ...]``."""

import sys

from tasks.core.cli_errors import run_cli

from .task import TASK

if __name__ == "__main__":
    run_cli(lambda: TASK.train(sys.argv[1:]))
