"""A vectorised sum-tree for proportional prioritised replay (Schaul et al. 2016, appendix B.2.1).

Each node holds the sum of its children; the leaves hold the priorities. Sampling walks from the
root to a leaf, picking at each node the child whose share of the node's mass holds the drawn
point; updating a leaf refreshes its ancestors. Both touch one node per level, so their cost
grows with the tree's depth, ``log N``, not with ``N``.

Three choices make the walk cheap:

* **Batches, not loops.** Every operation takes a whole batch of indices or masses; a level is a
  handful of array operations over the batch, so no Python loop runs over transitions.
* **A wide tree.** With fan-out ``K`` (up to 64) instead of 2, a million leaves take 4 levels,
  not 20: a level's work grows by ``K`` (a cumulative sum over 32 children per sample, trivial),
  the number of array operations - which is what costs at these sizes - falls by ``log2 K``.
* **The right array library per device.** The same code runs on NumPy arrays for a tree in host
  memory (a NumPy call costs about a microsecond, a torch one several) and on torch tensors on
  an accelerator, where sampling and priority updates then never synchronise with the host.

Parents are *recomputed* from their children (not incremented by deltas), so rounding errors
never accumulate, and a batch that repeats an index writes the same value twice.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


class SumTree:
    """``capacity`` non-negative leaf values whose prefix sums can be searched in ``O(log N)``.

    ``levels[0]`` is the root (one node), ``levels[d]`` has ``K^d`` nodes and ``levels[-1]`` the
    leaves, ``K^depth >= capacity`` of them (the spare ones stay 0 and are never drawn). Node ``j``
    of level ``d`` has children ``jK .. jK + K - 1`` on level ``d + 1``. Indices and values go in
    and come out as torch tensors on ``device`` whatever the backend.
    """

    def __init__(self, capacity: int, device: torch.device | str = "cpu", max_fanout: int = 64) -> None:
        if capacity < 1 or max_fanout < 2:
            raise ValueError(f"sum-tree capacity {capacity} / fan-out {max_fanout} are not valid; give >= 1 / >= 2")
        self.capacity, self.device = capacity, torch.device(device)
        self.depth = max(1, math.ceil(math.log(capacity) / math.log(max_fanout) - 1e-9))
        self.fanout = max(2, math.ceil(capacity ** (1.0 / self.depth) - 1e-9))
        while self.fanout ** self.depth < capacity:  # guard the float root against rounding down
            self.fanout += 1
        self.host = self.device.type == "cpu"
        self.xp: Any = np if self.host else torch
        if self.host:
            self.levels = [np.zeros(self.fanout ** d) for d in range(self.depth + 1)]
            self._zero: Any = 0.0
        else:
            self.levels = [torch.zeros(self.fanout ** d, dtype=torch.float64, device=self.device)
                           for d in range(self.depth + 1)]
            self._zero = torch.zeros((), dtype=torch.float64, device=self.device)

    def _array(self, t: torch.Tensor, dtype: torch.dtype) -> Any:
        t = t.detach().to(self.device, dtype)
        return t.numpy() if self.host else t

    def _tensor(self, a: Any) -> torch.Tensor:
        return torch.from_numpy(np.asarray(a)) if self.host else a

    def total(self) -> torch.Tensor:
        """The sum of all leaves (a 0-d tensor; on an accelerator reading it does not sync)."""
        return torch.tensor(float(self.levels[0][0]), dtype=torch.float64) if self.host else self.levels[0][0]

    def clear(self) -> None:
        for level in self.levels:
            level[:] = 0

    def values(self, index: torch.Tensor) -> torch.Tensor:
        """Leaf values at ``index`` (leaf numbers ``0 .. capacity - 1``)."""
        return self._tensor(self.levels[-1][self._array(index, torch.long)])

    def update(self, index: torch.Tensor, values: torch.Tensor) -> None:
        """Set leaves ``index`` to ``values`` and refresh their ancestors, one level per step."""
        node = self._array(index, torch.long)
        self.levels[-1][node] = self._array(values, torch.float64)
        for d in range(self.depth - 1, -1, -1):
            node = node // self.fanout
            self.levels[d][node] = self.levels[d + 1].reshape(-1, self.fanout)[node].sum(1)

    def find(self, mass: torch.Tensor) -> torch.Tensor:
        """For each prefix mass ``m``, the leaf ``i`` with ``sum(leaves[:i]) <= m < sum(leaves[:i + 1])``.

        Only leaves with a positive value can be found: a zero child adds nothing to the running
        sum, so the walk steps over it. A mass at or past the total (rounding) is clamped just
        below each node's sum, so it lands on the last non-empty leaf.
        """
        return self._tensor(self._find(self._array(mass, torch.float64)))

    def _find(self, mass: Any) -> Any:
        xp, k = self.xp, self.fanout
        node = np.zeros(len(mass), np.int64) if self.host else torch.zeros(len(mass), dtype=torch.long,
                                                                             device=self.device)
        for d in range(1, self.depth + 1):
            cumulative = self.levels[d].reshape(-1, k)[node].cumsum(1)  # (batch, K)
            mass = xp.minimum(mass, xp.nextafter(cumulative[:, -1], self._zero))
            passed = cumulative <= mass[:, None]  # children whose whole mass lies below the point
            child = passed.sum(1).clip(max=k - 1)  # (== K only in an all-zero tree)
            mass = mass - xp.amax(cumulative * passed, 1)  # minus the mass of the children passed
            node = node * k + child
        return node

    def sample(self, batch_size: int, generator: torch.Generator | np.random.Generator) -> torch.Tensor:
        """``batch_size`` leaves drawn with probability ``value / total``, stratified: the mass
        ``[0, total)`` is cut into ``batch_size`` equal segments and one point drawn in each, which
        lowers the variance of a batch against independent draws (as in Schaul et al.).
        ``generator``: a NumPy one for a tree in host memory, a torch one on its device otherwise."""
        if self.host:
            u = generator.random(batch_size)
            return self._tensor(self._find((np.arange(batch_size) + u) * (self.levels[0][0] / batch_size)))
        u = torch.rand(batch_size, generator=generator, device=self.device, dtype=torch.float64)
        offsets = torch.arange(batch_size, device=self.device, dtype=torch.float64)
        return self._find((offsets + u) * (self.total() / batch_size))
