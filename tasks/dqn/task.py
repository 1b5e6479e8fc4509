"""The DQN plugin: a :class:`~tasks.core.task.Task` with its own acting loop.

Reinforcement learning has no dataset, loss or batch evaluation, so DQN is not a supervised
task. What it shares with the engine comes from ``tasks.core``: the run lifecycle (claimed run
folder, resolved config, atomic last/best checkpoints, resume, logs), device selection and the
backbone registry. What acting adds (env stepping, replay, target network) lives in this package.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.core.task import Budget, Task

from .config import DQNConfig

if TYPE_CHECKING:
    import torch
    from torch import nn

    from tasks.core.export import ExportSpec
    from tasks.core.lifecycle import RunFolder

    from .loop import DQNTrainer
    from .predict import DQNPredictor


class DQNTask(Task):
    name = "dqn"
    config_class = DQNConfig
    default_recipe = "cartpole_resmlp"
    headline = "return_mean"
    # CartPole-v1, residual MLP, 1 thread (the recipe's): greedy return 500.0 (20 episodes of best.pt) on
    # seeds 0, 1 and 2 after 30k steps, about 50 s of training each (2-core CPU); 20k steps gave 480.5,
    # 500.0, 500.0 (seed 0's worst episode 373). Evaluating every 1k steps keeps the best policy.
    budgets = {"demo": Budget({"trainer.max_steps": 30000, "trainer.eval_every": 1000}),
               "small": Budget({"trainer.max_steps": 30000, "trainer.eval_every": 3000,
                                "backbone.options": {"width": 64, "depth": 8}})}

    def check(self, cfg: DQNConfig) -> None:
        from .loop import check_config

        check_config(cfg)

    def build_model(self, cfg: DQNConfig, info: dict[str, Any]) -> nn.Module:
        from .model import build_model

        return build_model(cfg, info)

    def make_trainer(self, cfg: DQNConfig, run: RunFolder) -> DQNTrainer:
        from .loop import DQNTrainer

        return DQNTrainer(cfg, run)

    # deployment: rsuite export, tasks.Predictor
    def example_inputs(self, cfg: DQNConfig, info: dict[str, Any], batch: int = 1) -> list[tuple[torch.Tensor, ...]]:
        from .predict import example_inputs

        return example_inputs(cfg, info, batch)

    def export_spec(self, cfg: DQNConfig, model: nn.Module, info: dict[str, Any]) -> ExportSpec:
        from .predict import export_spec

        return export_spec(cfg, model, info)

    def make_predictor(self, cfg: DQNConfig, info: dict[str, Any], device: torch.device,
                       model: nn.Module | None = None, session: Any = None) -> DQNPredictor:
        from .predict import make_predictor

        return make_predictor(cfg, info, device, model, session)

    def final_metrics(self, cfg: DQNConfig, model: nn.Module, info: dict[str, Any], run_dir: Path | None,
                      device: torch.device) -> dict[str, Any]:
        """``eval.final_episodes`` greedy episodes, seeded apart from training and in-run evaluation."""
        from .evaluate import final_evaluation

        return final_evaluation(cfg, model, device)


TASK = DQNTask()
