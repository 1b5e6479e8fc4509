"""Super-resolution plugin: shapes per scale, tiled inference, learning, CLI, predict."""

import json

import pytest
import torch
from PIL import Image

import backbones
import tasks
from tasks.cli import main
from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.core.runlog import read_jsonl
from tasks.super_resolution.config import SuperResolutionConfig
from tasks.super_resolution.model import SuperResolutionNet, build_model
from tasks.super_resolution.task import TASK

METRICS = {"psnr_y", "ssim_y", "psnr_y_bicubic", "ssim_y_bicubic", "psnr_rgb", "gain_db"}


def _net(scale: int) -> SuperResolutionNet:
    cfg = load_config(SuperResolutionConfig, None, ["backbone.name=edsr_tiny"])
    return build_model(cfg, {"scale": scale, "mean": [0.4, 0.4, 0.4]}).eval()


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_every_scale_gives_the_right_output_shape(scale) -> None:
    net = _net(scale)
    with torch.no_grad():
        assert net(torch.rand(2, 3, 10, 14)).shape == (2, 3, 10 * scale, 14 * scale)
    assert sum(isinstance(m, torch.nn.PixelShuffle) for m in net.upsample) == (2 if scale == 4 else 1)


def test_variants_srresnet_plain_twin_and_global_residual() -> None:
    srresnet = backbones.create("edsr_baseline", norm="batch")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in srresnet.modules())
    plain = backbones.create("edsr_tiny", shortcut="none")
    assert not plain.long_skip and all(not b.opts.residual for b in plain.body)
    cfg = load_config(SuperResolutionConfig, None, ["backbone.name=edsr_tiny", "model.global_residual=true"])
    net = build_model(cfg, {"scale": 2}).eval()
    lr = torch.rand(1, 3, 12, 12)
    bicubic = torch.nn.functional.interpolate(lr, scale_factor=2, mode="bicubic", antialias=True)
    assert torch.equal(net(lr), bicubic)  # starts exactly at the bicubic upsampling
    with pytest.raises(UserError, match="stride"):
        build_model(load_config(SuperResolutionConfig, None, ["backbone.name=resnet20"]), {"scale": 2})


def test_tiled_inference_equals_whole_image_inference() -> None:
    torch.manual_seed(0)
    net = _net(2)
    for p in net.tail.parameters():  # a non-trivial output everywhere
        torch.nn.init.normal_(p, std=0.05)
    lr = torch.rand(1, 3, 37, 29)
    whole = net.upscale(lr, tile=0)
    # edsr_tiny's receptive field is 20 LR pixels per side (19 stride-1 3x3 convs + upsampler conv)
    tiled = net.upscale(lr, tile=12, overlap=20)
    assert tiled.shape == whole.shape == (1, 3, 74, 58)
    assert torch.allclose(tiled, whole, atol=1e-5)
    rough = net.upscale(lr, tile=12, overlap=2)  # too little context: tiles show seams
    assert not torch.allclose(rough, whole, atol=1e-3)


def test_short_run_lowers_l1_and_writes_the_run_folder(tiny_sr) -> None:
    run = tasks.train(TASK, [*tiny_sr, "trainer.max_steps=12", "trainer.eval_every=12", "optim.lr=1e-3",
                            "model.global_residual=false"]).dir
    train = read_jsonl(run / "train.jsonl")
    first, last = sum(r["train/loss"] for r in train[:3]) / 3, sum(r["train/loss"] for r in train[-3:]) / 3
    assert last < 0.7 * first, (first, last)
    for name in ("config.yaml", "curves.png", "sr_compare.png", "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (run / name).is_file(), name
    metrics = tasks.evaluate(run)
    assert METRICS <= set(metrics) and metrics["images"] == 2
    assert metrics["gain_db"] == pytest.approx(metrics["psnr_y"] - metrics["psnr_y_bicubic"])
    assert 20 < metrics["psnr_y_bicubic"] < 45 and 0 < metrics["ssim_y"] <= 1


def test_cli_train_evaluate_json_and_predict_png(capsys, tiny_sr, tmp_path) -> None:
    def run(*argv: str) -> str:
        try:
            main(list(argv))
        except SystemExit as exit_:
            assert not exit_.code, capsys.readouterr().err
        return capsys.readouterr().out

    run_dir = run("train", "super_resolution", *tiny_sr, "data.scale=3", "data.patch_size=48",
                  "model.global_residual=true").strip().splitlines()[-1]
    metrics = json.loads(run("evaluate", run_dir, "--json").strip().splitlines()[-1])
    assert METRICS <= set(metrics) and metrics["task"] == "super_resolution"
    assert metrics["gain_db"] > -0.5  # global residual: starts at bicubic, a few steps cannot ruin it

    photo = tmp_path / "photo.jpg"
    Image.effect_noise((50, 34), 40).convert("RGB").save(photo)
    out = tmp_path / "photo_x3.png"
    record = json.loads(run("predict", run_dir, str(photo), "--out", str(out)).splitlines()[0])
    with Image.open(out) as im:
        assert im.size == (150, 102) and im.mode == "RGB"
    assert record["output_size"] == [102, 150] and (tmp_path / "photo_x3_compare.png").is_file()

    from tasks.super_resolution.predict import predict

    scored = predict(run_dir, [photo], tmp_path / "many", ground_truth=True)[0]
    assert {"psnr_y", "psnr_y_bicubic"} <= set(scored) and scored["output_size"] == [33, 48]
    with Image.open(scored["compare"]) as im:
        assert im.size[0] > 3 * 48  # bicubic | model | ground truth
    with pytest.raises(UserError, match="names one PNG"):
        predict(run_dir, [photo, photo], tmp_path / "x.png")
