"""The detection plugin: COCO data, torchvision detectors on our backbones, COCO mAP."""

from __future__ import annotations

from typing import Any

from tasks.core.loader import GroupedBatchSampler
from tasks.core.supervised import SupervisedTask
from tasks.core.task import Budget

from . import data, evaluate, model
from .config import DetectionConfig


class DetectionTask(SupervisedTask):
    name = "detection"
    config_class = DetectionConfig
    default_recipe = "scenes_fasterrcnn_resnet18"
    headline = "map_50"
    # CPU budgets: the RetinaNet recipe (GroupNorm head) learns far more per CPU-second than Faster R-CNN
    # here (mAP@50 0.22 after 600 steps / 4 min vs 0.05 after 200 steps / 3 min)
    budgets = {name: Budget({"model.arch": "retinanet", "optim.lr": 0.01, "trainer.max_steps": 600,
                             "trainer.eval_every": 600, "data.num_train": 800}) for name in ("demo", "small")}

    build_data = staticmethod(data.build_data)
    build_model = staticmethod(model.build_model)
    loss = staticmethod(model.loss)
    evaluate = staticmethod(evaluate.evaluate)

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


TASK = DetectionTask()
