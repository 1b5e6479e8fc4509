"""The detection plugin: COCO data, torchvision detectors on our backbones, COCO mAP."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tasks.core.loader import GroupedBatchSampler
from tasks.core.supervised import SupervisedTask
from tasks.core.task import Budget

from . import data, evaluate, model, predict
from .config import DetectionConfig


class DetectionTask(SupervisedTask):
    name = "detection"
    config_class = DetectionConfig
    default_recipe = "scenes_fasterrcnn_resnet18"
    headline = "map_50"
    autocast_in_model = True  # backbone + FPN only (model.MixedPrecisionFPN): box arithmetic stays fp32
    sharded_eval = True  # evaluate gathers every rank's detections for one COCO evaluation
    compile_scope = "backbone+FPN"
    # CPU budgets: the RetinaNet recipe (GroupNorm head) learns far more per CPU-second than Faster R-CNN
    # here (mAP@50 0.22 after 600 steps / 4 min vs 0.05 after 200 steps / 3 min)
    # The demo stops at 350 steps so that `make demo` (seven tasks) stays within 10 minutes.
    budgets = {name: Budget({"model.arch": "retinanet", "optim.lr": 0.01, "trainer.max_steps": steps,
                             "trainer.eval_every": steps, "data.num_train": 800})
               for name, steps in (("demo", 350), ("small", 600))}

    def check(self, cfg: DetectionConfig) -> None:
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

    def batch_sampler(self, cfg: DetectionConfig, dataset: Any, batch_size: int, rank: int,
                      world_size: int) -> GroupedBatchSampler | None:
        """Aspect-ratio grouped batches (less padding on COCO); ``data.aspect_ratio_group_factor=-1`` is off."""
        factor = cfg.data.aspect_ratio_group_factor
        if factor < 0:
            return None
        groups = data.aspect_ratio_groups(dataset.aspect_ratios, factor)
        return GroupedBatchSampler(groups, batch_size, seed=cfg.seed, rank=rank, world_size=world_size)

    def batch_size(self, batch: Any) -> int:
        return len(batch[0])

    def to_channels_last(self, model: nn.Module) -> nn.Module:
        """Backbone and FPN in channels-last; the heads and RoIAlign get standard (NCHW) maps."""
        model.backbone.to(memory_format=torch.channels_last)
        model.backbone.channels_last = True
        return model

    def compile(self, model: nn.Module, train_model: nn.Module, cfg: DetectionConfig) -> nn.Module:
        """Compile backbone + FPN in place (state-dict keys unchanged). The rest takes lists of images of
        varying size and runs data-dependent NMS: compiled, it would break into graphs and recompile until
        the limit, then silently run eager."""
        model.backbone.resolve(next(model.parameters()).device)
        model.backbone.compile(dynamic=self.compile_dynamic)
        return train_model


TASK = DetectionTask()
