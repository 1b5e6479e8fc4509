"""The classification plugin: wires config, data, model and metrics into the engine."""

from __future__ import annotations

from tasks.core.supervised import SupervisedTask
from tasks.core.task import Budget

from . import data, evaluate, model
from .config import ClassificationConfig


class ClassificationTask(SupervisedTask):
    name = "classification"
    config_class = ClassificationConfig
    default_recipe = "fashion_mnist_resnet20"
    headline = "top1"
    budgets = {"demo": Budget(),
               "small": Budget({"backbone.name": "resnet56", "trainer.max_steps": 300, "trainer.eval_every": 150})}

    build_data = staticmethod(data.build_data)
    build_model = staticmethod(model.build_model)
    loss = staticmethod(model.loss)
    evaluate = staticmethod(evaluate.evaluate)


TASK = ClassificationTask()
