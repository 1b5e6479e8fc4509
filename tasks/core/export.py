"""Export a model to ONNX, TorchScript or a ``torch.export`` program, and check the file against PyTorch.

A task describes what leaves the suite with an :class:`ExportSpec` (the module, its input
and output names, which axes vary) and supplies real inputs from its validation data
(``Task.example_inputs``). :func:`export_module` writes the file with PyTorch's own
exporters, reloads it (onnxruntime on CPU for ONNX, ``torch.jit.load``,
``torch.export.load``), runs it on every example and compares with the PyTorch module. The
largest absolute difference is stored beside the file in ``<file>.json`` with the format,
opset, input names and shapes and the tolerance; above the tolerance the export fails.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import UserError

FORMATS = ("onnx", "torchscript", "exported")
#: file name endings per format (torch.export's convention is .pt2)
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "exported": ".pt2"}
DEFAULT_OPSET = 18  # antialiased Resize (bicubic SR residual) needs 18

Outputs = tuple[torch.Tensor, ...]


@dataclass
class ExportSpec:
    """What a task exports: the module, named inputs/outputs, the axes that vary, the tolerance.

    ``dynamic`` maps an input name to ``{axis: name}`` for the axes every export leaves free
    (an SR image's height and width, an utterance's frames); ``--dynamic-batch`` adds axis 0
    of every input when ``batch_axis``. ``compare`` replaces the plain max-abs difference of
    the outputs (detections are matched as sets). ``legacy_onnx`` uses the TorchScript-based
    ONNX exporter, the one torchvision's detectors support.
    """

    module: nn.Module
    input_names: list[str]
    output_names: list[str]
    tolerance: float
    dynamic: dict[str, dict[int, str]] = field(default_factory=dict)
    formats: tuple[str, ...] = FORMATS
    batch_axis: bool = True
    legacy_onnx: bool = False
    compare: Callable[[Outputs, Outputs], float] | None = None
    refusal: str = ""  # why the formats not in ``formats`` are refused (one line)


def as_outputs(value: Any) -> Outputs:
    """A module's result as a flat tuple of tensors."""
    if isinstance(value, torch.Tensor):
        return (value,)
    if isinstance(value, (list, tuple)):
        return tuple(t for v in value for t in as_outputs(v))
    raise TypeError(f"exported modules return tensors, not {type(value).__name__}")


def max_abs_diff(reference: Outputs, got: Outputs) -> float:
    """Largest absolute difference over all outputs; ``inf`` when shapes or counts differ."""
    if len(reference) != len(got):
        return float("inf")
    worst = 0.0
    for r, g in zip(reference, got):
        g = torch.as_tensor(g)
        if tuple(r.shape) != tuple(g.shape):
            return float("inf")
        if r.numel():
            worst = max(worst, float((r.double() - g.double()).abs().max()))
    return worst


def axes_of(spec: ExportSpec, dynamic_batch: bool) -> dict[str, dict[int, str]]:
    """Every input's free axes: the spec's, plus axis 0 as ``batch`` when asked for."""
    axes = {name: dict(spec.dynamic.get(name, {})) for name in spec.input_names}
    if dynamic_batch:
        if not spec.batch_axis:
            raise UserError("this model takes one input at a time; drop --dynamic-batch")
        for name in spec.input_names:
            axes[name] = {0: "batch", **axes[name]}
    return axes


def _torch_export_shapes(spec: ExportSpec, axes: dict[str, dict[int, str]]) -> tuple[Any, ...]:
    """``dynamic_shapes`` for torch.export: one shared ``batch`` dim, the other free axes ``Dim.DYNAMIC``.

    ``Dim.DYNAMIC`` lets torch.export find each axis' valid range itself (a strided conv needs
    at least a few frames) and fails if the model cannot keep the axis free.
    """
    from torch.export import Dim

    batch = Dim("batch", min=1, max=1 << 16)
    return tuple({axis: batch if label == "batch" else Dim.DYNAMIC for axis, label in axes[name].items()} or None
                 for name in spec.input_names)


def _name_onnx_axes(path: Path, axes: dict[str, dict[int, str]]) -> None:
    """Give the ONNX file's free input axes our names (``batch``, ``height``, ``time``) instead of ``s24``."""
    import onnx

    model = onnx.load(str(path))
    for graph_input in model.graph.input:
        for axis, label in axes.get(graph_input.name, {}).items():
            graph_input.type.tensor_type.shape.dim[axis].dim_param = label
    onnx.save(model, str(path))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep the exporters' progress prints and warnings off stdout (whose last line is the file)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def onnx_session(path: str | Path) -> Any:
    """An onnxruntime CPU session for ``path`` (one thread per torch thread)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session: Any, inputs: Sequence[torch.Tensor]) -> Outputs:
    """Run an onnxruntime session on torch tensors; outputs come back as tensors."""
    names = [i.name for i in session.get_inputs()]
    feed = {n: t.detach().cpu().numpy() for n, t in zip(names, inputs)}
    return tuple(torch.from_numpy(np.asarray(o)) for o in session.run(None, feed))


def _write(spec: ExportSpec, example: tuple[torch.Tensor, ...], fmt: str, out: Path,
           axes: dict[str, dict[int, str]], opset: int) -> Callable[..., Outputs]:
    """Write ``out`` in ``fmt`` and return a function running the reloaded file."""
    module = spec.module
    if fmt == "onnx":
        if spec.legacy_onnx:  # torchvision detectors: the TorchScript-based exporter (dynamo cannot trace NMS)
            outputs = {name: {0: "detections"} for name in spec.output_names}
            torch.onnx.export(module, example, str(out), dynamo=False, input_names=spec.input_names,
                              output_names=spec.output_names, opset_version=opset,
                              dynamic_axes={**{k: v for k, v in axes.items() if v}, **outputs})
        else:
            torch.onnx.export(module, example, str(out), dynamo=True, input_names=spec.input_names,
                              output_names=spec.output_names, opset_version=opset, external_data=False, verbose=False,
                              dynamic_shapes=_torch_export_shapes(spec, axes))
            _name_onnx_axes(out, axes)
        session = onnx_session(out)
        return lambda *inputs: run_onnx(session, inputs)
    if fmt == "torchscript":
        traced = torch.jit.trace(module, example, check_trace=False, strict=False)
        traced.save(str(out))
        loaded = torch.jit.load(str(out), map_location="cpu")
        return lambda *inputs: as_outputs(loaded(*inputs))
    program = torch.export.export(module, example, dynamic_shapes=_torch_export_shapes(spec, axes))
    torch.export.save(program, str(out))
    reloaded = torch.export.load(str(out)).module()
    return lambda *inputs: as_outputs(reloaded(*inputs))


def _cause(err: BaseException) -> str:
    """The informative line of an exporter's error (torch.onnx wraps the real one under a summary)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "## Exception summary" in lines:
        lines = lines[lines.index("## Exception summary") + 1:]
    elif err.__cause__ is not None:
        return _cause(err.__cause__)
    return f"{type(err).__name__}: {(lines or [''])[0][:200]}"


def shape_record(shape: Sequence[int], free: dict[int, str]) -> list[int | str]:
    """An input's shape with its free axes named (``["batch", 1, 28, 28]``)."""
    return [free.get(i, int(n)) for i, n in enumerate(shape)]


def export_module(spec: ExportSpec, examples: list[tuple[torch.Tensor, ...]], fmt: str, out: Path, *,
                  dynamic_batch: bool = False, opset: int | None = None,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``spec.module`` to ``out`` as ``fmt``, check it on ``examples`` and write ``<out>.json``.

    The first example is what the exporter traces; every example (real validation inputs,
    differing along the free axes where the task has them) is run through the reloaded file
    and through PyTorch. Returns the record written to ``<out>.json``.
    """
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt} is not valid; choose one of: {', '.join(FORMATS)}")
    if fmt not in spec.formats:
        raise UserError(spec.refusal or f"this model exports only as {', '.join(spec.formats)}; use --format "
                        f"{spec.formats[0]}")
    if opset is not None and fmt != "onnx":
        raise UserError(f"--opset applies to --format onnx only, not {fmt}")
    opset = opset or DEFAULT_OPSET
    axes = axes_of(spec, dynamic_batch)
    module = spec.module.eval().cpu()
    examples = [tuple(t.cpu() for t in ex) for ex in examples]
    with torch.no_grad():
        references = [as_outputs(module(*ex)) for ex in examples]
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with quiet(), torch.no_grad():
            run = _write(spec, examples[0], fmt, out, axes, opset)
            results = [run(*ex) for ex in examples]
    except UserError:
        raise
    except Exception as err:
        out.unlink(missing_ok=True)
        raise UserError(f"--format {fmt} export failed ({_cause(err)}); "
                        f"try another --format ({', '.join(f for f in spec.formats if f != fmt) or 'none'})") from None
    compare = spec.compare or max_abs_diff
    diffs = [compare(r, g) for r, g in zip(references, results)]
    worst = max(diffs)
    record = {
        "format": fmt, "opset": opset if fmt == "onnx" else None, "input_names": spec.input_names,
        "input_shapes": [shape_record(t.shape, axes[n]) for n, t in zip(spec.input_names, examples[0])],
        "output_names": spec.output_names, "max_abs_diff": worst, "tolerance": spec.tolerance,
        "checked": [[list(t.shape) for t in ex] for ex in examples], "torch": torch.__version__, **(extra or {}),
    }
    if fmt == "onnx":
        import onnxruntime

        record["onnxruntime"] = onnxruntime.__version__
    if not worst <= spec.tolerance:  # NaN fails too
        out.unlink(missing_ok=True)
        raise UserError(f"export self-check failed: max_abs_diff {worst:.3g} > tolerance {spec.tolerance:g} over "
                        f"{len(examples)} validation inputs; the {fmt} file was removed")
    json_path(out).write_text(json.dumps(record, indent=1, default=str) + "\n")
    return record


def json_path(out: Path) -> Path:
    """Where an export's record lives: ``<file>.json``."""
    return out.with_name(out.name + ".json")


def match_detections(reference: Outputs, got: Outputs) -> float:
    """Distance between two detection sets ``(boxes, labels, scores)``, order-free.

    Every detection is paired with the nearest one of the same label in the other set
    (largest absolute difference over box corners and score); the result is the worst pair
    in either direction (a symmetric Hausdorff distance), ``inf`` when counts or labels differ.
    Near-equal scores may swap places between runtimes, so a plain element-wise difference
    would report a reordering as an error.
    """
    (rb, rl, rs), (gb, gl, gs) = reference, tuple(torch.as_tensor(t) for t in got)
    if len(rb) != len(gb):
        return float("inf")
    if not len(rb):
        return 0.0
    a = torch.cat([rb.double(), rs.double()[:, None]], 1)
    b = torch.cat([gb.double(), gs.double()[:, None]], 1)
    cost = (a[:, None, :] - b[None, :, :]).abs().amax(-1)
    cost[rl[:, None] != gl[None, :]] = float("inf")
    return float(max(cost.amin(1).max(), cost.amin(0).max()))
