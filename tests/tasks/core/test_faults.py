"""Faults a real run meets: kill -9 at random moments, Ctrl-C, two runs racing for one folder.

Trainings run as real processes (``python -m tasks.classification.train``) on a few hundred
digits with one thread, so a resumed run can be compared bit for bit with an uninterrupted one.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

import tasks
from tasks.core.checkpoint import load_checkpoint
from tasks.core.runlog import read_jsonl

STEPS = 24
SETTINGS = ["data.dataset=digits", "data.hflip=false", "data.limit_train=256", "data.limit_val=64",
            "data.batch_size=16", "backbone.name=resnet20", "backbone.options.width=0.25",
            f"trainer.max_steps={STEPS}", "trainer.eval_every=2", "trainer.log_every=1", "trainer.progress=false",
            "trainer.threads=1"]


def _start(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.Popen([sys.executable, "-m", "tasks.classification.train", *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_rows(run: Path, rows: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if len(read_jsonl(run / "train.jsonl")) >= rows if (run / "train.jsonl").is_file() else False:
            return
        time.sleep(0.01)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / "last.pt")["model"]


def _reference(tmp_path: Path) -> Path:
    return tasks.train("classification", [*SETTINGS, f"trainer.runs_dir={tmp_path}", "trainer.run_name=ref"]).dir


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_five_kills_and_resumes_end_identical_with_one_log_row_per_step(tmp_path) -> None:
    run = tmp_path / "classification" / "killed"
    rng = random.Random(0)
    proc = _start(*SETTINGS, f"trainer.runs_dir={tmp_path}", "trainer.run_name=killed")
    for kill in range(5):
        done = len(read_jsonl(run / "train.jsonl"))
        _wait_for_rows(run, done + rng.randint(1, 3), proc)
        if kill == 2:  # aim at a checkpoint write: kill the moment a temporary file shows up
            deadline = time.monotonic() + 10
            while proc.poll() is None and time.monotonic() < deadline and \
                    not list((run / "checkpoints").glob(".*.tmp")):
                time.sleep(0.0005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc = _start("--resume", str(run))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert out.strip().splitlines()[-1] == str(run)
    assert not list((run / "checkpoints").glob(".*.tmp"))
    reference = _reference(tmp_path)
    assert _same(_weights(run), _weights(reference))
    assert [r["step"] for r in read_jsonl(run / "train.jsonl")] == list(range(1, STEPS + 1))
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == list(range(2, STEPS + 1, 2))


def test_ctrl_c_saves_the_step_and_prints_the_resume_command(tmp_path) -> None:
    run = tmp_path / "classification" / "stopped"
    proc = _start(*SETTINGS, f"trainer.runs_dir={tmp_path}", "trainer.run_name=stopped", "trainer.eval_every=100")
    _wait_for_rows(run, 3, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert f"resume with: rsuite train classification --resume {run}" in err
    step = load_checkpoint(run / "checkpoints" / "last.pt")["step"]
    assert 3 <= step < STEPS
    resumed = _start("--resume", str(run), "trainer.eval_every=100")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0 and f"resumed {run} at step {step}" in err


def test_two_runs_with_one_name_exactly_one_proceeds(tmp_path) -> None:
    argv = [*SETTINGS, "trainer.max_steps=4", f"trainer.runs_dir={tmp_path}", "trainer.run_name=same"]
    first, second = _start(*argv), _start(*argv)
    results = [(p.wait(timeout=300), p.stderr.read()) for p in (first, second)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2).strip().splitlines()
    assert len(refused) == 1 and "trainer.run_name" in refused[0]
    assert [r["step"] for r in read_jsonl(tmp_path / "classification" / "same" / "train.jsonl")] == [1, 2, 3, 4]
