"""``rsuite report`` over run folders written directly with controlled configs (no training).

Each run folder gets what ``rsuite train`` writes: ``run.json``, the task's full resolved
``config.yaml`` (from its config class, so every real key is there), ``data_info.json``,
``metrics.jsonl``, ``train.jsonl`` and a ``curves.png``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from omegaconf import OmegaConf
from PIL import Image

from tasks.core.config import to_dict
from tasks.core.errors import UserError
from tasks.core.report import baselines, find_runs, group, pairs, write_report
from tasks.registry import load_task

HEADLINES = {"classification": ("top1", True), "super_resolution": ("psnr_y", True), "dqn": ("return_mean", True),
             "speech": ("wer", False)}
INFO = {"classification": {"num_classes": 10, "dataset": "fashion_mnist", "in_channels": 1},
        "super_resolution": {"scale": 2, "dataset": "skimage"}, "dqn": {"env_id": "CartPole-v1", "num_actions": 2},
        "speech": {"vocab": 29}}


def make_run(root: Path, name: str, task: str = "classification", value: float = 0.8, seed: int = 0,
             settings: dict[str, Any] | None = None, info: dict[str, Any] | None = None,
             extra_metrics: dict[str, float] | None = None, step: int | None = None) -> Path:
    """A finished run folder of ``task`` whose config is the task's defaults plus ``settings`` (dotted keys)."""
    cfg = OmegaConf.create(to_dict(load_task(task).config_class()))
    for key, val in {"seed": seed, "trainer.max_steps": 100, "trainer.run_name": name,
                     "trainer.runs_dir": str(root), **(settings or {})}.items():
        OmegaConf.update(cfg, key, val, force_add=True)
    run = root / task / name
    run.mkdir(parents=True)
    headline, higher = HEADLINES[task]
    (run / "run.json").write_text(json.dumps({"task": task, "headline": headline, "higher_is_better": higher}))
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (run / "data_info.json").write_text(json.dumps({**INFO[task], **(info or {})}))
    last = step if step is not None else int(cfg.trainer.max_steps)
    rows = [{"step": s, "train_seconds": s / 10, "params": 1000, f"val/{headline}": value * s / last,
             **{f"val/{k}": v for k, v in (extra_metrics or {}).items()}} for s in (last // 2, last)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "train.jsonl").write_text("".join(json.dumps({"step": s, "train/loss": 2.0 / s}) + "\n"
                                             for s in range(1, last + 1, max(1, last // 10))))
    Image.new("RGB", (4, 4)).save(run / "curves.png")
    return run


def rows_of(root: Path) -> list:
    return group(find_runs(root)[0])


def test_different_budgets_and_datasets_are_different_rows(tmp_path) -> None:
    make_run(tmp_path, "a", value=0.8)  # data.dataset=auto, resolved to fashion_mnist (data_info.json)
    make_run(tmp_path, "b", value=0.2, settings={"trainer.max_steps": 20})
    make_run(tmp_path, "c", value=0.9, settings={"data.dataset": "digits"}, info={"dataset": "digits"})
    make_run(tmp_path, "d", value=0.7, seed=1, info={"dataset": "digits"})  # auto, resolved to digits: c's row
    rows = rows_of(tmp_path)
    assert sorted(sorted(run.rel.split("/")[-1] for run in r.runs) for r in rows) == [["a"], ["b"], ["c", "d"]]
    by_run = {run.rel.split("/")[-1]: r for r in rows for run in r.runs}
    assert by_run["b"].differs == {"trainer.max_steps": 20, "data.dataset": "fashion_mnist"}
    assert by_run["c"].differs == {"trainer.max_steps": 100, "data.dataset": "digits"}
    assert by_run["c"].seeds == [0, 1]
    report = write_report(tmp_path).read_text()
    assert "`data.dataset`=fashion_mnist, `trainer.max_steps`=20" in report
    assert "`data.dataset`=digits, `trainer.max_steps`=100" in report


def test_seeds_of_one_config_make_one_row(tmp_path) -> None:
    values = {0: 0.80, 1: 0.84, 2: 0.83}
    for seed, value in values.items():  # excluded keys differ too: they must not split the row
        make_run(tmp_path, f"s{seed}", value=value, seed=seed,
                 settings={"trainer.threads": seed + 1, "trainer.log_every": 5 * (seed + 1),
                           "trainer.num_workers": seed, "trainer.progress": seed == 0})
    (row,) = rows_of(tmp_path)
    assert row.seeds == [0, 1, 2] and not row.repeated
    assert row.mean == pytest.approx(statistics.fmean(values.values()))
    assert row.std == pytest.approx(statistics.stdev(values.values()))
    report = write_report(tmp_path).read_text()
    assert "| classification | resnet20 | residual | top1 | 0.8233 ± 0.0208 | 3 (0, 1, 2) |" in report


def test_repeated_seeds_are_flagged_not_counted(tmp_path) -> None:
    make_run(tmp_path, "first", value=0.80, seed=0)
    make_run(tmp_path, "again", value=0.90, seed=0)
    make_run(tmp_path, "other", value=0.70, seed=1)
    (row,) = rows_of(tmp_path)
    assert row.seeds == [0, 1] and row.repeated == {0: 2}
    assert row.seed_values == pytest.approx([0.85, 0.70])  # the repeats are one sample: their mean
    report = write_report(tmp_path).read_text()
    assert "2 (0 x2, 1) **repeated seed" in report


def test_residual_and_plain_twins_match_only_on_equal_configs(tmp_path) -> None:
    make_run(tmp_path, "res", value=0.8, settings={"backbone.name": "resnet20"})
    make_run(tmp_path, "plain-name", value=0.6, settings={"backbone.name": "plain20"})
    make_run(tmp_path, "plain-switch", value=0.65, settings={"backbone.shortcut": "none"})
    make_run(tmp_path, "plain-short", value=0.3, settings={"backbone.name": "plain20", "trainer.max_steps": 50})
    make_run(tmp_path, "plain-lr", value=0.5, settings={"backbone.name": "plain20", "optim.lr": 0.05})
    make_run(tmp_path, "plain-deeper", value=0.5, settings={"backbone.name": "plain56"})
    rows = rows_of(tmp_path)
    name = {id(r): r.runs[0].rel.split("/")[-1] for r in rows}
    (res,) = [r for r in rows if r.variant == "residual"]
    assert sorted(name[id(t)] for t in res.twins) == ["plain-name", "plain-switch"]
    found = pairs(rows)
    assert sorted((name[id(p.residual)], name[id(p.plain)]) for p in found) == [("res", "plain-name"),
                                                                               ("res", "plain-switch")]
    assert all(p.verdict.startswith("residual better (1 seed") for p in found)
    out = tmp_path / "out"
    report = write_report(tmp_path, out).read_text()
    assert "## Residual minus plain" in report and "| classification | top1 | resnet20 0.8000" in report
    assert (out / "pairs.png").is_file()


def test_dqn_twins_by_shortcut_with_random_policy_baseline(tmp_path, monkeypatch) -> None:
    for seed in (0, 1):
        make_run(tmp_path, f"res{seed}", "dqn", value=200.0 + seed, seed=seed, settings={"eval.episodes": 3})
        make_run(tmp_path, f"plain{seed}", "dqn", value=100.0, seed=seed,
                 settings={"backbone.shortcut": "none", "eval.episodes": 3})
    out = tmp_path / "out"
    write_report(tmp_path, out)
    (pair,) = pairs(rows_of(tmp_path))
    assert pair.diff == pytest.approx(100.5)
    cache = json.loads((out / baselines.CACHE_FILE).read_text())
    measured = sorted((v["seed"], v["episodes"]) for v in cache.values())
    assert measured == [(0, 3), (1, 3)]  # once per env and seed, shared by the twins
    assert all(0 < v["return_mean"] < 100 for v in cache.values())  # random CartPole falls within ~20 steps

    def refuse(*args: Any) -> list[float]:
        raise AssertionError("measured again instead of read from baselines.json")

    monkeypatch.setattr(baselines, "_play_random", refuse)
    report = write_report(tmp_path, out).read_text()
    assert "random policy" in report


def test_chance_and_bicubic_baselines(tmp_path) -> None:
    make_run(tmp_path, "cls", value=0.5, info={"num_classes": 4})
    make_run(tmp_path, "sr", "super_resolution", value=30.0,
             extra_metrics={"psnr_y_bicubic": 28.5, "ssim_y": 0.91, "ssim_y_bicubic": 0.88})
    rows = {r.task: r for r in rows_of(tmp_path)}
    baselines.attach(list(rows.values()), tmp_path)
    assert rows["classification"].baseline.value == pytest.approx(0.25)
    assert rows["super_resolution"].baseline.name == "bicubic"
    assert rows["super_resolution"].baseline.value == pytest.approx(28.5)
    assert "ssim_y 0.9100 vs bicubic 0.8800" in rows["super_resolution"].baseline.note


def _links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)]+)\)", text) + re.findall(r"(?:href|src)='([^']+)'", text)


def test_links_are_relative_and_survive_moving(tmp_path, rsuite) -> None:
    runs, out = tmp_path / "lab" / "runs", tmp_path / "elsewhere" / "report"
    for seed in (0, 1):
        make_run(runs, f"r{seed}", seed=seed)
        make_run(runs, f"p{seed}", seed=seed, settings={"backbone.name": "plain20"})
    extra = tmp_path / "lab" / "study.png"
    Image.new("RGB", (4, 4)).save(extra)
    code, stdout, _ = rsuite("report", str(runs), "--out", str(out))
    assert code == 0 and stdout.strip() == str(out / "report.md")
    write_report(runs, out, extra_figures=[extra])  # again, over the CLI's report, with an experiment's figure
    moved = tmp_path / "shared" / "report"
    shutil.move(str(out), moved)
    shutil.rmtree(tmp_path / "lab")  # the runs are gone too: the report folder must hold all it shows
    md, page = (moved / "report.md").read_text(), (moved / "report.html").read_text()
    md_links = _links(md)
    assert {"headline.png", "pairs.png", "study.png", "run_curves/classification/r0/curves.png"} <= set(md_links)
    for link in md_links:
        assert not link.startswith(("/", "file:", "http")) and ".." not in link, link
        assert (moved / link).is_file(), link
    for link in _links(page):  # the page embeds its images and links only to anchors inside itself
        assert link.startswith(("data:image/png;base64,", "#")), link[:40]
    assert str(tmp_path) not in md and str(tmp_path) not in page
    assert len(re.findall(r"<img ", page)) == 3 + 4  # headline, pairs, study + four runs' curves


def test_broken_and_unfinished_folders_are_skipped_with_one_warning(tmp_path, capsys) -> None:
    make_run(tmp_path, "good")
    no_metrics = make_run(tmp_path, "no-metrics")
    (no_metrics / "metrics.jsonl").unlink()
    bad_config = make_run(tmp_path, "bad-config")
    (bad_config / "config.yaml").write_text("seed: [unclosed\n")
    bad_meta = make_run(tmp_path, "bad-meta")
    (bad_meta / "run.json").write_text("{not json")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "metrics.jsonl").write_text('{"step": 1, "val/acc": 0.5}\n')
    make_run(tmp_path, "killed", step=40)  # trainer.max_steps=100
    capsys.readouterr()
    report = write_report(tmp_path).read_text()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 5 and all(line.startswith("warning: skipped ") for line in lines)
    for folder, reason in ((no_metrics, "no evaluations"), (bad_config, "config.yaml is unreadable"),
                           (bad_meta, "run.json is unreadable"), (foreign, "no run.json"), (tmp_path / "classification"
                                                                                             / "killed", "unfinished")):
        assert sum(str(folder) in line and reason in line for line in lines) == 1, (folder, lines)
    assert "1 runs in 1 rows; 5 folders skipped" in report and "`classification/killed`: unfinished" in report


def test_a_run_still_training_is_skipped_a_killed_claim_is_not(tmp_path, capsys) -> None:
    training = make_run(tmp_path, "training", seed=0)
    (training / ".claim").write_text(f"{os.getpid()}\n")  # a live process holds it
    killed = make_run(tmp_path, "killed-after-finishing", seed=1)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (killed / ".claim").write_text(dead.stdout)
    runs, skipped = find_runs(tmp_path)
    assert [r.rel for r in runs] == ["classification/killed-after-finishing"]
    assert skipped == [("classification/training", "still training (the process in its .claim is alive)")]


def test_no_runs_is_a_user_error(tmp_path) -> None:
    with pytest.raises(UserError, match="no finished run folders"):
        write_report(tmp_path)
    with pytest.raises(UserError, match="is not a folder"):
        write_report(tmp_path / "missing")


def test_report_json_lists_rows_and_html_is_self_contained(tmp_path) -> None:
    make_run(tmp_path, "a", seed=0, value=0.5)
    make_run(tmp_path, "b", seed=1, value=0.7)
    out = write_report(tmp_path).parent
    data = json.loads((out / "report.json").read_text())
    (row,) = data["rows"]
    assert row["seeds"] == [0, 1] and row["baseline"]["name"] == "chance"
    assert {r["folder"] for r in row["runs"]} == {"classification/a", "classification/b"}
    page = (out / "report.html").read_text()
    assert "<link" not in page and "<script" not in page and "http" not in page
    assert yaml.safe_load((tmp_path / "classification" / "a" / "config.yaml").read_text())["seed"] == 0
