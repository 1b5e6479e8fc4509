"""The segmentation task's place in the suite: registry, recipes, budgets for `make demo` and the sweep."""

from __future__ import annotations

from tasks import api
from tasks.core.config import load_config
from tasks.demo import STAGES
from tasks.registry import TASKS, load_task


def test_registered_with_recipes_and_budgets() -> None:
    task = load_task("segmentation")
    assert "segmentation" in TASKS and "segmentation" in STAGES and task.headline == "miou" and task.higher_is_better
    assert set(task.recipes()) >= {task.default_recipe, "scenes_fpn_resnet34_plain", "voc_deeplabv3plus_resnet50"}
    residual = load_config(task.config_class, task.recipe_path(None))
    plain = load_config(task.config_class, task.recipe_path("scenes_fpn_resnet34_plain"))
    assert plain.backbone.shortcut == "none"
    plain.backbone.shortcut = None
    assert plain == residual  # the twin differs in the shortcuts only
    for budget in ("demo", "small"):
        recipe, overrides = api.train_overrides("segmentation", budget)
        cfg = load_config(task.config_class, task.recipe_path(recipe), overrides)
        assert 0 < cfg.trainer.max_steps <= residual.trainer.max_steps


def test_bad_settings_fail_before_any_data_is_made(rsuite, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RSUITE_CACHE", str(tmp_path / "cache"))
    for setting, needle in (("model.loss=ce+foo", "model.loss='ce+foo'"), ("model.arch=segnet", "model.arch='segnet'"),
                            ("model.output_stride=8", "model.output_stride=8: model.arch=fpn")):
        code, _, err = rsuite("train", "segmentation", setting, f"trainer.runs_dir={tmp_path / 'runs'}")
        assert code == 2 and err.strip().splitlines()[-1].startswith(f"error: {needle}")
        assert not any(tmp_path.iterdir())  # no run folder, no scenes generated
