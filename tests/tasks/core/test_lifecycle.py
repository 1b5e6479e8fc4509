"""The run lifecycle: exclusive run folders, run.json, progress in both metric directions."""

from __future__ import annotations

import json
import math

import pytest

from tasks.core.errors import UserError
from tasks.core.lifecycle import CLAIM, Progress, RunFolder


def test_a_claimed_folder_is_refused_to_a_second_claim(tmp_path) -> None:
    run = RunFolder.claim(tmp_path / "r", "classification", resume=False)
    with pytest.raises(UserError, match="being claimed"):
        RunFolder.claim(tmp_path / "r", "classification", resume=False)
    (run.path / "config.yaml").write_text("seed: 0\n")
    # a resume while the first process still trains is refused too (flock is per open file)
    with pytest.raises(UserError, match=r"in use by another training \(pid \d+\)"):
        RunFolder.claim(tmp_path / "r", "classification", resume=True)
    run.release()
    assert not (run.path / CLAIM).exists()
    RunFolder.claim(tmp_path / "r", "classification", resume=True).release()  # free again


def test_a_finished_run_is_not_overwritten_but_can_be_resumed(tmp_path) -> None:
    run = RunFolder.claim(tmp_path / "r", "dqn", resume=False)
    run.write_files({"seed": 1}, {"classes": ["a"]}, {"task": "dqn", "headline": "return_mean",
                                                      "higher_is_better": True})
    run.release()
    meta = json.loads((run.path / "run.json").read_text())
    assert meta["task"] == "dqn" and meta["headline"] == "return_mean" and "started" in meta
    with pytest.raises(UserError, match="already holds a run"):
        RunFolder.claim(tmp_path / "r", "dqn", resume=False)


def test_a_failed_fresh_run_leaves_no_folder(tmp_path) -> None:
    run = RunFolder.claim(tmp_path / "runs" / "x", "speech", resume=False)
    run.release(failed=True)
    assert not run.path.exists()


def test_resume_needs_a_run_folder(tmp_path) -> None:
    with pytest.raises(UserError, match="not a run folder"):
        RunFolder.claim(tmp_path, "speech", resume=True)


@pytest.mark.parametrize(("higher", "values", "best"), [(True, [0.2, 0.5, 0.4], 0.5), (False, [0.9, 0.3, 0.6], 0.3)])
def test_progress_keeps_the_best_in_the_metric_direction(higher, values, best) -> None:
    progress = Progress("m", higher_is_better=higher)
    improved = [progress.improved({"m": v}) for v in values]
    assert improved == [True, True, False] and progress.best == best
    assert not progress.improved({"m": math.nan}) and not progress.improved({})
