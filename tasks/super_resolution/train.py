"""``python -m tasks.super_resolution.train [--config PATH] [key=value ...]``."""

from tasks.core.cli_errors import run_cli
from tasks.core.run import train_main

from .task import TASK

if __name__ == "__main__":
    run_cli(lambda: train_main(TASK))
