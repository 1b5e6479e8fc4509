"""The `rsuite` command line: every subcommand, its output contract and its error paths."""

import json
import subprocess
import sys

import pytest


def test_train_evaluate_predict_report(rsuite, tiny_cls, tmp_path) -> None:
    code, out, _ = rsuite("train", "classification", *tiny_cls)
    assert code == 0
    run_dir = out.strip().splitlines()[-1]
    assert run_dir.endswith("runs/classification/t")

    code, out, _ = rsuite("evaluate", run_dir, "--json")
    metrics = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and {"top1", "top5", "loss"} <= set(metrics) and 0 <= metrics["top1"] <= 1

    from PIL import Image

    image = tmp_path / "item.png"
    Image.new("L", (28, 28), 128).save(image)
    code, out, _ = rsuite("predict", run_dir, str(image), "--out", str(tmp_path / "p.json"))
    assert code == 0 and json.loads(out.splitlines()[0])["class"]
    assert json.loads((tmp_path / "p.json").read_text())[0]["file"] == str(image)

    code, out, _ = rsuite("report", str(tmp_path / "runs"))
    report = (tmp_path / "runs" / "report" / "report.md").read_text()
    assert code == 0 and "| classification | resnet20 | residual | top1 |" in report
    for name in ("headline.png", "report.html", "report.json"):
        assert (tmp_path / "runs" / "report" / name).is_file()


def test_backbones_table(rsuite) -> None:
    code, out, _ = rsuite("backbones", "--modality", "vector")
    assert code == 0 and "resmlp" in out and "resnet50" not in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "clasification"], "did you mean classification"),
        (["train", "classification", "trainer.nope=1"], "unknown key 'trainer.nope'"),
        (["train", "classification", "--config", "/nonexistent.yaml"], "does not exist"),
        (["train", "classification", "backbone.name=resnet5O", "trainer.max_steps=1"], "close matches"),
        (["train", "classification", "backbone.name=resmlp"], "vector backbone"),
        (["evaluate", "/nonexistent/run"], "no checkpoints"),
        (["predict", "/nonexistent/run", "x.png"], "no checkpoints"),
        (["report", "/nonexistent/runs"], "not a folder"),
    ],
)
def test_errors_exit_2_with_one_line(rsuite, argv, needle, tmp_path) -> None:
    code, _, err = rsuite(*argv, *([f"trainer.runs_dir={tmp_path}"] if argv[0] == "train" else []))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]


def test_predict_missing_image_is_one_line(rsuite, tiny_cls, tmp_path) -> None:
    _, out, _ = rsuite("train", "classification", *tiny_cls)
    code, _, err = rsuite("predict", out.strip().splitlines()[-1], str(tmp_path / "missing.png"))
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1


def test_console_script_and_module_entrypoint_agree(tiny_cls) -> None:
    # `python -m tasks.classification.train` is `rsuite train classification`: same last stdout line.
    result = subprocess.run([sys.executable, "-m", "tasks.classification.train", *tiny_cls, "trainer.max_steps=2",
                             "trainer.eval_every=2"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1].endswith("runs/classification/t")
    bad = subprocess.run([sys.executable, "-m", "tasks.cli", "train", "nope"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: unknown task")
    assert "Traceback" not in bad.stderr
