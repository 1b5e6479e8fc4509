"""Plugins through the CLI: the example plugin trains in two tasks, --plugin and RSUITE_PLUGINS,
plugin tasks, broken plugins, and runs whose plugin has gone missing (exit 2, naming it)."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import tasks
from backbones import registry as backbone_registry
from tasks import plugins as task_plugins
from tests.plugin_support import add_distribution, add_example_plugin, isolated_plugins

TP_ADHOC = '''
from backbones import register
from backbones.resnet import CifarResNet

register("tp_adhoc_net", "image", block="basic", depth=8)(CifarResNet)
'''

TP_TASK = '''
from pathlib import Path

import tasks.classification.task as classification
from tasks.core.task import recipes_dir


class TinyTask(classification.ClassificationTask):
    """A task of one's own: here classification under another name, reusing its recipes."""

    name = "tp_classification"

    def recipe_folder(self) -> Path:
        return recipes_dir() / "classification"


TASK = TinyTask()
'''

DETECTION = ["model.arch=fasterrcnn", "data.num_train=8", "data.num_val=4", "data.image_size=64",
             "data.min_object_size=12", "data.max_object_size=24", "data.batch_size=4", "model.fpn_channels=32",
             "trainer.max_steps=2", "trainer.eval_every=2", "trainer.log_every=1", "trainer.progress=false",
             "trainer.run_name=r", "trainer.threads=1"]


@pytest.fixture(autouse=True)
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("RSUITE_PLUGINS", raising=False)
    with isolated_plugins(monkeypatch):
        yield


def _plugins_of(run: Path) -> list[dict]:
    return json.loads((run / "run.json").read_text())["plugins"]


def _uninstall(path: Path, module: str, *names: str) -> None:
    """As if the plugin were removed: off sys.path, out of sys.modules, its names unregistered."""
    sys.path.remove(str(path))
    sys.modules.pop(module, None)
    importlib.invalidate_caches()
    for name in names:
        backbone_registry._REGISTRY.pop(name)
    task_plugins._requested.clear()


def _one_error(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_installed_plugin_trains_classification_and_evaluates(rsuite, tiny_cls, tmp_path, monkeypatch) -> None:
    distribution = add_example_plugin(tmp_path / "site", monkeypatch)
    code, out, err = rsuite("train", "classification", *tiny_cls, "backbone.name=rezero20")
    assert code == 0, err
    run = Path(out.strip().splitlines()[-1])
    assert _plugins_of(run) == [{"name": "rezero", "kind": "entry_point", "module": "rsuite_rezero",
                                 "group": "residual_suite.backbones", "distribution": distribution,
                                 "version": "0.1.0"}]
    code, out, err = rsuite("evaluate", str(run), "--json")
    assert code == 0 and json.loads(out)["backbone"] == "rezero20", err


def test_evaluate_of_a_run_whose_installed_plugin_is_gone_exits_2_naming_it(rsuite, tiny_cls, tmp_path,
                                                                           monkeypatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "tp_adhoc.py").write_text(TP_ADHOC)
    add_distribution(site, "tp-adhoc", "1.2", {"residual_suite.backbones": {"adhoc": "tp_adhoc"}}, monkeypatch)
    code, out, err = rsuite("train", "classification", *tiny_cls, "backbone.name=tp_adhoc_net",
                            "trainer.max_steps=2", "trainer.eval_every=2")
    assert code == 0, err
    run = Path(out.strip().splitlines()[-1])
    _uninstall(site, "tp_adhoc", "tp_adhoc_net")  # its dist-info goes with it
    line = _one_error(*rsuite("evaluate", str(run))[::2])
    assert "plugin 'adhoc' (tp-adhoc 1.2), which is not installed here" in line and "pip install tp-adhoc" in line


def test_example_plugin_trains_detection(rsuite, tmp_path, monkeypatch) -> None:
    add_example_plugin(tmp_path / "site", monkeypatch)
    monkeypatch.setenv("RSUITE_CACHE", str(tmp_path / "cache"))
    code, out, err = rsuite("train", "detection", *DETECTION, "backbone.name=rezero_resnet18",
                            f"trainer.runs_dir={tmp_path / 'runs'}")
    assert code == 0, err
    run = Path(out.strip().splitlines()[-1])
    assert _plugins_of(run)[0]["name"] == "rezero"
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 2


def test_plugin_option_imports_a_module_recorded_in_the_run(rsuite, tiny_cls, tmp_path, monkeypatch) -> None:
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "tp_adhoc.py").write_text(TP_ADHOC)
    monkeypatch.syspath_prepend(str(code_dir))
    code, _, err = rsuite("train", "classification", *tiny_cls, "backbone.name=tp_adhoc_net", "trainer.max_steps=2")
    assert code == 2 and "unknown backbone 'tp_adhoc_net'" in err  # not imported without --plugin
    code, out, err = rsuite("--plugin", "tp_adhoc", "train", "classification", *tiny_cls,
                            "backbone.name=tp_adhoc_net", "trainer.max_steps=2", "trainer.eval_every=2")
    assert code == 0, err
    run = Path(out.strip().splitlines()[-1])
    assert [(p["kind"], p["name"]) for p in _plugins_of(run)] == [("module", "tp_adhoc")]

    # evaluate imports it again by itself (a fresh process has not imported it)
    _uninstall(code_dir, "tp_adhoc", "tp_adhoc_net")
    monkeypatch.syspath_prepend(str(code_dir))
    assert rsuite("evaluate", str(run))[0] == 0
    # gone for good: one line naming the module
    _uninstall(code_dir, "tp_adhoc", "tp_adhoc_net")
    line = _one_error(*rsuite("evaluate", str(run))[::2])
    assert "plugin 'tp_adhoc'" in line and "cannot be imported here" in line and "PYTHONPATH" in line
    line = _one_error(*rsuite("predict", str(run), "x.png")[::2])
    assert "plugin 'tp_adhoc'" in line
    line = _one_error(*rsuite("train", "classification", "--resume", str(run))[::2])
    assert "plugin 'tp_adhoc'" in line


def test_env_plugins_and_a_broken_one_warn_once_and_builtins_work(rsuite, tmp_path, monkeypatch) -> None:
    (tmp_path / "tp_adhoc.py").write_text(TP_ADHOC)
    (tmp_path / "tp_broken.py").write_text("import math\nraise ImportError('tp_broken needs a missing library')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("RSUITE_PLUGINS", "tp_broken, tp_adhoc")
    code, out, err = rsuite("--plugin", "tp_broken", "train", "--help")
    assert code == 0 and "classification" in out
    assert "'tp_adhoc': tp_adhoc_net" in out  # the help lists plugins and what they register
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "plugin 'tp_broken' failed to load" in warnings[0]
    assert "tp_broken needs a missing library" in warnings[0]
    code, out, err = rsuite("recipes", "classification")  # built-ins work; the broken plugin is not retried
    assert code == 0 and "fashion_mnist_resnet20" in out and err == ""


def test_task_plugin_from_an_entry_point_trains(rsuite, tiny_cls, tmp_path, monkeypatch) -> None:
    (tmp_path / "tp_task.py").write_text(TP_TASK)
    add_distribution(tmp_path, "tp-task", "0.3", {"residual_suite.tasks": {"tiny": "tp_task:TASK"}}, monkeypatch)
    code, out, _ = rsuite("train", "--help")
    assert code == 0 and "tp_classification" in out and "task tp_classification" in out
    assert tasks.task_names()[-1] == "tp_classification"
    code, out, err = rsuite("train", "tp_classification", *tiny_cls, "trainer.max_steps=2", "trainer.eval_every=2")
    assert code == 0, err
    run = Path(out.strip().splitlines()[-1])
    meta = json.loads((run / "run.json").read_text())
    assert meta["task"] == "tp_classification"
    assert [(p["name"], p["group"], p["version"]) for p in meta["plugins"]] == [("tiny", "residual_suite.tasks",
                                                                                "0.3")]
    assert rsuite("evaluate", str(run))[0] == 0
    line = _one_error(*rsuite("predict", str(run), "x.png")[::2])
    assert "task 'tp_classification' has no predict module" in line
