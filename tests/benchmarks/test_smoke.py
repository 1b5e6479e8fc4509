"""Every benchmark script runs end to end at a tiny budget and prints its table.

The benchmarks are where README numbers come from; running each for a few steps in
``make test`` (about a minute for all six) keeps them working as the code changes.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CASES = {
    "backbone_throughput": ["--device", "cpu", "--batch", "2", "--image-size", "64", "--steps", "1", "--repeats", "1",
                            "--warmup", "0", "--models", "resnet18,resnet56", "--threads", "1"],
    "detection_vs_torchvision": ["--steps", "2", "--threads", "1", "data.num_train=16", "data.num_val=8",
                                 "data.image_size=64", "trainer.progress=false"],
    "segmentation_vs_smp": ["--steps", "2", "--threads", "1", "data.num_train=8", "data.num_val=4",
                            "data.image_size=64", "data.min_object_size=12", "data.max_object_size=28",
                            "data.batch_size=2", "data.crop_size=32"],
    "sr_quality": ["--backbone", "edsr_tiny", "--steps", "2", "--batch-size", "2", "--patch-size", "32",
                   "--threads", "1"],
    "speech_plain_vs_residual": ["--steps", "2", "--num-train", "32", "--num-val", "8", "--threads", "1"],
    "dqn_vs_sb3": ["--seeds", "0", "--steps", "300", "--eval-every", "150", "--eval-episodes", "2",
                   "--final-episodes", "2"],
    "engine_throughput": ["--steps", "2", "--rounds", "1"],
    "replay_scaling": ["--capacities", "1000", "4000", "--iters", "5", "--repeats", "1", "--no-linear"],
    "transfer": ["--seeds", "0", "--cls-steps", "2", "--det-steps", "2", "--threads", "1",
                 "--arms", "scratch,transfer,finetune", "data.num_train=8", "data.num_val=4", "data.image_size=64",
                 "data.min_object_size=12", "data.max_object_size=24"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_runs_and_prints_a_table(name: str, tmp_path) -> None:
    env = {**os.environ, "RSUITE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *CASES[name]], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| ---" in out.stdout or "|---" in out.stdout, out.stdout[-2000:]


@pytest.mark.slow  # about a minute on 2 cores: `make test-all` runs it; `make test` stays within its budget
def test_gpu_check_dry_run_exercises_every_section_on_the_cpu(tmp_path) -> None:
    """``benchmarks/gpu_check.py --dry-run``: every GPU-check code path at tiny sizes (about 40 s), so the
    script is known to work before a GPU is at hand; only the 2-GPU NCCL run is skipped."""
    env = {**os.environ, "RSUITE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out",
                          str(tmp_path / "gpu_check.json")], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    assert "11 ok, 1 skipped, 0 failed" in out.stdout, out.stdout[-3000:]
