"""The segmentation plugin: index-mask data, SMP models on our backbones, mIoU."""

from __future__ import annotations

from tasks.core.supervised import SupervisedTask
from tasks.core.task import Budget

from . import data, evaluate, model, predict
from .config import SegmentationConfig


class SegmentationTask(SupervisedTask):
    name = "segmentation"
    config_class = SegmentationConfig
    default_recipe = "scenes_fpn_resnet34"
    headline = "miou"
    fixed_train_shapes = True  # training batches are crop_size squares
    sharded_eval = True  # evaluate() reduces its torchmetrics states and loss sum over processes
    # CPU budgets on the default recipe (FPN on resnet34): the demo about 1.5 minutes on 2 cores, the
    # sweep's residual/plain pair about 2.5 minutes a run
    budgets = {"demo": Budget({"trainer.max_steps": 80, "trainer.eval_every": 80, "data.num_train": 400,
                               "data.num_val": 100}),
               "small": Budget({"trainer.max_steps": 250, "trainer.eval_every": 250})}

    def check(self, cfg: SegmentationConfig) -> None:
        """Backbone, architecture, output stride and loss are valid before any data is generated."""
        super().check(cfg)
        model.input_multiple(cfg.model)
        model.build_loss(cfg.model.loss, cfg.data.ignore_index)

    build_data = staticmethod(data.build_data)
    build_model = staticmethod(model.build_model)
    loss = staticmethod(model.loss)
    evaluate = staticmethod(evaluate.evaluate)
    # deployment: rsuite export, tasks.Predictor
    example_inputs = staticmethod(predict.example_inputs)
    export_spec = staticmethod(predict.export_spec)
    make_predictor = staticmethod(predict.make_predictor)


TASK = SegmentationTask()
