"""FractalNet (Larsson et al. 2017): very deep nets without identity shortcuts, by a recursive rule.

A fractal block of ``C`` columns is ``f_1(z) = conv(z)``, ``f_{C+1}(z) = join(f_C(f_C(z)), conv(z))``,
where ``join`` is the element-wise mean and each ``conv`` is conv3x3-BN-ReLU. Column ``c`` (0 =
shallowest) is a chain of ``2^c`` convs; the deepest column has ``2^(C-1)``, and a net of ``B``
blocks (2x2 max-pool between blocks) is ``B * 2^(C-1)`` convs deep along it. There is no
pass-through path: every signal is filtered and rectified before later layers see it. The
columns are laid out by *row* (``rows[i]`` holds the convs that end at depth ``i + 1`` of the
deepest column), and a join averages the columns that end at the same row.

Drop-path (Sec. 3.1), while training, one choice per mini-batch:

* global (probability ``global_drop``; 0.5 is the paper's 50/50 mix): one column, chosen
  uniformly, computes the whole network, in every block;
* local (otherwise): every join drops each of its inputs with probability ``local_drop``
  (0.15 in the paper), keeping at least one.

Both default to 0, so a model behaves the same in every forward pass unless asked; the paper
trains with ``local_drop=0.15, global_drop=0.5``. ``fractal_column="deepest"`` evaluates only
the deepest column (the paper's extracted fixed-depth subnetwork); training is unaffected.

**Plain analog** (``deepest_only=True``, registered as ``plain_fractalnet_cifar``): only the
deepest column is built, a plain chain of ``B * 2^(C-1)`` conv-BN-ReLU layers. Kept equal: depth
and the width of every layer; the fractal's other columns (and their parameters) are absent.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import Backbone, FeatureInfo, Intermediates
from .registry import register

COLUMNS = ("all", "deepest")


class FractalConv(nn.Module):
    """conv3x3 - dropout - BN - ReLU, the unit of every column (dropout as the paper's Caffe nets: before BN)."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu_(self.bn(self.dropout(self.conv(x))))


class FractalBlock(nn.Module):
    """``columns`` columns joined by means; ``forward(x, path)`` runs the whole fractal or one column.

    ``path`` is ``None`` (every column, joins average them; ``local_drop`` applies in training)
    or a column index (only that column's convs: global drop-path, or deepest-column evaluation).
    """

    def __init__(self, in_channels: int, out_channels: int, columns: int, dropout: float = 0.0,
                 deepest_only: bool = False) -> None:
        super().__init__()
        self.columns = columns
        self.depth = 2 ** (columns - 1)
        self.built = [columns - 1] if deepest_only else list(range(columns))
        self.rows = nn.ModuleList()
        for i in range(self.depth):
            row = nn.ModuleDict()
            for c in self.ending_at(i):
                span = 2 ** (columns - 1 - c)  # rows one conv of column c spans
                row[f"col{c}"] = FractalConv(in_channels if i + 1 == span else out_channels, out_channels, dropout)
            self.rows.append(row)
        self.local_drop = 0.0

    def ending_at(self, row: int) -> list[int]:
        """The built columns whose convs end at ``row`` (column c has one every ``2^(C-1-c)`` rows)."""
        return [c for c in self.built if (row + 1) % 2 ** (self.columns - 1 - c) == 0]

    def join(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        """Element-wise mean; while training, local drop-path first drops each input with ``local_drop``."""
        if self.training and self.local_drop > 0 and len(outputs) > 1:
            keep = torch.rand(len(outputs)) >= self.local_drop
            if not keep.any():
                keep[torch.randint(len(outputs), (1,))] = True
            outputs = [o for o, k in zip(outputs, keep.tolist()) if k]
        if len(outputs) == 1:
            return outputs[0]
        return torch.stack(outputs).mean(0)

    def forward(self, x: torch.Tensor, path: int | None = None) -> torch.Tensor:
        if path is not None or len(self.built) == 1:
            column = f"col{self.built[-1] if path is None else path}"
            for row in self.rows:
                if column in row:
                    x = row[column](x)
            return x
        signals = {c: x for c in self.built}
        for i, row in enumerate(self.rows):
            ending = self.ending_at(i)
            joined = self.join([row[f"col{c}"](signals[c]) for c in ending])
            for c in ending:
                signals[c] = joined
        return joined


class FractalNet(Backbone):
    """FractalNet for CIFAR-sized images (Larsson et al. Sec. 4): ``blocks`` fractal blocks of ``columns`` columns.

    Block ``b`` has ``channels[b] * width`` maps (the paper: 64, 128, 256, 512, 512); stage ``b``
    is a 2x2 max-pool (``b > 0``; ``ceil_mode``, so odd sizes round up) and block ``b``, at
    stride ``2^b``. There is no stem: block 1 reads the image (``stem_info`` is the input). The
    paper's last max-pool and linear layer are the classifier head's global pool and linear layer.
    ``dropout`` is one rate, or one per block (the paper: 0, 0.1, 0.2, 0.3, 0.4).
    """

    default_input_size = (32, 32)

    def __init__(self, blocks: int = 5, columns: int = 3, *, in_channels: int = 3,
                 channels: Sequence[int] = (64, 128, 256, 512, 512), width: float = 1.0,
                 local_drop: float = 0.0, global_drop: float = 0.0, fractal_column: str = "all",
                 dropout: float | Sequence[float] = 0.0, deepest_only: bool = False) -> None:
        super().__init__(in_channels)
        if not 1 <= blocks <= len(channels):
            raise ValueError(f"blocks={blocks} is not valid; choose 1..{len(channels)} (one entry of channels each)")
        if not 1 <= columns <= 6:
            raise ValueError(f"columns={columns} is not valid; choose 1..6 (the paper uses 3 or 4)")
        for name, rate in (("local_drop", local_drop), ("global_drop", global_drop)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name}={rate} is not valid; give a rate in [0, 1)")
        if fractal_column not in COLUMNS:
            raise ValueError(f"fractal_column={fractal_column!r} is not valid; choose one of: {', '.join(COLUMNS)}")
        rates = [float(dropout)] * blocks if isinstance(dropout, (int, float)) else [float(d) for d in dropout]
        if len(rates) != blocks or any(not 0.0 <= d < 1.0 for d in rates):
            raise ValueError(f"dropout={dropout!r} is not valid; give one rate in [0, 1) or {blocks} of them")
        self.columns, self.global_drop, self.fractal_column = columns, global_drop, fractal_column
        self.deepest_only = deepest_only
        self.stem = nn.Identity()
        self.stem_info = FeatureInfo(in_channels, 1, "stem")
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)
        in_ch = in_channels
        for b in range(blocks):
            out = max(1, int(channels[b] * width))
            block = FractalBlock(in_ch, out, columns, rates[b], deepest_only)
            block.local_drop = local_drop
            setattr(self, f"block{b + 1}", block)
            self.feature_info.append(FeatureInfo(out, 2 ** b, f"block{b + 1}"))
            in_ch = out
        self._path: int | None = None
        # Xavier-uniform convs, as the paper's Caffe nets; unit-scale norms.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def sample_path(self) -> int | None:
        """The column this forward pass runs everywhere (``None``: the whole fractal).

        Training: global drop-path with probability ``global_drop`` (one column, uniform), else
        the fractal with local drop-path. Evaluation: the deepest column if ``fractal_column``
        says so, else the fractal.
        """
        if self.deepest_only:
            return None
        if self.training:
            if self.global_drop > 0 and float(torch.rand(())) < self.global_drop:
                return int(torch.randint(self.columns, ()))
            return None
        return self.columns - 1 if self.fractal_column == "deepest" else None

    def forward_intermediates(self, x: torch.Tensor, num_stages: int | None = None) -> Intermediates:
        """As :meth:`Backbone.forward_intermediates`, with one drop-path choice for the whole pass."""
        self._path = self.sample_path()
        try:
            return super().forward_intermediates(x, num_stages)
        finally:
            self._path = None

    def forward_stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        if index > 0:
            x = self.pool(x)
        return getattr(self, self.feature_info[index].module)(x, self._path)


# Larsson et al. Sec. 4 (CIFAR): B = 5 blocks, C = 3 columns, 64..512 maps; 20 layers on the deepest column.
register("fractalnet_cifar", "image")(FractalNet)
register("plain_fractalnet_cifar", "image", deepest_only=True)(FractalNet)
