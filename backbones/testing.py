"""``check_contract``: does a backbone honour the feature contract every task relies on?

The same checks the project's own contract test runs over every registered name, as a public
helper for plugin authors (see :mod:`backbones.base` for the contract)::

    from backbones.testing import check_contract
    check_contract("my_resnet", (2, 3, 64, 64))        # raises ContractError, one line per violation
    problems = check_contract(model, raises=False)     # or get the lines: [] when all is well

Each violation is one line that names the attribute, what it claims and what the model did,
so a wrong ``feature_info`` reads as one clear message rather than a shape error inside a task.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import MODALITY_RANK, FeatureInfo
from .registry import create, entry

#: default input per modality (batch 2: batch norm needs more than one value per channel)
_SIZES = {"image": (32, 32), "sequence": (128,), "vector": ()}


class ContractError(AssertionError):
    """A backbone breaks the contract; the message holds one line per violation."""

    def __init__(self, violations: list[str]) -> None:
        super().__init__("\n".join(violations))
        self.violations = violations


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _declared(model: nn.Module) -> list[str]:
    """Violations visible without running the model: modality, channels, feature_info, stem_info."""
    found = []
    modality = getattr(model, "modality", None)
    if modality not in MODALITY_RANK:
        found.append(f"modality={modality!r}; declare one of: {', '.join(MODALITY_RANK)}")
    if not isinstance(getattr(model, "in_channels", None), int):
        found.append("in_channels is missing; store the input channel count on the model")
    infos = getattr(model, "feature_info", None)
    if not isinstance(infos, list) or not infos or not all(isinstance(i, FeatureInfo) for i in infos):
        found.append("feature_info must be a non-empty list of FeatureInfo, one per stage output")
        return found
    for i, info in enumerate(infos):
        if not (isinstance(info.channels, int) and info.channels > 0 and isinstance(info.stride, int)
                and info.stride > 0):
            found.append(f"feature_info[{i}]={info}: channels and stride must be positive integers")
    strides = [i.stride for i in infos]
    if strides != sorted(strides):
        found.append(f"feature_info strides {strides} must not decrease (stages go shallow to deep)")
    if getattr(model, "num_features", None) != infos[-1].channels:
        found.append(f"num_features={getattr(model, 'num_features', None)!r} but feature_info[-1].channels="
                     f"{infos[-1].channels}; they must agree (heads are built from num_features)")
    stem = getattr(model, "stem_info", None)
    if not isinstance(stem, FeatureInfo):
        found.append("stem_info must be a FeatureInfo (channels and stride of the stem output)")
    else:
        if stem.module and not isinstance(getattr(model, stem.module, None), nn.Module):
            found.append(f"stem_info.module={stem.module!r} is not a submodule of the model")
        if any(isinstance(s, int) and s % stem.stride for s in strides):
            found.append(f"feature_info strides {strides} must be multiples of stem_info.stride={stem.stride}")
    return found


def _shape_problem(where: str, out: torch.Tensor, channels: int, stride: int, x: torch.Tensor,
                   modality: str, claim: str) -> str | None:
    if out.dim() != x.dim() or out.shape[0] != x.shape[0]:
        return f"{where} has shape {tuple(out.shape)}; expected {x.dim()}-D with batch {x.shape[0]}"
    if out.shape[1] != channels:
        return f"{claim}.channels={channels} but {where} has {out.shape[1]} channels"
    if modality != "vector":
        want = tuple(_ceil(n, stride) for n in x.shape[2:])
        if tuple(out.shape[2:]) != want:
            return (f"{claim}.stride={stride} but {where} has size {tuple(out.shape[2:])} for input "
                    f"{tuple(x.shape[2:])}; expected ceil(input / stride) = {want}")
    return None


def _run(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Violations found by running the model (forward, backward, forward_intermediates, output_lengths)."""
    infos, modality = model.feature_info, model.modality
    try:
        feats = model(x)
    except Exception as err:
        return [f"forward(x) raised {type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''}"]
    if not isinstance(feats, list) or not all(isinstance(f, torch.Tensor) for f in feats):
        return [f"forward(x) returned a {type(feats).__name__}; return a list of stage outputs (tensors)"]
    if len(feats) != len(infos):
        return [f"forward(x) returned {len(feats)} stage outputs but feature_info describes {len(infos)}"]
    found = [p for i, (f, info) in enumerate(zip(feats, infos))
             if (p := _shape_problem(f"stage {i} output", f, info.channels, info.stride, x, modality,
                                     f"feature_info[{i}]"))]
    found += [f"stage {i} output has non-finite values" for i, f in enumerate(feats) if not torch.isfinite(f).all()]
    if any(f.requires_grad for f in feats):
        sum(f.float().mean() for f in feats).backward()
    if not any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters()):
        found.append("no parameter gets a gradient from the stage outputs; the stages must be trainable")

    # Eval mode is deterministic (no drop path), so both code paths must give the same numbers.
    model.eval()
    with torch.no_grad():
        reference = model(x)
        try:
            stem, stages = model.forward_intermediates(x)
            _, first = model.forward_intermediates(x, num_stages=1)
        except Exception as err:
            return [*found, f"forward_intermediates(x) raised {type(err).__name__}: {str(err).splitlines()[0]}"]
    stem_info = model.stem_info
    if stem.shape[:2] != (x.shape[0], stem_info.channels) or (
            modality != "vector" and tuple(stem.shape[2:]) != tuple(_ceil(n, stem_info.stride) for n in x.shape[2:])):
        found.append(f"stem_info=(channels {stem_info.channels}, stride {stem_info.stride}) but the stem output "
                     f"of forward_intermediates has shape {tuple(stem.shape)} for input {tuple(x.shape)}")
    if len(stages) != len(reference) or not all(
            a.shape == b.shape and torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(stages, reference)):
        found.append("forward_intermediates(x).stages differ from forward(x); forward must be its stages")
    elif len(first) != 1 or not torch.allclose(first[0], reference[0], atol=1e-5, rtol=1e-4):
        found.append("forward_intermediates(x, num_stages=1) must return only the first stage's output")
    if modality != "vector":
        length = x.shape[-1]
        got = model.output_lengths(torch.tensor([length]))
        if int(got.item()) != reference[-1].shape[-1]:
            found.append(f"output_lengths([{length}]) = {int(got.item())} but the last stage has "
                         f"{reference[-1].shape[-1]} steps")
    return found


def check_contract(model_or_name: nn.Module | str, input_shape: Sequence[int] | None = None,
                   raises: bool = True) -> list[str]:
    """Check that a backbone (or a registered name, built with its defaults) honours the contract.

    ``input_shape`` is the full batch shape, e.g. ``(2, 3, 64, 64)``; by default two inputs of the
    model's modality (32x32 images, 128-step sequences). Returns the violations, one line each
    (``[]`` if none); with ``raises`` (the default) any violation raises :class:`ContractError`
    instead. The model's training mode and gradients are restored afterwards.
    """
    name = model_or_name if isinstance(model_or_name, str) else type(model_or_name).__name__
    model = create(model_or_name) if isinstance(model_or_name, str) else model_or_name
    found = _declared(model)
    if isinstance(model_or_name, str) and entry(model_or_name).modality != getattr(model, "modality", None):
        found.append(f"registered as {entry(model_or_name).modality} but the model says "
                     f"modality={getattr(model, 'modality', None)!r}")
    if not found:  # running a model whose description is broken would only repeat the same problem
        if input_shape is None:
            input_shape = (2, model.in_channels, *_SIZES[model.modality])
        x = torch.randn(*input_shape, generator=torch.Generator().manual_seed(0))
        if x.dim() != MODALITY_RANK[model.modality]:
            article = "an" if model.modality[0] in "aeiou" else "a"
            raise ValueError(f"input_shape={tuple(input_shape)} is not {article} {model.modality} batch; give "
                             f"{MODALITY_RANK[model.modality]} sizes (batch, channels, ...)")
        was_training = model.training
        grads = {p: p.grad for p in model.parameters()}
        for p in grads:  # only this check's backward may count as "gets a gradient"
            p.grad = None
        model.train()
        try:
            found = _run(model, x)
        finally:
            model.train(was_training)
            for p, g in grads.items():
                p.grad = g
    found = [f"{name}: {line}" for line in found]
    if found and raises:
        raise ContractError(found)
    return found
