"""The dynamics plugin: learn a dynamical system from trajectories (residual, plain or Neural ODE steps)."""

from __future__ import annotations

from tasks.core.supervised import SupervisedTask
from tasks.core.task import Budget

from . import data, evaluate, model
from .config import DynamicsConfig


class DynamicsTask(SupervisedTask):
    name = "dynamics"
    config_class = DynamicsConfig
    default_recipe = "pendulum_resmlp"
    headline = "rollout_rmse"
    higher_is_better = False
    image_model = False
    modality = "vector"
    fixed_train_shapes = True
    # the default recipe (2000 steps) fits both budgets on 2 CPU cores; the demo trains a quarter of it
    budgets = {"demo": Budget(overrides={"trainer.max_steps": 600, "trainer.eval_every": 300}),
               "small": Budget()}

    def check(self, cfg: DynamicsConfig) -> None:
        super().check(cfg)
        model.check_settings(cfg)
        data.check_settings(cfg)

    def batch_size(self, batch: tuple) -> int:
        return len(batch[1])

    build_data = staticmethod(data.build_data)
    build_model = staticmethod(model.build_model)
    loss = staticmethod(model.loss)
    evaluate = staticmethod(evaluate.evaluate)


TASK = DynamicsTask()
