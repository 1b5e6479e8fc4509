"""Load a state dict into a backbone: strict on the backbone's keys, heads dropped, first conv adapted.

Works for the layouts people actually have on disk: torchvision and timm ResNets (both use
``conv1, bn1, layer1..layer4``, which our ImageNet-style nets keep), a whole model whose
backbone sits under a prefix (``module.``, ``backbone.``, ``backbone.body.``, ...), and our own
run checkpoints' model weights. Nothing is downloaded: the caller hands over a state dict or
a local file.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

#: BatchNorm's step counter: no weight, absent from frozen BN, never worth a mismatch
_COUNTER = "num_batches_tracked"


@dataclass
class LoadReport:
    """What :func:`load_backbone_weights` did: tensors copied, keys left out, the prefix stripped."""

    loaded: int
    dropped: list[str] = field(default_factory=list)  # keys outside the backbone (heads, FPNs, ...)
    prefix: str = ""  # where the backbone sat in the given state dict
    adapted: str = ""  # the first conv's input-channel adaptation, if one was made

    def summary(self) -> str:
        """One line for a run's log."""
        parts = [f"loaded {self.loaded} tensors" + (f" from under {self.prefix!r}" if self.prefix else "")]
        if self.dropped:
            parts.append(f"dropped {len(self.dropped)} keys outside the backbone ({', '.join(self.dropped[:3])}"
                         + (", ..." if len(self.dropped) > 3 else "") + ")")
        if self.adapted:
            parts.append(f"adapted {self.adapted}")
        return "; ".join(parts)


def adapt_input_conv(weight: torch.Tensor, in_channels: int) -> tuple[torch.Tensor, str]:
    """A first-conv kernel ``(out, c, *k)`` rewritten for ``in_channels`` inputs, and how.

    The idea of timm's ``adapt_input_conv``, for any source channel count: to one channel the
    kernel is summed over its inputs (a gray image replicated to RGB then gives the same
    response); to more channels it is tiled and scaled by ``c / in_channels`` (an image whose
    channels are equal then gives the same response as the source conv on one of them).
    """
    source = weight.shape[1]
    if source == in_channels:
        return weight, ""
    if in_channels == 1:
        return weight.sum(1, keepdim=True), f"summed {source} input channels to 1"
    repeats = math.ceil(in_channels / source)
    tiled = weight.repeat(1, repeats, *([1] * (weight.dim() - 2)))[:, :in_channels]
    return tiled * (source / in_channels), f"repeated {source} input channels to {in_channels}, scaled by " \
                                          f"{source}/{in_channels}"


def first_conv(backbone: nn.Module) -> str | None:
    """State-dict key of the convolution that reads the input (``conv1.weight`` for a ResNet)."""
    wanted = getattr(backbone, "in_channels", None)
    for name, module in backbone.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd) and module.groups == 1 and module.in_channels == wanted:
            return f"{name}.weight"
    return None


def _backbone_prefix(keys: list[str], target: Mapping[str, torch.Tensor]) -> str:
    """The prefix under which most of ``target``'s keys appear in ``keys`` ("" when at the top)."""
    counts: Counter[str] = Counter()
    for key in keys:
        parts = key.split(".")
        for i in range(len(parts)):
            if ".".join(parts[i:]) in target:
                counts[".".join(parts[:i])] += 1
                break
    if not counts:
        return ""
    best = max(counts.values())
    return min((p for p, n in counts.items() if n == best), key=len)


def _shape(t: torch.Tensor) -> str:
    return str(tuple(t.shape))


def load_backbone_weights(backbone: nn.Module, state: Mapping[str, torch.Tensor], *,
                          adapt_input: bool = True) -> LoadReport:
    """Copy the backbone's tensors out of ``state`` into ``backbone``, strictly.

    Keys outside the backbone's own top-level modules (a classifier ``fc``, a detector's FPN
    and heads) are dropped; every backbone key must be present with its shape, and no key under
    a backbone module may be left over. The one exception is the first convolution: when only
    its input channels differ it is adapted (:func:`adapt_input_conv`). A mismatch raises a
    one-line ``ValueError`` naming the first missing / unexpected keys and shapes.
    """
    target = backbone.state_dict()
    prefix = _backbone_prefix(list(state), target)
    lead = f"{prefix}." if prefix else ""
    tops = {k.split(".")[0] for k in target}
    picked: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, value in state.items():
        inner = key[len(lead):] if key.startswith(lead) else None
        if inner is None or inner.split(".")[0] not in tops:
            dropped.append(key)
        elif not (inner.endswith(_COUNTER) and inner not in target):
            picked[inner] = value
    adapted = ""
    conv = first_conv(backbone)
    if adapt_input and conv in picked and conv in target:
        got, want = picked[conv], target[conv]
        if got.dim() == want.dim() and got.shape[0] == want.shape[0] and got.shape[2:] == want.shape[2:]:
            picked[conv], how = adapt_input_conv(got, want.shape[1])
            adapted = f"{conv} ({how})" if how else ""
    missing = [k for k in target if k not in picked and not k.endswith(_COUNTER)]
    unexpected = [k for k in picked if k not in target]
    wrong = [k for k in picked if k in target and picked[k].shape != target[k].shape]
    if missing or unexpected or wrong:
        problems = []
        if missing:
            problems.append("missing " + ", ".join(f"{k} {_shape(target[k])}" for k in missing[:3])
                            + (f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""))
        if unexpected:
            problems.append("unexpected " + ", ".join(f"{k} {_shape(picked[k])}" for k in unexpected[:3])
                            + (f" (+{len(unexpected) - 3} more)" if len(unexpected) > 3 else ""))
        if wrong:
            problems.append("shape " + ", ".join(f"{k} {_shape(picked[k])} vs {_shape(target[k])}"
                                                 for k in wrong[:2]))
        raise ValueError(f"weights do not match {type(backbone).__name__}: {'; '.join(problems)}; "
                         "create the backbone of the same depth and width as the weights")
    filled = {**{k: v for k, v in target.items() if k.endswith(_COUNTER)}, **picked}
    backbone.load_state_dict(filled, strict=True)
    return LoadReport(len(picked), dropped, prefix, adapted)


def load_torchvision_weights(model: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor],
                             *, strict: bool = True) -> nn.Module:
    """Copy a torchvision (or timm) ``resnet*`` state dict into our ImageNet-style backbone.

    ``source`` is a path to a ``.pth`` file (loaded with ``weights_only=True``) or a state
    dict. The classifier (``fc.*``) is dropped: a backbone has no head. Loading is strict
    (:func:`load_backbone_weights`), so an architecture mismatch names the offending keys
    instead of silently half-loading; ``strict=False`` copies whatever matches.
    """
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise ValueError(f"weights file {path!r} does not exist; give the path to a local .pth file")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{path!r} is not a loadable state dict ({type(err).__name__}); "
                             "save it with torch.save(model.state_dict(), path)") from None
        if isinstance(state, Mapping) and "state_dict" in state:
            state = state["state_dict"]
    if strict:
        load_backbone_weights(model, state)
        return model
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.startswith("fc.")}
    model.load_state_dict(state, strict=False)
    return model
