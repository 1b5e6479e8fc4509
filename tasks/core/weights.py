"""``backbone.weights=SOURCE``: start a run's backbone from weights on disk (never downloaded).

A source is one of:

* a torchvision or timm ResNet state dict (``.pth``/``.pt``/``.bin``; timm's ResNets use
  torchvision's names, which our ImageNet-style nets keep; wrappers such as ``{"state_dict":
  ...}``, ``{"model": ...}`` and prefixes such as ``module.`` are unwrapped);
* a ``.safetensors`` file of either;
* a run folder of **any** task (or its ``checkpoints/*.pt``) whose backbone has the same
  architecture: a classification run's resnet18 becomes the start of detection, say.

Loading is strict on the backbone's keys and drops everything else (heads, FPN), through
:func:`backbones.load_backbone_weights`; when only the input channels differ (grayscale
Fashion-MNIST to RGB scenes) the first convolution is adapted. The trainer calls
:func:`load_pretrained` on a fresh model, before EMA copies or DQN target networks exist, and
the run folder's ``run.json`` records what was loaded (``"weights"``); the log says so too.
Every file is read with ``weights_only=True`` (or by safetensors), so no code is executed.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

import backbones

from .checkpoint import FORMAT, load_checkpoint
from .config import BackboneConfig
from .errors import UserError

#: wrappers training scripts put around a state dict (timm's train.py, torchvision's references)
WRAPPERS = ("state_dict", "model", "module")


def find_backbone(model: nn.Module) -> tuple[str, backbones.Backbone]:
    """The registry backbone inside a task's model and its attribute path (``backbone.body``, ...)."""
    for name, module in model.named_modules():
        if isinstance(module, backbones.Backbone):
            return name, module
    raise UserError(f"{type(model).__name__} holds no registry backbone, so backbone.weights cannot apply")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tensors(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensor mapping inside a loaded file, unwrapping training-script wrappers."""
    for _ in range(3):
        if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in WRAPPERS if isinstance(obj.get(k), Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"backbone.weights={str(path)!r} holds no state dict; save one with "
                        "torch.save(model.state_dict(), path)")
    return {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _checkpoint(path: Path, ckpt: dict[str, Any], backbone_name: str) -> tuple[dict[str, torch.Tensor], dict]:
    """The model weights of a run checkpoint, after checking it trained the same backbone family."""
    source = ckpt.get("config", {}).get("backbone", {})
    trained = source.get("name")
    if trained != backbone_name:
        raise UserError(f"backbone.weights={str(path)!r} is a {ckpt.get('task')} run of backbone {trained!r}, "
                        f"but this run builds {backbone_name!r}; set backbone.name={trained} or pick a "
                        f"{backbone_name} run")
    record = {"format": "run", "task": ckpt.get("task"), "backbone": trained, "step": ckpt.get("step")}
    options = {k: v for k, v in source.items() if k not in ("name", "weights", "trainable_stages", "frozen_bn")
               and v not in (None, {}, "")}
    if options:
        record["backbone_options"] = options
    return _tensors(ckpt["model"], path), record


def read_weights(source: str | Path, backbone_name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict of ``source`` and a record of where it came from (for ``run.json``)."""
    path = Path(source).expanduser()
    if path.is_dir():
        folder = path / "checkpoints"
        found = next((p for p in (folder / "best.pt", folder / "last.pt") if p.is_file()), None)
        if found is None:
            raise UserError(f"backbone.weights={str(path)!r} is a folder without checkpoints/best.pt or last.pt; "
                            "give a run folder printed by `rsuite train`, or a weights file")
        state, record = _checkpoint(path, load_checkpoint(found), backbone_name)
        return state, {"source": str(path.resolve()), **record, "file": found.name, "sha256": _sha256(found)}
    if not path.is_file():
        raise UserError(f"backbone.weights={str(path)!r} does not exist; give a local .pth/.safetensors file or a "
                        "run folder (nothing is downloaded)")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state, record = load_file(str(path), device="cpu"), {"format": "safetensors"}
        except (SafetensorError, OSError) as err:
            raise UserError(f"backbone.weights={str(path)!r} is not a readable safetensors file ({err})") from None
    else:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:120]
            raise UserError(f"backbone.weights={str(path)!r} is not a safe state dict file ({first}); save one with "
                            "torch.save(model.state_dict(), path) or safetensors") from None
        if isinstance(loaded, Mapping) and loaded.get("format") == FORMAT:
            state, record = _checkpoint(path, dict(loaded), backbone_name)
        else:
            state, record = _tensors(loaded, path), {"format": "state_dict"}
    return state, {"source": str(path.resolve()), **record, "sha256": _sha256(path)}


def load_pretrained(model: nn.Module, cfg: BackboneConfig) -> dict[str, Any] | None:
    """Load ``cfg.weights`` into the backbone inside ``model``; the record for ``run.json`` (``None``: none given)."""
    if not cfg.weights:
        if cfg.trainable_stages == 0:
            print("warning: backbone.trainable_stages=0 freezes a randomly initialised backbone; "
                  "give backbone.weights=PATH", file=sys.stderr)
        return None
    where, body = find_backbone(model)
    state, record = read_weights(cfg.weights, cfg.name)
    try:
        report = backbones.load_backbone_weights(body, state)
    except ValueError as err:
        raise UserError(f"backbone.weights={cfg.weights}: {err}") from None
    print(f"backbone.weights: {report.summary()} of {cfg.weights} ({record['format']}) into "
          f"{where or 'the model'}", file=sys.stderr)
    return {**record, "loaded": report.loaded, "dropped": len(report.dropped), "prefix": report.prefix,
            "adapted": report.adapted}
