"""The speech plugin: wires config, data, model and metrics into the engine (length-bucketed batches)."""

from __future__ import annotations

from typing import Any

from tasks.core.supervised import SupervisedTask
from tasks.core.task import Budget

from . import data, evaluate, model
from .bucketing import LengthBucketSampler
from .config import SpeechConfig


class SpeechTask(SupervisedTask):
    name = "speech"
    config_class = SpeechConfig
    default_recipe = "espeak_quartznet5x5"
    headline = "wer"
    higher_is_better = False
    image_model = False
    # the default recipe is already CPU-sized: 500 steps of batch 16, about 2 minutes
    budgets = {"demo": Budget(), "small": Budget()}

    build_data = staticmethod(data.build_data)
    build_model = staticmethod(model.build_model)
    loss = staticmethod(model.loss)
    evaluate = staticmethod(evaluate.evaluate)

    def batch_sampler(self, cfg: SpeechConfig, dataset: Any, batch_size: int, rank: int,
                      world_size: int) -> LengthBucketSampler | None:
        """Batches of similar duration (less padding), unless ``data.bucket=false``."""
        durations = getattr(dataset, "durations", None)
        if not cfg.data.bucket or durations is None:
            return None
        return LengthBucketSampler(durations, batch_size, seed=cfg.seed, rank=rank, world_size=world_size)

    def batch_size(self, batch: Any) -> int:
        return len(batch[1])


TASK = SpeechTask()
