"""Gradient and activation probes: the seeds' vanishing/exploding-gradient argument, measured.

``gradient_norms`` gives one number per block, shallow to deep; the ratio of the first to
the last tells whether gradients explode toward the input (deep plain nets with batch norm)
or stay balanced (residual nets). ``activation_stats`` records how the forward signal grows
with depth.

A *block* is the unit a family repeats (:func:`blocks`): a residual block (plain twins
included), a DenseNet layer, a FractalNet conv unit, or a Residual Attention soft-mask branch
(whose own residual units count as part of it; the trunk's units are residual blocks).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator

import torch
from torch import nn

from .attention import SoftMaskBranch
from .blocks import ResidualBlock
from .densenet import DenseLayer
from .fractal import FractalConv

#: the repeated units of every family, as :func:`blocks` reports them
UNITS: tuple[type[nn.Module], ...] = (ResidualBlock, DenseLayer, FractalConv, SoftMaskBranch)


def blocks(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """The model's blocks (instances of :data:`UNITS`) in definition order, which is forward order.

    A unit inside another unit (the residual units of a soft-mask branch) is part of the outer one.
    """
    outer: str | None = None
    for name, module in model.named_modules():
        if outer is not None and name.startswith(outer):
            continue
        if isinstance(module, UNITS):
            outer = f"{name}."
            yield name, module


def residual_blocks(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """The model's residual blocks (plain twins included), in forward order."""
    for name, module in model.named_modules():
        if isinstance(module, ResidualBlock):
            yield name, module


def _norm(params: Iterator[nn.Parameter]) -> float:
    total = 0.0
    for p in params:
        if p.grad is not None:
            total += float(p.grad.detach().float().pow(2).sum())
    return total ** 0.5


def gradient_norms(model: nn.Module, loss: torch.Tensor | None = None) -> OrderedDict[str, float]:
    """L2 norm of the parameter gradients of each block (:func:`blocks`), shallow to deep.

    With ``loss`` given, gradients are cleared and ``loss.backward()`` is run first;
    without it, the gradients already in ``.grad`` are read (e.g. after a training step).
    """
    if loss is not None:
        model.zero_grad(set_to_none=True)
        loss.backward()
    return OrderedDict((name, _norm(block.parameters())) for name, block in blocks(model))


def conv_gradient_norms(model: nn.Module, kernel_size: int = 3) -> list[float]:
    """Gradient norm of every ``kernel_size`` conv weight, in forward order (reads ``.grad``)."""
    return [float(m.weight.grad.norm()) for m in model.modules()
            if isinstance(m, nn.Conv2d) and m.kernel_size == (kernel_size, kernel_size)
            and m.groups == 1 and m.weight.grad is not None]


def first_last_ratio(values: list[float]) -> float:
    """``values[0] / values[-1]``: >1 means gradients grow toward the input."""
    return values[0] / max(values[-1], 1e-30)


@torch.no_grad()
def activation_stats(model: nn.Module, x: torch.Tensor,
                     forward: Callable[[torch.Tensor], object] | None = None) -> OrderedDict[str, dict]:
    """Mean, std, RMS and fraction of zeros of each block's output (:func:`blocks`) on ``x``."""
    stats: OrderedDict[str, dict] = OrderedDict()
    hooks = []

    def probe(name: str) -> Callable:
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            out = output.detach().float()
            stats[name] = {"mean": float(out.mean()), "std": float(out.std()),
                           "rms": float(out.pow(2).mean().sqrt()),
                           "zeros": float((out == 0).float().mean())}
        return hook

    for name, block in blocks(model):
        hooks.append(block.register_forward_hook(probe(name)))
    try:
        (forward or model)(x)
    finally:
        for h in hooks:
            h.remove()
    return stats


def plot_gradient_norms(curves: dict[str, list[float]], path: str, title: str = "") -> str:
    """Write a log-scale PNG of per-block gradient norms, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, marker=".", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("block (input -> output)")
    ax.set_ylabel("gradient L2 norm")
    ax.set_title(title or "per-block gradient norms")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
