"""The new families train through the classification task; the connectivity study on a tiny budget."""

import json

import pytest
import torch

import backbones
import tasks
from backbones.attention import SoftMaskBranch
from tasks import connectivity
from tasks.core.backbone import freeze_stages, stage_modules
from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.core.runlog import read_jsonl
from tasks.registry import load_task

FAMILIES = {
    "dense": ["backbone.name=densenet_bc_40_k12", "backbone.zero_init_last=null"],
    "fractal": ["backbone.name=fractalnet_cifar", "backbone.options.width=0.125", "backbone.options.local_drop=0.15",
                "backbone.options.global_drop=0.5", "backbone.zero_init_last=null"],
    "attention": ["backbone.name=attention20_cifar"],
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_trains_through_the_classification_task(family: str, tiny_cls: list[str]) -> None:
    data = [o for o in tiny_cls if not o.startswith("backbone.")]  # tiny_cls sizes a resnet20
    run = tasks.train("classification", [*data, *FAMILIES[family], "trainer.max_steps=4", "trainer.eval_every=4",
                                         f"trainer.run_name={family}"])
    losses = [r["train/loss"] for r in read_jsonl(run.dir / "train.jsonl")]
    assert len(losses) == 2 and all(0 < v < 10 for v in losses)
    assert 0.0 <= run.metrics["top1"] <= 1.0
    loaded = tasks.load_run(run.dir)  # the checkpoint rebuilds the same backbone
    assert type(loaded.model.backbone).__name__ == type(backbones.create(loaded.cfg.backbone.name)).__name__


def test_densenet_transitions_freeze_with_the_block_they_feed() -> None:
    body = backbones.create("densenet_bc_40_k12")
    assert stage_modules(body) == [["conv0", "denseblock1"], ["transition1", "denseblock2"],
                                   ["transition2", "denseblock3", "norm5"]]
    freeze_stages(body, 1)
    frozen = {n.split(".")[0] for n, p in body.named_parameters() if not p.requires_grad}
    assert frozen == {"conv0", "denseblock1", "transition1", "denseblock2"}


def _trunk_3x3(model: torch.nn.Module) -> int:
    """3x3 convs outside soft-mask branches (every other 3x3 conv of these nets lies on one trunk chain)."""
    inside = {id(m) for b in model.modules() if isinstance(b, SoftMaskBranch) for m in b.modules()}
    return sum(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) and id(m) not in inside
               for m in model.modules())


def test_study_nets_have_equal_trunk_depth() -> None:
    task = load_task("classification")
    info = {"in_channels": 1, "num_classes": 10}
    depths = {}
    for net in connectivity.NETS:
        cfg = load_config(task.config_class, task.recipe_path(None), list(net.overrides))
        model = task.build_model(cfg, info).backbone
        depths[net.key] = _trunk_3x3(model) if not net.key.startswith("fractalnet") else None
    assert {k: v for k, v in depths.items() if v is not None} == {
        "resnet20": 19, "plain20": 19, "densenet_bc_40_k12": 19, "plain_densenet_bc_40_k12": 19,
        "plain_fractalnet": 20, "attention20": 19, "plain_attention20": 19}
    # The fractal's longest path is its deepest column, which is the plain analog above: 20.
    assert {net.family for net in connectivity.NETS} == {"residual", "dense", "fractal", "attention"}
    assert sum(net.plain for net in connectivity.NETS) == 4


def test_connectivity_writes_table_figures_json_and_report(tiny_cls, tmp_path) -> None:
    data = [o for o in tiny_cls if o.startswith(("data.", "trainer.progress", "trainer.threads"))]
    nets = tuple(n for n in connectivity.NETS if n.family == "fractal")
    root = connectivity.connectivity([0, 1], steps=2, out=tmp_path / "conn", overrides=data, nets=nets)
    for name in ("connectivity.png", "gradients.png", "connectivity.md", "report/report.md", "report/report.html"):
        assert (root / name).is_file(), name
    table = (root / "connectivity.md").read_text()
    assert "| fractal | fractalnet | no |" in table and "| fractal | plain_fractalnet | yes |" in table
    assert "2 steps per run" in table
    result = json.loads((root / "connectivity.json").read_text())["nets"]
    assert len(result["fractalnet"]["grad_init"]) == 2  # one probe per seed
    assert len(result["fractalnet"]["grad_init_mean"]) == 5 * 7
    assert len(result["plain_fractalnet"]["grad_init_mean"]) == 20
    assert all(len(r["top1"]) == 2 and r["steps"] == 2 for r in result.values())
    report = (root / "report" / "report.md").read_text()
    assert "plain_fractalnet_cifar" in report and "fractalnet_cifar" in report


def test_connectivity_rejects_bad_budgets(tmp_path) -> None:
    with pytest.raises(UserError, match="cpu-seconds"):
        connectivity.connectivity([0], cpu_seconds=0, out=tmp_path)
    with pytest.raises(UserError, match="seeds"):
        connectivity.connectivity([], out=tmp_path)


def test_cli_routes_connectivity(rsuite, monkeypatch, tmp_path) -> None:
    seen = {}
    monkeypatch.setattr(connectivity, "connectivity", lambda *a: seen.setdefault("args", a) and tmp_path)
    code, out, _err = rsuite("experiment", "connectivity", "--seeds", "3,4", "--cpu-seconds", "12", "--out",
                          str(tmp_path), "data.limit_train=512")
    assert code == 0 and out.strip() == str(tmp_path)
    assert seen["args"] == ([3, 4], 12.0, None, tmp_path, ["data.limit_train=512"])


def test_equal_cpu_budget_measures_each_nets_step(tiny_cls) -> None:
    task = load_task("classification")
    data = [o for o in tiny_cls if o.startswith("data.")]
    net = next(n for n in connectivity.NETS if n.key == "plain_fractalnet")
    cfg = load_config(task.config_class, task.recipe_path(None), [*net.overrides, *data])
    batch, info = connectivity._probe_batch(task, cfg)
    assert batch[0].shape[0] == cfg.data.batch_size
    assert 0 < connectivity._step_cpu_seconds(task, cfg, info, batch, repeats=1) < 10
    grads = connectivity._init_gradients(task, cfg, info, batch)
    assert len(grads) == 20 and all(g > 0 for g in grads)
