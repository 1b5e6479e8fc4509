"""A tiny synthesised corpus and a tiny trained run, shared by the speech tests."""

import os
from pathlib import Path

import pytest

TINY_MODEL = ["backbone.name=quartznet5x5", "backbone.options.width=0.125", "backbone.options.kernel_scale=0.2",
              "backbone.options.repeat=1"]


@pytest.fixture(scope="session")
def speech_cache(tmp_path_factory) -> Path:
    """``RSUITE_CACHE`` pointed at a fresh folder for the whole session (the corpus is made once)."""
    path = tmp_path_factory.mktemp("cache")
    old = os.environ.get("RSUITE_CACHE")
    os.environ["RSUITE_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("RSUITE_CACHE", None)
    else:
        os.environ["RSUITE_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_speech(speech_cache, tmp_path_factory) -> list[str]:
    """Overrides for a seconds-long run on 48 + 12 synthesised utterances."""
    runs = tmp_path_factory.mktemp("runs")
    return ["data.num_train=48", "data.num_val=12", "data.batch_size=8", *TINY_MODEL, "optim.lr=3e-3",
            "trainer.max_steps=6", "trainer.eval_every=6", "trainer.log_every=1", "trainer.progress=false",
            f"trainer.runs_dir={runs}", "trainer.threads=1"]


@pytest.fixture(scope="session")
def trained_run(tiny_speech) -> Path:
    import tasks

    return tasks.train("speech", [*tiny_speech, "trainer.run_name=shared"]).dir
