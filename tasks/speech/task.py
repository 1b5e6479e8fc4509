"""The speech plugin: wires config, data, model and metrics into the engine (length-bucketed batches)."""

from __future__ import annotations

from typing import Any

from tasks.core.supervised import SupervisedTask
from tasks.core.task import Budget

from . import data, evaluate, model, predict
from .bucketing import LengthBucketSampler
from .config import SpeechConfig


class SpeechTask(SupervisedTask):
    name = "speech"
    config_class = SpeechConfig
    default_recipe = "espeak_quartznet5x5"
    headline = "wer"
    higher_is_better = False
    image_model = False
    modality = "sequence"
    compile_dynamic = True  # the frame axis varies from batch to batch (in steps of data.PAD_FRAMES)
    # The default recipe trains for about 15 CPU-minutes; demo/small train the same net for 350
    # steps without augmentation (about 3 minutes on 2 cores: with so few updates, SpecAugment
    # and speed perturbation slow learning more than they help generalisation).
    # the demo stops at 300 steps (`make demo`, seven tasks, within 10 minutes); the sweep's "small" at 350
    budgets = {name: Budget({"trainer.max_steps": steps, "trainer.eval_every": steps, "data.spec_augment": False,
                             "data.speed_perturb": [1.0]}) for name, steps in (("demo", 300), ("small", 350))}

    build_data = staticmethod(data.build_data)
    build_model = staticmethod(model.build_model)
    loss = staticmethod(model.loss)
    evaluate = staticmethod(evaluate.evaluate)
    # deployment: rsuite export, tasks.Predictor
    example_inputs = staticmethod(predict.example_inputs)
    export_spec = staticmethod(predict.export_spec)
    make_predictor = staticmethod(predict.make_predictor)

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
