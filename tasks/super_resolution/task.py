"""The super-resolution plugin: wires config, data, model and metrics into the engine."""

from __future__ import annotations

from tasks.core.supervised import SupervisedTask
from tasks.core.task import Budget

from . import data, evaluate, model
from .config import SuperResolutionConfig


class SuperResolutionTask(SupervisedTask):
    name = "super_resolution"
    config_class = SuperResolutionConfig
    default_recipe = "skimage_edsr_baseline_x2"
    headline = "psnr_y"
    # edsr_tiny + bicubic global residual: beats bicubic within 2 CPU minutes (see the recipe)
    budgets = {"demo": Budget(recipe="skimage_edsr_tiny_x2"), "small": Budget(recipe="skimage_edsr_tiny_x2")}

    build_data = staticmethod(data.build_data)
    build_model = staticmethod(model.build_model)
    loss = staticmethod(model.loss)
    evaluate = staticmethod(evaluate.evaluate)


TASK = SuperResolutionTask()
