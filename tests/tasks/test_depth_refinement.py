"""``rsuite experiment depth-refinement``: the step-count rules, a tiny end-to-end study, CLI routing and errors."""

import json

import pytest
import torch

import backbones
from backbones.adapters import Classifier
from tasks import depth_refinement as dr
from tasks.core.errors import UserError


def test_step_counts_are_half_to_four_times_the_training_depth() -> None:
    assert dr.step_counts(4) == [2, 4, 8, 16]
    assert dr.step_counts(2) == [1, 2, 4, 8]
    for bad in (3, 0, -2, 1):
        with pytest.raises(UserError, match="--blocks"):
            dr.step_counts(bad)


def test_resnet_schedule_repeats_or_skips_the_block_at_each_steps_start() -> None:
    assert dr.block_schedule(4, 4) == [0, 1, 2, 3]
    assert dr.block_schedule(4, 2) == [0, 2]  # skip: every other block, the first kept
    assert dr.block_schedule(4, 8) == [0, 0, 1, 1, 2, 2, 3, 3]  # repeat: each block twice
    assert dr.block_schedule(4, 16) == [i for i in range(4) for _ in range(4)]
    assert dr.block_schedule(4, 3) == [0, 1, 2]  # not a multiple: the block holding j/k
    with pytest.raises(ValueError):
        dr.block_schedule(0, 2)


def _impala(blocks: int = 4) -> Classifier:
    torch.manual_seed(0)
    body = backbones.create("impala_cnn", in_channels=1, channels=[6], blocks_per_stack=blocks, norm="batch")
    return Classifier(body, 10).eval()


def test_resnet_at_steps_applies_the_schedule_and_restores_the_net() -> None:
    model = _impala(4)
    x = torch.randn(2, 1, 12, 12)
    stage = model.backbone.stack1
    conv, pool, *blocks = stage
    before = model(x)
    with torch.no_grad():
        for k, scaled in ((8, False), (8, True), (2, False), (2, True)):
            h = pool(conv(x))
            for i in dr.block_schedule(4, k):
                h = h + (4 / k if scaled else 1.0) * blocks[i].branch(h)
            expected = model.fc(model.backbone.head_norm(h).mean((2, 3)))
            with dr.resnet_at_steps(model, k, scaled=scaled) as m:
                assert len(m.backbone.stack1) == 2 + k
                torch.testing.assert_close(m(x), expected)
        with dr.resnet_at_steps(model, 4) as m:  # k = N, unscaled: the trained net itself
            torch.testing.assert_close(m(x), before)
    assert model.backbone.stack1 is stage
    torch.testing.assert_close(model(x), before)


def test_resnet_at_steps_refuses_stages_with_transition_blocks() -> None:
    model = Classifier(backbones.create("wide_resnet16_4", in_channels=1), 10)  # a projection block heads stages
    with pytest.raises(ValueError, match="identity-shortcut"), dr.resnet_at_steps(model, 4):
        pass
    model = Classifier(backbones.create("resnet20", in_channels=1), 10)  # ReLU after the add: not x + F(x)
    with pytest.raises(ValueError, match="no activation after the add"), dr.resnet_at_steps(model, 6):
        pass
    assert isinstance(model.backbone.layer1, torch.nn.Sequential) and len(model.backbone.layer1) == 3


def test_ode_at_steps_integrates_the_same_f_with_step_T_over_k() -> None:
    torch.manual_seed(0)
    body = backbones.create("odenet", in_channels=1, width=8, solver="euler", steps=4, T=1.0)
    model = Classifier(body, 10).eval()
    block = dr.ode_blocks(model)[0]
    with torch.no_grad():  # FiLM makes f depend on t: give it a non-zero time response
        block.func.film.weight.normal_()
    x = torch.randn(2, 1, 12, 12)
    h0 = body.stem(x)
    with torch.no_grad():
        for k in (2, 8):
            h = h0
            for j in range(k):
                h = h + (1.0 / k) * block.func(torch.tensor(j / k), h)
            with dr.ode_at_steps(model, k) as m:
                assert block.steps == k
                torch.testing.assert_close(m.backbone.stage1(h0), h, rtol=1e-5, atol=1e-5)
                assert block.nfe_forward == k
    assert block.steps == 4
    with pytest.raises(ValueError, match="fixed-grid"), dr.ode_at_steps(_impala(), 2):
        pass


def test_image_study_writes_table_json_figure_and_report(tiny_cls, tmp_path) -> None:
    data = [o for o in tiny_cls if o.startswith(("data.", "trainer.progress", "trainer.threads"))]
    root = dr.depth_refinement([0, 1], part="images", blocks=2, steps=2, out=tmp_path / "dr", overrides=data,
                               width=8)
    for name in ("images.png", "depth_refinement.md", "depth_refinement.json", "report/report.md"):
        assert (root / name).is_file(), name
    table = (root / "depth_refinement.md").read_text()
    assert "| k=1 | k=2 (trained) | k=4 | k=8 |" in table
    assert "| odenet | one f, step T/k |" in table and "| resnet_scaled |" in table
    result = json.loads((root / "depth_refinement.json").read_text())
    images = result["images"]
    assert result["meta"]["seeds"] == [0, 1] and images["counts"] == [1, 2, 4, 8]
    assert set(images["rows"]) == {"odenet", "resnet", "resnet_scaled"}
    for key, row in images["rows"].items():
        assert all(len(row["top1"][str(k)]) == 2 for k in (1, 2, 4, 8))
        assert all(0.0 <= v <= 1.0 for values in row["top1"].values() for v in values)
        # at the trained depth every rule is the trained net: the engine's own validation top-1
        assert row["top1"]["2"] == pytest.approx(row["trained_top1"]), key
    assert images["rows"]["resnet"]["top1"]["2"] == images["rows"]["resnet_scaled"]["top1"]["2"]
    assert "impala_cnn" in (root / "report" / "report.md").read_text()


def test_study_rejects_bad_arguments(tmp_path) -> None:
    with pytest.raises(UserError, match="seeds"):
        dr.depth_refinement([], out=tmp_path)
    with pytest.raises(UserError, match="--part"):
        dr.depth_refinement([0], part="audio", out=tmp_path)
    with pytest.raises(UserError, match="--blocks"):
        dr.depth_refinement([0], part="images", blocks=3, out=tmp_path)
    with pytest.raises(UserError, match="--steps"):
        dr.depth_refinement([0], part="images", blocks=2, steps=0, out=tmp_path / "x")
    assert not any(tmp_path.iterdir())  # nothing was trained or written


def test_cli_routes_depth_refinement(rsuite, monkeypatch, tmp_path) -> None:
    seen = {}
    monkeypatch.setattr(dr, "depth_refinement", lambda *a, **kw: seen.setdefault("call", (a, kw)) and tmp_path)
    code, out, _err = rsuite("experiment", "depth-refinement", "--seeds", "3,4", "--part", "images", "--blocks", "6",
                             "--steps", "50", "--out", str(tmp_path), "data.limit_train=512")
    assert code == 0 and out.strip() == str(tmp_path)
    args, kwargs = seen["call"]
    assert args == ([3, 4],)
    assert kwargs == {"part": "images", "blocks": 6, "steps": 50, "out": tmp_path,
                      "overrides": ["data.limit_train=512"], "dynamics_overrides": [], "systems": None}


def test_cli_bad_arguments_are_one_line_errors(rsuite, tmp_path) -> None:
    code, _out, err = rsuite("experiment", "depth-refinement", "--part", "audio")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--part" in err
    code, _out, err = rsuite("experiment", "depth-refinement", "--blocks", "5", "--part", "images", "--out",
                             str(tmp_path / "x"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--blocks 5" in err


#: a seconds-long dynamics run: a few short pendulum trajectories, 3 training steps
DYN_TINY = ["data.num_train=4", "data.num_val=2", "data.length=24", "data.batch_size=8", "eval.horizon=12",
            "eval.stride=6", "eval.plots=0", "trainer.max_steps=3", "trainer.eval_every=3", "trainer.log_every=1",
            "trainer.progress=false"]


def test_dynamics_study_refines_the_residual_model_and_records_the_plain_refusal(tmp_path) -> None:
    root = dr.depth_refinement([0, 1], part="dynamics", out=tmp_path / "dyn", dynamics_overrides=DYN_TINY,
                               systems=("pendulum",))
    for name in ("dynamics.png", "depth_refinement.md", "depth_refinement.json", "report/report.md"):
        assert (root / name).is_file(), name
    result = json.loads((root / "depth_refinement.json").read_text())
    assert "images" not in result
    entry = result["dynamics"]["systems"]["pendulum"]
    rows = entry["rows"]
    assert entry["horizon"] == 12 and entry["dt"] > 0
    assert set(rows["residual"]["metrics"]) == {"1", "2", "4"} and set(rows["plain"]["metrics"]) == {"1"}
    assert "cannot refine" in rows["plain"]["refusal"]
    for kind, row in rows.items():
        assert len(row["runs"]) == 2 and len(row["persistence"]) == 2
        # one sub-step is the model as trained: the engine's own validation score
        trained = [json.loads(line) for line in open(f"{row['runs'][0]}/metrics.jsonl")][-1]["val/rollout_rmse"]
        assert row["metrics"]["1"]["rollout_rmse"][0] == pytest.approx(trained, rel=1e-5), kind
    assert {"rollout_rmse", "rollout_rmse_1", "rollout_rmse_10", "valid_time"} <= set(rows["residual"]["metrics"]["2"])
    table = (root / "depth_refinement.md").read_text()
    assert "| pendulum | residual | Δt/2 = " in table and "| pendulum | plain | Δt/2 = " in table
    assert "refused" in table


def test_dynamics_study_names_an_unknown_system(tmp_path) -> None:
    with pytest.raises(UserError, match=r"data\.system='moon'"):
        dr.depth_refinement([0], part="dynamics", out=tmp_path / "x", systems=("moon",))
    assert not (tmp_path / "x").exists()


def test_cli_refuses_zero_training_steps_before_writing(rsuite, tmp_path) -> None:
    code, _out, err = rsuite("experiment", "depth-refinement", "--part", "images", "--steps", "0", "--out",
                             str(tmp_path / "x"))
    assert code == 2 and "--steps 0" in err and not (tmp_path / "x").exists()
