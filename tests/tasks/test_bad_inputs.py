"""A new user's mistakes and bad files, across every task and subcommand.

Each case must give exit code 2, exactly one line on stderr that names the problem, no
traceback, and no run folder left behind. Cases build what they need in ``tmp_path``.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image

from tasks.core.checkpoint import make_checkpoint

Setup = Callable[[Path], list[str]]
CLS = ["train", "classification", "data.dataset=digits", "data.hflip=false", "data.limit_train=64",
       "data.limit_val=32", "data.batch_size=16", "trainer.max_steps=2", "trainer.progress=false",
       "trainer.threads=1"]


def _runs(tmp: Path) -> str:
    return f"trainer.runs_dir={tmp / 'runs'}"


def cls(*extra: str) -> Setup:
    return lambda tmp: [*CLS, _runs(tmp), *extra]


def task(name: str, *extra: str) -> Setup:
    return lambda tmp: ["train", name, "trainer.progress=false", _runs(tmp), *extra]


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _png(path: Path, size: tuple[int, int] = (16, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 30, 200)).save(path)
    return path


def config_file(text: str) -> Setup:
    return lambda tmp: [*CLS, _runs(tmp), "--config", str(_write(tmp / "recipe.yaml", text))]


def base_loop(tmp: Path) -> list[str]:
    _write(tmp / "a.yaml", "base: b\n")
    _write(tmp / "b.yaml", "base: a\n")
    return [*CLS, _runs(tmp), "--config", str(tmp / "a.yaml")]


def single_class_folder(tmp: Path) -> list[str]:
    for split in ("train", "val"):
        for i in range(3):
            _png(tmp / "data" / split / "only" / f"{i}.png")
    return ["train", "classification", "data.dataset=imagefolder", f"data.root={tmp / 'data'}",
            "trainer.max_steps=1", _runs(tmp)]


def runs_dir_is_a_file(tmp: Path) -> list[str]:
    _write(tmp / "file", "x")
    return [*CLS, f"trainer.runs_dir={tmp / 'file'}", "trainer.run_name=x"]


def occupied_run(tmp: Path) -> list[str]:
    _write(tmp / "runs" / "classification" / "taken" / "config.yaml", "seed: 0\n")
    return [*CLS, _runs(tmp), "trainer.run_name=taken"]


def coco(tmp: Path, annotations: object, image: bool = True) -> list[str]:
    for split in ("train", "val"):
        if image:
            _png(tmp / "coco" / split / "images" / "a.png", (64, 64))
        text = annotations if isinstance(annotations, str) else json.dumps(annotations)
        _write(tmp / "coco" / split / "annotations.json", text)
    return ["train", "detection", f"data.root={tmp / 'coco'}", "data.dataset=coco", "trainer.progress=false",
            _runs(tmp)]


COCO_IMAGE = {"id": 1, "file_name": "a.png", "width": 64, "height": 64}
COCO_CATEGORY = [{"id": 1, "name": "thing"}]


def coco_no_boxes(tmp: Path) -> list[str]:
    return coco(tmp, {"images": [COCO_IMAGE], "categories": COCO_CATEGORY, "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 0, 0], "area": 0, "iscrowd": 0}]})


def coco_missing_image(tmp: Path) -> list[str]:
    return coco(tmp, {"images": [COCO_IMAGE], "categories": COCO_CATEGORY, "annotations": []}, image=False)


def run_folder(tmp: Path, ckpt: object | bytes, owner: str = "classification") -> Path:
    run = tmp / "runs" / owner / "r"
    _write(run / "run.json", json.dumps({"task": owner, "headline": "top1", "higher_is_better": True}))
    buffer = io.BytesIO()
    if isinstance(ckpt, bytes):
        buffer.write(ckpt)
    else:
        torch.save(ckpt, buffer)
    _write(run / "checkpoints" / "best.pt", buffer.getvalue())
    return run


class Payload:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned",))


def foreign_checkpoint(tmp: Path) -> list[str]:
    return ["evaluate", str(run_folder(tmp, make_checkpoint("detection", step=1, model={}, config={})))]


def pickle_with_code(tmp: Path) -> list[str]:
    return ["evaluate", str(run_folder(tmp, {"x": Payload()}))]


def garbage_checkpoint(tmp: Path) -> list[str]:
    return ["evaluate", str(run_folder(tmp, b"not a checkpoint at all"))]


def empty_folder(tmp: Path) -> list[str]:
    (tmp / "empty").mkdir()
    return ["report", str(tmp / "empty")]


def no_checkpoints(tmp: Path) -> list[str]:
    (tmp / "run").mkdir()
    return ["evaluate", str(tmp / "run")]


def resume_without_config(tmp: Path) -> list[str]:
    (tmp / "half").mkdir()
    return ["train", "classification", "--resume", str(tmp / "half")]


def resume_with_recipe(tmp: Path) -> list[str]:
    _write(tmp / "r" / "config.yaml", "seed: 0\n")
    return ["train", "classification", "--resume", str(tmp / "r"), "--config", "fashion_mnist_resnet20"]


def empty_data_root(tmp: Path) -> list[str]:
    (tmp / "nothing").mkdir()
    return [*CLS[:2], f"data.root={tmp / 'nothing'}", _runs(tmp)]


def speech_manifest_without_sets(tmp: Path) -> list[str]:
    return ["train", "speech", "data.dataset=manifest", f"data.root={tmp}", _runs(tmp)]


DYN = ["data.num_train=2", "data.num_val=1", "data.length=12", "model.horizon=2", "eval.horizon=5", "eval.horizons=[1]",
       "trainer.max_steps=1"]


def dynamics_bad_trajectory(tmp: Path) -> list[str]:
    for i in range(3):
        _write(tmp / "traj" / f"good{i}.csv", "t,a\n0,1\n1,2\n2,3\n3,4\n4,5\n5,6\n6,7\n")
    _write(tmp / "traj" / "late.csv", "t,a\n0,1\n2,2\n1,3\n")
    return ["train", "dynamics", *DYN, f"data.root={tmp / 'traj'}", "data.strict=true", _runs(tmp)]


def dynamics_no_trajectories(tmp: Path) -> list[str]:
    _write(tmp / "traj" / "notes.txt", "no trajectories here")
    return ["train", "dynamics", *DYN, f"data.root={tmp / 'traj'}", _runs(tmp)]


CASES: dict[str, tuple[Setup, str]] = {
    # ---- the command line itself
    "unknown subcommand": (lambda tmp: ["frobnicate"], "invalid choice"),
    "train without task": (lambda tmp: ["train"], "required"),
    "unknown task": (lambda tmp: ["train", "clasification"], "unknown task"),
    "evaluate extra args": (lambda tmp: ["evaluate", str(tmp), "--bogus"], "unrecognized"),
    "backbones bad modality": (lambda tmp: ["backbones", "--modality", "audio"], "invalid choice"),
    "recipes bad task": (lambda tmp: ["recipes", "nosuch"], "unknown task"),
    "experiment bad depths": (lambda tmp: ["experiment", "degradation", "--depths", "21"], "not valid"),
    "experiment non-integer seeds": (lambda tmp: ["experiment", "degradation", "--seeds", "a,b"], "integers"),
    "experiment unknown budget": (lambda tmp: ["experiment", "sweep", "--tasks", "classification", "--budget",
                                               "huge"], "no budget"),
    "sweep unknown task": (lambda tmp: ["experiment", "sweep", "--tasks", "segmentatoin"], "unknown task"),
    # ---- overrides and recipes
    "unknown key": (cls("trainer.max_stpes=3"), "max_steps"),
    "unknown section": (cls("trainr.max_steps=3"), "trainr"),
    "wrong type": (cls("trainer.max_steps=many"), "trainer.max_steps"),
    "override without =": (cls("trainer.max_steps"), "key=value"),
    "missing recipe file": (cls("--config", "/nonexistent/recipe.yaml"), "does not exist"),
    "unknown recipe name": (cls("--config", "fashion_mnist_resnet21"), "no recipe"),
    "recipe is a list": (config_file("- a\n- b\n"), "no mapping"),
    "recipe is not yaml": (config_file("trainer: [unclosed\n"), "not valid YAML"),
    "recipe with unknown key": (config_file("trainer: {max_stepz: 3}\n"), "max_stepz"),
    "recipe base loop": (base_loop, "names itself as a base"),
    # ---- values a type cannot rule out
    "negative max_steps": (cls("trainer.max_steps=-5"), "trainer.max_steps"),
    "no steps at all": (cls("trainer.max_steps=0", "trainer.epochs=0"), "no training steps"),
    "negative threads": (cls("trainer.threads=-1"), "trainer.threads"),
    "negative eval_every": (cls("trainer.eval_every=-2"), "trainer.eval_every"),
    "zero log_every": (cls("trainer.log_every=0"), "trainer.log_every"),
    "negative workers": (cls("trainer.num_workers=-2"), "trainer.num_workers"),
    "ema decay above 1": (cls("trainer.ema_decay=1.5"), "trainer.ema_decay"),
    "zero batch": (cls("data.batch_size=0"), "data.batch_size"),
    "negative lr": (cls("optim.lr=-1"), "optim.lr"),
    "momentum above 1": (cls("optim.momentum=1.5"), "optim.momentum"),
    "negative weight decay": (cls("optim.weight_decay=-1"), "optim.weight_decay"),
    "negative grad clip": (cls("optim.grad_clip=-1"), "optim.grad_clip"),
    "negative warmup": (cls("optim.warmup_steps=-3"), "optim.warmup_steps"),
    "unknown optimizer": (cls("optim.name=lion"), "lion"),
    "unknown schedule": (cls("optim.schedule=zigzag"), "zigzag"),
    "unknown device": (cls("trainer.device=tpu"), "trainer.device"),
    "cuda without a gpu": pytest.param(cls("trainer.device=cuda"), "no CUDA device",
                                       marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has CUDA")),
    "unknown precision": (cls("trainer.precision=fp8"), "trainer.precision"),
    "fp16 on cpu": (cls("trainer.device=cpu", "trainer.precision=fp16"), "needs CUDA"),
    "monitor not a metric": (cls("trainer.monitor=top2"), "trainer.monitor=top2"),
    "batch larger than data": (cls("data.limit_train=8", "data.batch_size=16"), "fewer than one batch"),
    # ---- backbones
    "unknown backbone": (cls("backbone.name=resnet21"), "resnet21"),
    "sequence backbone for images": (cls("backbone.name=quartznet5x5"), "sequence backbone"),
    "unknown backbone option": (cls("backbone.options.bogus=1"), "bogus"),
    "backbone option of wrong type": (cls("backbone.options.width=wide"), "width"),
    "invalid shortcut": (cls("backbone.shortcut=sideways"), "sideways"),
    # ---- data
    "unknown dataset": (cls("data.dataset=imagenet22k"), "imagenet22k"),
    "data root missing": (lambda tmp: [*CLS[:2], "data.root=/nonexistent/data", _runs(tmp)], "does not exist"),
    "data root of no known layout": (empty_data_root, "matches no known layout"),
    "single class image folder": (single_class_folder, "at least 2"),
    "coco json is not json": (lambda tmp: coco(tmp, "{not json"), "not a COCO annotation file"),
    "coco without usable boxes": (coco_no_boxes, "no usable box annotations"),
    "coco image missing": (coco_missing_image, "does not exist"),
    # ---- other tasks' settings
    "detection unknown arch": (task("detection", "model.arch=yolo"), "yolo"),
    "detection vector backbone": (task("detection", "backbone.name=resmlp"), "vector backbone"),
    "super-resolution patch vs scale": (task("super_resolution", "data.patch_size=97"), "data.patch_size"),
    "super-resolution unknown loss": (task("super_resolution", "model.loss=huber"), "model.loss"),
    "speech image backbone": (task("speech", "backbone.name=resnet18"), "image backbone"),
    "speech manifest without sets": (speech_manifest_without_sets, "train_set"),
    "dynamics unknown system": (task("dynamics", "data.system=double_pendulum"), "data.system"),
    "dynamics image backbone": (task("dynamics", "backbone.name=resnet18"), "image backbone"),
    "dynamics unknown model kind": (task("dynamics", "model.kind=lstm"), "model.kind"),
    "dynamics plain cannot refine": (task("dynamics", "backbone.shortcut=none", "eval.substeps=2"),
                                     "cannot refine its step"),
    "dynamics horizon too long": (task("dynamics", *DYN, "eval.horizon=40"), "eval.horizon"),
    "dynamics bad trajectory file": (dynamics_bad_trajectory, "late.csv cannot be read"),
    "dynamics folder without trajectories": (dynamics_no_trajectories, "trajectory files"),
    "dqn unknown env": (task("dqn", "env.id=NoSuchEnv-v0"), "NoSuchEnv-v0"),
    "dqn zero n-step": (task("dqn", "agent.n_step=0"), "agent.n_step"),
    "dqn gamma above 1": (task("dqn", "agent.gamma=1.5"), "agent.gamma"),
    "dqn buffer below batch": (task("dqn", "agent.buffer_size=8", "data.batch_size=32"), "agent.buffer_size"),
    "dqn image backbone for vectors": (task("dqn", "backbone.name=resnet18", "backbone.options={}"), "image backbone"),
    # ---- run folders
    "runs dir is a file": (runs_dir_is_a_file, "a file is in the way"),
    "run folder already used": (occupied_run, "already holds a run"),
    "resume a missing folder": (lambda tmp: ["train", "classification", "--resume", str(tmp / "nope")],
                                "not a run folder"),
    "resume a folder without config": (resume_without_config, "not a run folder"),
    "resume with a recipe": (resume_with_recipe, "drop the recipe"),
    # ---- evaluate / predict / report
    "evaluate missing folder": (lambda tmp: ["evaluate", str(tmp / "nope")], "has no checkpoints"),
    "evaluate without checkpoints": (no_checkpoints, "has no checkpoints"),
    "evaluate another task's checkpoint": (foreign_checkpoint, "was written by task 'detection'"),
    "evaluate a pickle with code": (pickle_with_code, "posix.system"),
    "evaluate a garbage checkpoint": (garbage_checkpoint, "not a safe residual-suite checkpoint"),
    "predict missing folder": (lambda tmp: ["predict", str(tmp / "nope"), "x.png"], "has no checkpoints"),
    "report missing folder": (lambda tmp: ["report", str(tmp / "nope")], "is not a folder"),
    "report empty folder": (empty_folder, "run folders"),
}


@pytest.mark.parametrize(("setup", "needle"), CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_line_exit_2_and_leaves_no_run(rsuite, tmp_path, monkeypatch, setup, needle) -> None:
    monkeypatch.setenv("RSUITE_CACHE", str(tmp_path / "cache"))
    argv = setup(tmp_path)
    before = {p for p in (tmp_path / "runs").rglob("*")} if (tmp_path / "runs").exists() else set()
    code, _, err = rsuite(*argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err[-2000:])
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert needle in lines[0], lines[0]
    after = {p for p in (tmp_path / "runs").rglob("*")} if (tmp_path / "runs").exists() else set()
    assert {p for p in after - before if p.is_file()} == set(), "a half-made run folder was left behind"


def test_there_are_many_cases() -> None:
    assert len(CASES) >= 60


def test_predict_inputs_and_outputs_are_named_clearly(tmp_path) -> None:
    from tasks.core.errors import UserError
    from tasks.core.predict import read_image
    from tasks.detection.predict import _output_path

    with pytest.raises(UserError, match="is a folder"):
        read_image(tmp_path, 3)
    with pytest.raises(UserError, match=r"neither a \.png name nor a folder"):
        _output_path(tmp_path / "a.png", tmp_path / "result.jpg", 1)
    assert _output_path(tmp_path / "a.png", tmp_path / "one.png", 1) == tmp_path / "one.png"
    assert _output_path(tmp_path / "a.png", tmp_path / "many", 2) == tmp_path / "many" / "a_detections.png"
