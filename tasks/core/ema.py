"""An exponential moving average of the weights that never waits for the GPU.

torch's ``AveragedModel`` tests its update count, a device tensor, twice per update
(``bool(n_averaged == 0)``, ``n_averaged > 0``): two host syncs per training step. This
subclass keeps the count on the host as well and otherwise averages exactly as
``AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)`` does,
with the same state dict (``module.*`` and ``n_averaged``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class EMA(AveragedModel):
    """``decay``-weighted running average of ``model``'s parameters and buffers."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self.updates = 0  # == n_averaged, read without a device sync

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.updates = int(self.n_averaged)  # once, at resume
        return result

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        ours = [p.detach() for p in itertools.chain(self.module.parameters(), self.module.buffers())]
        theirs = [p.detach().to(a.device) for a, p in zip(ours, itertools.chain(model.parameters(), model.buffers()))]
        if self.updates == 0:
            for a, b in zip(ours, theirs):
                a.copy_(b)
        else:  # grouped by device and dtype, as AveragedModel groups them for the foreach kernels
            groups: dict[tuple[torch.device, torch.dtype], tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
            for a, b in zip(ours, theirs):
                pair = groups.setdefault((a.device, a.dtype), ([], []))
                pair[0].append(a)
                pair[1].append(b)
            for mine, current in groups.values():
                self.multi_avg_fn(mine, current, None)
        self.n_averaged += 1
        self.updates += 1
