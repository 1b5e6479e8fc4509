"""The segmentation plugin: index-mask data, SMP models on our backbones, mIoU."""

from __future__ import annotations

from tasks.core.supervised import SupervisedTask
from tasks.core.task import Budget

from . import data, evaluate, model
from .config import SegmentationConfig


class SegmentationTask(SupervisedTask):
    name = "segmentation"
    config_class = SegmentationConfig
    default_recipe = "scenes_unet_resnet18"
    headline = "miou"
    fixed_train_shapes = True  # training batches are crop_size squares
    sharded_eval = True  # evaluate() reduces its torchmetrics states and loss sum over processes
    budgets = {"demo": Budget({"trainer.max_steps": 150, "trainer.eval_every": 150, "data.num_train": 400,
                               "data.num_val": 100}),
               "small": Budget({"trainer.max_steps": 200, "trainer.eval_every": 200, "data.num_train": 400,
                                "data.num_val": 100})}

    build_data = staticmethod(data.build_data)
    build_model = staticmethod(model.build_model)
    loss = staticmethod(model.loss)
    evaluate = staticmethod(evaluate.evaluate)


TASK = SegmentationTask()
