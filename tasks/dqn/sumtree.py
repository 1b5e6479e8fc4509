"""A vectorised sum-tree for proportional prioritised replay (Schaul et al. 2016, appendix B.2.1).

Each node holds the sum of its children; the leaves hold the priorities. Sampling walks from the
root to a leaf, picking at each node the child whose share of the node's mass holds the drawn
point; updating a leaf refreshes its ancestors. Both touch one node per level, so their cost
grows with the tree's depth, ``log N``, not with ``N``.

Two choices make the walk cheap in PyTorch, on a CPU or a GPU alike:

* **Batches, not loops.** Every operation takes a whole batch of indices or masses; a level is a
  handful of tensor ops over the batch, so no Python loop runs over transitions and nothing
  returns to the host (on a GPU, sampling and priority updates never synchronise).
* **A wide tree.** With fan-out ``K`` (up to 64) instead of 2, a million leaves take 4 levels,
  not 20: a level's work grows by ``K`` (a cumulative sum over 32 children per sample, trivial),
  the number of tensor ops - which is what costs, a few microseconds each - falls by ``log2 K``.

Parents are *recomputed* from their children (not incremented by deltas), so rounding errors
never accumulate, and a batch that repeats an index writes the same value twice.
"""

from __future__ import annotations

import math

import torch


class SumTree:
    """``capacity`` non-negative leaf values whose prefix sums can be searched in ``O(log N)``.

    ``levels[0]`` is the root (one node), ``levels[d]`` has ``K^d`` nodes and ``levels[-1]`` the
    leaves, ``K^depth >= capacity`` of them (the spare ones stay 0 and are never drawn). Node ``j``
    of level ``d`` has children ``jK .. jK + K - 1`` on level ``d + 1``.
    """

    def __init__(self, capacity: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64,
                 max_fanout: int = 64) -> None:
        if capacity < 1 or max_fanout < 2:
            raise ValueError(f"sum-tree capacity {capacity} / fan-out {max_fanout} are not valid; give >= 1 / >= 2")
        self.capacity = capacity
        self.depth = max(1, math.ceil(math.log(capacity) / math.log(max_fanout) - 1e-9))
        self.fanout = max(2, math.ceil(capacity ** (1.0 / self.depth) - 1e-9))
        while self.fanout ** self.depth < capacity:  # guard the float root against rounding down
            self.fanout += 1
        self.levels = [torch.zeros(self.fanout ** d, dtype=dtype, device=device) for d in range(self.depth + 1)]
        self._zero = torch.zeros((), dtype=dtype, device=device)

    @property
    def device(self) -> torch.device:
        return self.levels[0].device

    def total(self) -> torch.Tensor:
        """The sum of all leaves (a 0-d tensor on the tree's device; reading it does not sync)."""
        return self.levels[0][0]

    def clear(self) -> None:
        for level in self.levels:
            level.zero_()

    def values(self, index: torch.Tensor) -> torch.Tensor:
        """Leaf values at ``index`` (leaf numbers ``0 .. capacity - 1``)."""
        return self.levels[-1][index]

    def update(self, index: torch.Tensor, values: torch.Tensor) -> None:
        """Set leaves ``index`` to ``values`` and refresh their ancestors, one level per step."""
        node = index.to(self.device, torch.long)
        self.levels[-1][node] = values.to(self.device, self.levels[-1].dtype)
        for d in range(self.depth - 1, -1, -1):
            node = torch.div(node, self.fanout, rounding_mode="floor")
            self.levels[d][node] = self.levels[d + 1].view(-1, self.fanout)[node].sum(1)

    def find(self, mass: torch.Tensor) -> torch.Tensor:
        """For each prefix mass ``m``, the leaf ``i`` with ``sum(leaves[:i]) <= m < sum(leaves[:i + 1])``.

        Only leaves with a positive value can be found: a zero child adds nothing to the running
        sum, so the walk steps over it. A mass at or past the total (rounding) is clamped just
        below each node's sum, so it lands on the last non-empty leaf.
        """
        mass = mass.to(self.device, self.levels[0].dtype)
        node = torch.zeros(mass.shape, dtype=torch.long, device=self.device)
        for d in range(1, self.depth + 1):
            cumulative = self.levels[d].view(-1, self.fanout)[node].cumsum(1)  # (batch, K)
            mass = torch.minimum(mass, torch.nextafter(cumulative[:, -1], self._zero))
            passed = cumulative <= mass.unsqueeze(1)  # children whose whole mass lies below the point
            child = passed.sum(1).clamp_max_(self.fanout - 1)  # (== K only in an all-zero tree)
            mass = mass - (cumulative * passed).amax(1)  # minus the mass of the children passed
            node = node * self.fanout + child
        return node

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``batch_size`` leaves drawn with probability ``value / total``, stratified: the mass
        ``[0, total)`` is cut into ``batch_size`` equal segments and one point drawn in each, which
        lowers the variance of a batch against independent draws (as in Schaul et al.)."""
        dtype = self.levels[0].dtype
        u = torch.rand(batch_size, generator=generator, device=self.device, dtype=dtype)
        offsets = torch.arange(batch_size, device=self.device, dtype=dtype)
        return self.find((offsets + u) * (self.total() / batch_size))
