"""The super-resolution plugin: wires config, data, model and metrics into the engine."""

from __future__ import annotations

from tasks.core.task import CONFIGS, SupervisedTask

from . import data, evaluate, model
from .config import SuperResolutionConfig


class SuperResolutionTask(SupervisedTask):
    name = "super_resolution"
    config_class = SuperResolutionConfig
    default_recipe = "skimage_edsr_baseline_x2.yaml"
    headline = "psnr_y"
    # edsr_tiny + bicubic global residual: beats bicubic within 2 CPU minutes (see the recipe)
    budgets = {"demo": ["--config", str(CONFIGS / "super_resolution" / "skimage_edsr_tiny_x2.yaml")],
               "small": ["--config", str(CONFIGS / "super_resolution" / "skimage_edsr_tiny_x2.yaml")]}

    build_data = staticmethod(data.build_data)
    build_model = staticmethod(model.build_model)
    loss = staticmethod(model.loss)
    evaluate = staticmethod(evaluate.evaluate)


TASK = SuperResolutionTask()
