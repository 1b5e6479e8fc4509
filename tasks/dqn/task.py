"""The DQN plugin: reinforcement learning has its own loop, so ``train``/``evaluate_run`` are overridden.

The shared pieces still come from ``tasks.core``: argument parsing, config and run folder
(:func:`tasks.core.run.prepare`), checkpoints, logging and device selection.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from tasks.core.task import SupervisedTask

from .config import DQNConfig


class DQNTask(SupervisedTask):
    name = "dqn"
    config_class = DQNConfig
    default_recipe = "cartpole_resmlp.yaml"
    headline = "return_mean"
    image_model = False
    # CartPole-v1, residual MLP: solves it (greedy return 500) in 20k environment steps, about a minute
    budgets = {"demo": ["trainer.max_steps=20000", "trainer.eval_every=2000"],
               "small": ["trainer.max_steps=30000", "trainer.eval_every=3000",
                         "backbone.options={width: 64, depth: 8}"]}

    def build_model(self, cfg: Any, info: dict[str, Any]) -> Any:
        from .model import build_model

        return build_model(cfg, info)

    def train(self, argv: list[str], stop_at: int | None = None) -> Path:
        """Train an agent; prints the run folder as the last stdout line and returns it.

        ``stop_at`` ends the run early at that env step, as a kill would (tests of resume).
        """
        from tasks.core.run import prepare, write_run_files

        from .loop import DQNTrainer

        cfg, run_dir = prepare(self, argv)
        fresh = not run_dir.exists()
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            trainer = DQNTrainer(cfg, run_dir)
        except Exception:
            if fresh:  # a bad env id or setting leaves no empty run folder behind
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        write_run_files(run_dir, cfg, trainer.info)
        if cfg.trainer.resume and trainer.resume():
            print(f"resumed {run_dir} at step {trainer.step}", file=sys.stderr)
        trainer.fit(stop_at=stop_at)
        print(run_dir)
        return run_dir

    def evaluate_run(self, run_dir: Path, device: str = "auto") -> dict[str, Any]:
        """Greedy episodes with the run's best network; writes ``eval.json``."""
        from .evaluate import evaluate_run

        return evaluate_run(Path(run_dir), device)


TASK = DQNTask()
