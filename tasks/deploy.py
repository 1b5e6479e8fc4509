"""After training: export a run's model, and predict from Python with a model loaded once.

>>> from tasks import Predictor                                                   # doctest: +SKIP
>>> p = Predictor.from_run("runs/classification/<run>", device="cpu")             # doctest: +SKIP
>>> p("shirt.png")["class"], [r["class"] for r in p([image_array, chw_tensor])]   # doctest: +SKIP
>>> tasks.export("runs/classification/<run>", "onnx")                           # doctest: +SKIP

``Predictor`` returns what ``rsuite predict`` prints for every task (``rsuite predict`` is a
thin layer over it); :meth:`Predictor.from_export` wraps an exported ONNX file with the same
pre- and post-processing, so a deployed model can be checked against the run it came from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .api import load_run
from .core.config import from_dict, to_dict
from .core.errors import UserError
from .core.export import SUFFIXES, export_module, json_path, onnx_session
from .core.predict import TaskPredictor
from .core.task import Task
from .registry import load_task


class Predictor:
    """A task's model (from a run folder or an ONNX file) with its pre- and post-processing, loaded once.

    ``p(x)`` takes one input (a path, a PIL image, an HWC uint8 array, a CHW tensor; an audio
    path or waveform for speech; an observation for DQN) and returns one result dict; a list
    (or an array/tensor with a leading batch axis) returns a list. Task-specific extras are
    reached through the task predictor (``p.play(seeds)`` for DQN, ``p.threshold`` for detection).
    """

    def __init__(self, task: Task, cfg: Any, info: dict[str, Any], impl: TaskPredictor, source: Path) -> None:
        self.task, self.cfg, self.info, self.impl, self.source = task, cfg, info, impl, Path(source)

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "cpu", which: str = "best", **options: Any) -> Predictor:
        """The run's ``best.pt`` (or ``which``) on ``device``; ``options`` are the task's (``top_k``, ``threshold``)."""
        run = load_run(run_dir, which=which, device=device)
        impl = run.task.make_predictor(run.cfg, run.info, run.device, model=run.model, **options)
        return cls(run.task, run.cfg, run.info, impl, run.dir)

    @classmethod
    def from_export(cls, path: str | Path, **options: Any) -> Predictor:
        """An ONNX file written by ``rsuite export`` (its ``<file>.json`` says task, config and data info)."""
        path = Path(path)
        meta_path = json_path(path)
        if not path.is_file() or not meta_path.is_file():
            raise UserError(f"{path} (with {meta_path.name} beside it) does not exist; pass a file written by "
                            "`rsuite export --format onnx`")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != "onnx":
            raise UserError(f"{path} is a {meta.get('format')} export; Predictor.from_export reads ONNX files (load "
                            "TorchScript with torch.jit.load, torch.export programs with torch.export.load)")
        task = load_task(str(meta["task"]))
        cfg = from_dict(task.config_class, meta["config"])
        impl = task.make_predictor(cfg, meta["info"], torch.device("cpu"), session=onnx_session(path), **options)
        return cls(task, cfg, meta["info"], impl, path)

    def __call__(self, x: Any) -> dict[str, Any] | list[dict[str, Any]]:
        items, batched = self.impl.split(x)
        results = self.impl(items)
        return results if batched else results[0]

    def __getattr__(self, name: str) -> Any:
        if name == "impl":  # not set yet (during unpickling, say)
            raise AttributeError(name)
        return getattr(self.impl, name)

    def __repr__(self) -> str:
        return f"Predictor({self.task.name}, {self.source})"


def export(run_dir: str | Path, format: str = "onnx", out: str | Path | None = None, dynamic_batch: bool = False,
           opset: int | None = None) -> tuple[Path, dict[str, Any]]:
    """Export the model of ``run_dir`` as ``format`` (onnx, torchscript, exported) and check it.

    The file goes to ``out`` (default ``RUN_DIR/export/model<suffix>``) with ``<file>.json``
    beside it; the check runs the reloaded file on real validation inputs against PyTorch and
    fails above the task's tolerance. Returns the file and its record.
    """
    run = load_run(run_dir, device="cpu")
    spec = run.task.export_spec(run.cfg, run.model, run.info)
    if format in spec.formats:
        examples = run.task.example_inputs(run.cfg, run.info, 2 if dynamic_batch else 1)
        if dynamic_batch:  # and a batch of another size, through the same file
            examples += run.task.example_inputs(run.cfg, run.info, 1)[:1]
    else:
        examples = []  # export_module refuses the format before using any input
    target = Path(out) if out else run.dir / "export" / f"model{SUFFIXES.get(format, '')}"
    extra = {"task": run.task.name, "run": str(run.dir), "step": run.checkpoint.get("step"), "config": to_dict(run.cfg),
             "info": run.info}
    record = export_module(spec, examples, format, target, dynamic_batch=dynamic_batch, opset=opset, extra=extra)
    return target, record
