"""Config loading: recipe + overrides into dataclasses; one-line errors naming the key and file."""

import pytest

from tasks.classification.config import ClassificationConfig
from tasks.core.config import from_dict, load_config, to_dict
from tasks.core.errors import UserError


def test_recipe_and_overrides(tmp_path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("backbone:\n  name: plain20\noptim:\n  lr: 0.05\n")
    cfg = load_config(ClassificationConfig, recipe, ["optim.lr=0.2", "backbone.shortcut=none",
                                                     "backbone.residual_scale=1/L", "backbone.options.width=2"])
    assert cfg.backbone.name == "plain20" and cfg.optim.lr == 0.2
    assert cfg.backbone.create_kwargs() == {"shortcut": "none", "residual_scale": "1/L", "width": 2}
    assert from_dict(ClassificationConfig, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    ("yaml_text", "overrides", "needles"),
    [
        ("", ["trainer.max_stpes=3"], ["trainer.max_stpes", "max_steps", "overrides"]),
        ("trainer:\n  epoch: 3\n", [], ["trainer.epoch", "epochs", "r.yaml"]),
        ("", ["trainer.max_steps=ten"], ["trainer.max_steps", "Integer"]),
        ("", ["nonsense"], ["key=value"]),
        ("data: [1, 2\n", [], ["not valid YAML"]),
    ],
)
def test_errors_are_one_line_and_name_the_key(tmp_path, yaml_text, overrides, needles) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml_text)
    with pytest.raises(UserError) as info:
        load_config(ClassificationConfig, recipe, overrides)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message


def test_missing_file_is_named(tmp_path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_config(ClassificationConfig, tmp_path / "nope.yaml")
