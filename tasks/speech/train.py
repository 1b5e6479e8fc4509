"""``python -m tasks.speech.train [--config PATH] [key=value ...]``."""

from tasks.core.cli_errors import run_cli

from .task import TASK

if __name__ == "__main__":
    run_cli(lambda: TASK.train(__import__("sys").argv[1:]))
