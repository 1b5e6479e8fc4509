"""The Python API: typed overrides, recipes by name with `base:` inheritance, load_run."""

from __future__ import annotations

import pytest
import torch

import tasks
from tasks.classification.config import ClassificationConfig
from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.registry import load_task


def test_train_evaluate_load_with_a_mapping_of_overrides(tiny_cls, tmp_path) -> None:
    settings = dict(item.split("=", 1) for item in tiny_cls)
    settings["backbone.options"] = {"width": 0.5}  # a nested value, not a string
    run = tasks.train("classification", overrides=settings)
    assert run.task == "classification" and run.dir.is_dir() and 0 <= run.metrics["top1"] <= 1
    metrics = tasks.evaluate(run.dir, device="cpu")
    assert metrics["task"] == "classification" and metrics["top1"] == pytest.approx(run.metrics["top1"])
    loaded = tasks.load_run(run.dir)
    assert isinstance(loaded.cfg, ClassificationConfig) and loaded.cfg.backbone.options == {"width": 0.5}
    assert not loaded.model.training
    size = loaded.info["image_size"]
    with torch.no_grad():
        logits = loaded.model(torch.zeros(2, loaded.info["in_channels"], size, size))
    assert logits.shape == (2, loaded.info["num_classes"])


def test_plain_twin_recipes_differ_from_their_base_only_in_the_shortcuts() -> None:
    task = load_task("classification")
    residual = load_config(task.config_class, task.recipe_path("fashion_mnist_resnet20"))
    plain = load_config(task.config_class, task.recipe_path("fashion_mnist_plain20"))
    assert plain.backbone.name == "plain20"
    plain.backbone.name = residual.backbone.name
    assert plain == residual
    for name in ("segmentation", "speech", "dqn", "dynamics"):
        t = load_task(name)
        twin = next(r for r in t.recipes() if r.endswith("plain"))
        cfg = load_config(t.config_class, t.recipe_path(twin))
        assert cfg.backbone.shortcut == "none"


def test_recipe_bases_chain_and_loops_are_refused(tmp_path) -> None:
    (tmp_path / "a.yaml").write_text("seed: 3\ntrainer: {max_steps: 7}\n")
    (tmp_path / "b.yaml").write_text("base: a\ntrainer: {max_steps: 9}\n")
    (tmp_path / "c.yaml").write_text(f"base: {tmp_path / 'b.yaml'}\nbackbone: {{name: plain20}}\n")
    cfg = load_config(ClassificationConfig, tmp_path / "c.yaml")
    assert (cfg.seed, cfg.trainer.max_steps, cfg.backbone.name) == (3, 9, "plain20")
    (tmp_path / "x.yaml").write_text("base: y\n")
    (tmp_path / "y.yaml").write_text("base: x\n")
    with pytest.raises(UserError, match="names itself as a base"):
        load_config(ClassificationConfig, tmp_path / "x.yaml")


def test_unknown_recipe_and_task_names_list_the_choices() -> None:
    with pytest.raises(UserError, match="fashion_mnist_resnet20"):
        tasks.train("classification", recipe="fashion_mnist_resnet21")
    with pytest.raises(UserError, match="did you mean classification"):
        tasks.train("clasification")
    assert "cartpole_plain" in tasks.recipes("dqn")
    assert tasks.task_names() == ["classification", "detection", "segmentation", "super_resolution", "speech", "dqn",
                                  "dynamics"]


@pytest.mark.parametrize("task_name", tasks.task_names())
def test_every_shipped_recipe_loads_passes_its_checks_and_builds_its_backbone(task_name) -> None:
    """A recipe a user can only try on a GPU or with a dataset (LibriSpeech, COCO, Atari) is still
    checked here: its keys exist, its values pass the task's checks, and its backbone builds."""
    import backbones

    task = load_task(task_name)
    assert task.default_recipe in task.recipes()
    for recipe in task.recipes():
        cfg = load_config(task.config_class, task.recipe_path(recipe))
        task.check(cfg)
        body = backbones.create(cfg.backbone.name, **cfg.backbone.create_kwargs())
        assert sum(p.numel() for p in body.parameters()) > 0, recipe
