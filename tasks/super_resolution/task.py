"""The super-resolution plugin: wires config, data, model and metrics into the engine."""

from __future__ import annotations

from tasks.core.supervised import SupervisedTask
from tasks.core.task import Budget

from . import data, evaluate, model, predict
from .config import SuperResolutionConfig


class SuperResolutionTask(SupervisedTask):
    name = "super_resolution"
    config_class = SuperResolutionConfig
    default_recipe = "skimage_edsr_baseline_x2"
    headline = "psnr_y"
    fixed_train_shapes = True  # training batches are patch_size squares (validation images vary: no autotuning)
    # edsr_tiny + bicubic global residual: beats bicubic within 2 CPU minutes (see the recipe)
    budgets = {"demo": Budget(recipe="skimage_edsr_tiny_x2"), "small": Budget(recipe="skimage_edsr_tiny_x2")}

    def check(self, cfg: SuperResolutionConfig) -> None:
        super().check(cfg)
        model.check_settings(cfg)

    build_data = staticmethod(data.build_data)
    build_model = staticmethod(model.build_model)
    loss = staticmethod(model.loss)
    evaluate = staticmethod(evaluate.evaluate)
    # deployment: rsuite export, tasks.Predictor
    example_inputs = staticmethod(predict.example_inputs)
    export_spec = staticmethod(predict.export_spec)
    make_predictor = staticmethod(predict.make_predictor)


TASK = SuperResolutionTask()
