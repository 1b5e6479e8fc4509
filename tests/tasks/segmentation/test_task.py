"""The segmentation task's place in the suite: registry, recipes, budgets for `make demo` and the sweep."""

from __future__ import annotations

from tasks import api
from tasks.core.config import load_config
from tasks.demo import STAGES
from tasks.registry import TASKS, load_task


def test_registered_with_recipes_and_budgets() -> None:
    task = load_task("segmentation")
    assert "segmentation" in TASKS and "segmentation" in STAGES and task.headline == "miou" and task.higher_is_better
    assert set(task.recipes()) >= {task.default_recipe, "scenes_unet_resnet18_plain", "voc_deeplabv3plus_resnet50"}
    residual = load_config(task.config_class, task.recipe_path(None))
    plain = load_config(task.config_class, task.recipe_path("scenes_unet_resnet18_plain"))
    assert plain.backbone.shortcut == "none"
    plain.backbone.shortcut = None
    assert plain == residual  # the twin differs in the shortcuts only
    for budget in ("demo", "small"):
        recipe, overrides = api.train_overrides("segmentation", budget)
        cfg = load_config(task.config_class, task.recipe_path(recipe), overrides)
        assert 0 < cfg.trainer.max_steps <= residual.trainer.max_steps
