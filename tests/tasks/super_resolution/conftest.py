"""Fixtures for the super-resolution tests: a seconds-long run on the embedded photos."""

import pytest


@pytest.fixture
def tiny_sr(tmp_path) -> list[str]:
    """Overrides for a few-step x2 run: edsr_tiny, 3 training photos, 2 small validation crops."""
    return ["data.limit_train=3", "data.limit_val=2", "data.val_crop=64", "data.patch_size=48", "data.batch_size=4",
            "data.patches_per_image=8", "backbone.name=edsr_tiny", "trainer.max_steps=6", "trainer.eval_every=3",
            "trainer.log_every=1", "trainer.progress=false", f"trainer.runs_dir={tmp_path / 'runs'}",
            "trainer.run_name=t", "trainer.threads=1"]
