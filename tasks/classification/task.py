"""The classification plugin: wires config, data, model and metrics into the engine."""

from __future__ import annotations

from tasks.core.supervised import SupervisedTask
from tasks.core.task import Budget

from . import data, evaluate, model, predict
from .config import ClassificationConfig


class ClassificationTask(SupervisedTask):
    name = "classification"
    config_class = ClassificationConfig
    default_recipe = "fashion_mnist_resnet20"
    headline = "top1"
    fixed_train_shapes = fixed_eval_shapes = True  # one image size: cuDNN autotunes once
    sharded_eval = True  # evaluate's metrics sum over processes
    # the demo: 300 steps (87% top-1), one evaluation at the end, so `make demo` stays within 10 minutes
    budgets = {"demo": Budget({"trainer.max_steps": 300, "trainer.eval_every": 300}),
               "small": Budget({"backbone.name": "resnet56", "trainer.max_steps": 300, "trainer.eval_every": 150})}

    build_data = staticmethod(data.build_data)
    build_model = staticmethod(model.build_model)
    loss = staticmethod(model.loss)
    evaluate = staticmethod(evaluate.evaluate)
    # deployment: rsuite export, tasks.Predictor
    example_inputs = staticmethod(predict.example_inputs)
    export_spec = staticmethod(predict.export_spec)
    make_predictor = staticmethod(predict.make_predictor)


TASK = ClassificationTask()
