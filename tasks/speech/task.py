"""The speech plugin: wires config, data, model and metrics into the engine (length-bucketed batches)."""

from __future__ import annotations

from typing import Any

from tasks.core.task import SupervisedTask

from . import data, evaluate, model
from .bucketing import LengthBucketSampler
from .config import SpeechConfig


class SpeechTask(SupervisedTask):
    name = "speech"
    config_class = SpeechConfig
    default_recipe = "espeak_quartznet5x5.yaml"
    headline = "wer"
    higher_is_better = False
    image_model = False
    # the default recipe is already CPU-sized: 500 steps of batch 16, about 2 minutes
    budgets = {"demo": [], "small": []}

    build_model = staticmethod(model.build_model)
    loss = staticmethod(model.loss)
    evaluate = staticmethod(evaluate.evaluate)

    @staticmethod
    def build_data(cfg: SpeechConfig, split: str = "train") -> data.DataBundle:
        bundle = data.build_data(cfg, split)
        # decoding settings travel with the checkpoint, so `rsuite evaluate` decodes as training did
        m = cfg.model
        bundle.info["decoding"] = {"decoder": m.decoder, "beam_size": m.beam_size, "lexicon": m.lexicon,
                                   "kenlm": m.kenlm, "lm_weight": m.lm_weight, "word_score": m.word_score}
        return bundle

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
