"""The README's "Fine-tune and deploy" section, run as a user would run it.

``COMMANDS`` and ``PYTHON`` are the section's commands, verbatim; keep the two in step. The
test runs them in order in an empty folder, with ``BUDGET`` appended to each ``rsuite train``
so the section takes about a minute here instead of the recipes' CPU budgets.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.core.idx import fashion_mnist_available

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = [
    "rsuite train classification backbone.name=resnet18 trainer.run_name=fmnist-r18",
    "rsuite train detection --config scenes_retinanet_resnet18_finetune "
    "backbone.weights=runs/classification/fmnist-r18 trainer.run_name=scenes-from-fmnist",
    "rsuite export runs/classification/fmnist-r18 --format onnx --dynamic-batch",
    "rsuite export runs/classification/fmnist-r18 --format exported",
    "rsuite export runs/detection/scenes-from-fmnist --format onnx",
]

PYTHON = '''
from tasks import Predictor
from tasks.core.idx import FASHION_MNIST_DIR, load_idx_split

images, labels = load_idx_split(FASHION_MNIST_DIR, train=False)  # uint8 (10000, 28, 28)
run = Predictor.from_run("runs/classification/fmnist-r18", device="cpu")
onnx = Predictor.from_export("runs/classification/fmnist-r18/export/model.onnx")
print(run(images[0]))  # {'class': ..., 'top': [{'class': ..., 'prob': ...}, ...]}
same = sum(a["class"] == b["class"] for a, b in zip(run(images[:64]), onnx(images[:64])))
print(f"the ONNX file agrees with the run on {same}/64 test images")
'''

#: appended to each `rsuite train` by this test only (seconds instead of minutes)
BUDGET = {"classification": "trainer.max_steps=10 trainer.eval_every=10 data.limit_val=256",
          "detection": "trainer.max_steps=4 trainer.eval_every=4 data.num_train=32 data.num_val=8"}


def _argv(command: str) -> list[str]:
    argv = shlex.split(command)
    if argv[0] == "rsuite":
        if argv[1] == "train":
            argv += shlex.split(BUDGET[argv[2]]) + ["trainer.progress=false"]
        return [sys.executable, "-m", "tasks.cli", *argv[1:]]
    return argv


@pytest.mark.skipif(not fashion_mnist_available(), reason="the section fine-tunes from Fashion-MNIST")
def test_finetune_and_deploy_section_runs(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
           "RSUITE_CACHE": str(tmp_path / "cache")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    outputs = []
    for command in COMMANDS:
        done = subprocess.run(_argv(command), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
        outputs.append(done.stdout.strip().splitlines()[-1])
    weights = json.loads((tmp_path / "runs/detection/scenes-from-fmnist/run.json").read_text())["weights"]
    assert weights["task"] == "classification" and "1 input channels to 3" in weights["adapted"]
    for exported in outputs[2:]:  # the contract: the file is the last line of stdout, its record beside it
        record = json.loads((tmp_path / f"{exported}.json").read_text())
        assert record["max_abs_diff"] <= record["tolerance"]
    done = subprocess.run([sys.executable, "-c", PYTHON], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "'class'" in done.stdout and "agrees with the run on 64/64" in done.stdout, done.stdout
