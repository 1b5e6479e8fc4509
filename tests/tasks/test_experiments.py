"""The residual-vs-plain machinery on a tiny budget, and the cross-domain report."""

import json

import pytest

import tasks
from tasks import experiments
from tasks.core.errors import UserError
from tasks.core.report import write_report
from tasks.registry import load_task


def test_degradation_writes_figures_table_and_report(tiny_cls, tmp_path) -> None:
    data = [o for o in tiny_cls if o.startswith(("data.", "trainer.progress", "trainer.threads"))]
    root = experiments.degradation([20, 32], [0], steps=4, out=tmp_path / "deg", overrides=data)
    for name in ("degradation.png", "gradients.png", "degradation.md", "report/report.md", "report/report.html"):
        assert (root / name).is_file(), name
    table = (root / "degradation.md").read_text()
    for net in ("residual20", "plain20", "residual32", "plain32"):
        assert f"| {net} | 1 |" in table
    result = json.loads((root / "degradation.json").read_text())
    assert len(result["plain32"]["grad_init"]) == 15  # one norm per block: 3 stages x 5 blocks
    report = (root / "report" / "report.md").read_text()
    assert "Residual minus plain" in report and "| classification | top1 |" in report


def test_degradation_rejects_bad_depths(tmp_path) -> None:
    with pytest.raises(UserError, match="not valid"):
        experiments.degradation([21], [0], steps=1, out=tmp_path)


def test_report_over_several_tasks(tiny_cls, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RSUITE_CACHE", str(tmp_path / "cache"))
    runs = tmp_path / "runs"
    cls = load_task("classification")
    for variant, shortcut in (("res", "identity"), ("plain", "none")):
        tasks.train(cls, [*tiny_cls, f"backbone.shortcut={shortcut}", f"trainer.run_name={variant}",
                          "trainer.max_steps=2", "trainer.eval_every=2"])
    tasks.train("detection", [
        "data.num_train=4", "data.num_val=2", "data.image_size=64", "data.min_object_size=12",
        "data.max_object_size=24", "data.batch_size=2", "model.fpn_channels=16", "trainer.max_steps=1",
        "trainer.eval_every=1", "trainer.progress=false", f"trainer.runs_dir={runs}", "trainer.run_name=d"])
    report = write_report(runs).read_text()
    assert "| classification | resnet20 | residual | top1 |" in report
    assert "| classification | resnet20 | plain | top1 |" in report
    assert "| detection | resnet18 | residual | map_50 |" in report
    assert "| classification | top1 | resnet20" in report  # the residual-minus-plain line
