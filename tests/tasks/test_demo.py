"""``make demo``'s runner: stages side by side in their own processes, results in the report's order."""

from __future__ import annotations

import json

import pytest

from tasks import demo
from tasks.core.runlog import read_jsonl


def test_side_by_side_stages_train_in_their_own_processes_with_one_thread(tmp_path, capsys) -> None:
    short = {"trainer.max_steps": 4, "trainer.eval_every": 4, "trainer.log_every": 1}
    results = demo.run_side_by_side(["super_resolution", "dynamics"], tmp_path, jobs=2, extra=short,
                                    progress_every=0.5)
    assert list(results) == ["super_resolution", "dynamics"]  # the order asked for, not the finishing order
    assert "gain_db" in results["super_resolution"] and "rollout_rmse" in results["dynamics"]
    for task in results:
        run = tmp_path / task / "demo"
        assert [r["step"] for r in read_jsonl(run / "train.jsonl")] == [1, 2, 3, 4]
        runtime = json.loads((run / "run.json").read_text())["runtime"]
        assert runtime["threads"] == 1
    assert "[progress] " in capsys.readouterr().err  # the parent names the running stages' steps


def test_unknown_stage_and_bad_jobs_are_one_line_errors(capsys) -> None:
    for argv, needle in ((["nope"], "no demo stage for nope"), (["dynamics", "--jobs", "0"], "--jobs 0 must be >= 1")):
        with pytest.raises(SystemExit) as exit_:
            demo.main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err


def test_longest_first_names_every_stage() -> None:
    assert sorted(demo.LONGEST_FIRST) == sorted(demo.STAGES)
