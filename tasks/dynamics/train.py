"""``python -m tasks.dynamics.train [--config RECIPE] [--resume RUN_DIR] [key=value ...]``."""

from tasks.cli import train_entry

if __name__ == "__main__":
    train_entry("dynamics")
