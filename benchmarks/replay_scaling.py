"""Prioritised replay: time of one sample + priority update against the buffer's capacity.

What: for each capacity (10k, 100k and 1M transitions by default), the median time of one
prioritised ``sample(batch)`` followed by ``update_priorities`` with fresh TD errors, on

* ``tree``: the :class:`~tasks.dqn.sumtree.SumTree` alone (draw indices, look up their
  priorities, write new ones) - the part whose cost could grow with the capacity;
* ``buffer``: the whole :class:`~tasks.dqn.replay.ReplayBuffer` with Atari-shaped uint8 frames
  (4 x 84 x 84 stacks; a transition stores its stack plus the one new frame, 35,280 bytes), so
  the batch gather of frames, importance weights and the tree all count. It is filled for real
  (random frames), so the gathers read committed memory. Capacities whose frames do not fit in
  ``--max-buffer-gb`` are left out of this column (1M transitions are 35 GB);
* ``O(N) sampler``: the sampler this replaced (``p ** alpha``, normalise, ``Generator.choice``
  over all ``N`` priorities, then the scatter of new priorities), for contrast;
* ``torchrl``: torchrl's ``PrioritizedSampler`` (a C++ sum-tree and min-tree, CPU only), when
  torchrl is importable - the dependency the issue weighed against a tree of our own. It is not
  a dependency of this project; install it elsewhere to compare (``--torchrl``).

The timed blocks of the contenders are interleaved per repeat, so machine drift hits them alike.
The growth factor per 10x capacity shows the scaling: 10x for a linear cost, ~1x for a
logarithmic one. A PNG of time against capacity (log-log) is written beside ``--out``.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/replay_scaling.py --out /tmp/replay.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.dqn.replay import ReplayBuffer
from tasks.dqn.sumtree import SumTree

FRAMES = (4, 84, 84)
BYTES_PER_TRANSITION = (FRAMES[0] + 1) * FRAMES[1] * FRAMES[2]  # the stack + the one new frame


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def filled_buffer(capacity: int, device: torch.device, chunk: int = 2048) -> ReplayBuffer:
    """A full prioritised buffer of random frames with random (heavy-tailed) priorities."""
    buf = ReplayBuffer(capacity, FRAMES, np.uint8, prioritized=True, alpha=0.6, device=device, seed=0)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (chunk, *FRAMES), dtype=np.uint8)
    for start in range(0, capacity, chunk):
        k = min(chunk, capacity - start)
        buf.add(frames[:k], rng.integers(0, 6, k), rng.normal(size=k).astype(np.float32), frames[:k],
                np.full(k, 0.97, np.float32))
    gen = torch.Generator(device).manual_seed(1)
    for start in range(0, capacity, 1 << 16):
        idx = torch.arange(start, min(capacity, start + (1 << 16)), device=device)
        buf.update_priorities(idx, torch.randn(len(idx), generator=gen, device=device).pow(3))
    return buf


def tree_step(capacity: int, batch: int, device: torch.device) -> Callable[[], None]:
    tree = SumTree(capacity, device)
    gen = torch.Generator(device).manual_seed(0)
    tree.update(torch.arange(capacity, device=device),
                torch.rand(capacity, generator=gen, device=device, dtype=torch.float64).pow(3))

    draws = np.random.default_rng(0) if tree.host else gen  # the tree samples with its memory's generator

    def step() -> None:
        idx = tree.sample(batch, draws)
        _ = tree.values(idx) / tree.total()  # probabilities, as the buffer computes them
        tree.update(idx, torch.rand(batch, generator=gen, device=device, dtype=torch.float64))

    return step


def buffer_step(buf: ReplayBuffer, batch: int) -> Callable[[], None]:
    gen = torch.Generator(buf.device).manual_seed(2)

    def step() -> None:
        sample = buf.sample(batch, beta=0.5)
        buf.update_priorities(sample["indices"], torch.randn(batch, generator=gen, device=buf.device))

    return step


def linear_step(capacity: int, batch: int) -> Callable[[], None]:
    """The previous sampler: every draw renormalises all ``N`` priorities."""
    rng = np.random.default_rng(0)
    priorities = rng.random(capacity) ** 3 + 1e-6

    def step() -> None:
        probs = priorities ** 0.6
        probs /= probs.sum()
        idx = rng.choice(capacity, size=batch, p=probs)
        _ = (capacity * probs[idx]) ** -0.5 / (capacity * probs.min()) ** -0.5
        priorities[idx] = rng.random(batch) + 1e-6

    return step


def torchrl_step(capacity: int, batch: int) -> Callable[[], None]:
    """torchrl's sampler on a storage of ``capacity`` items (the sampler only reads its length)."""
    from torchrl.data import TensorStorage
    from torchrl.data.replay_buffers.samplers import PrioritizedSampler

    storage = TensorStorage(torch.zeros(capacity))
    sampler = PrioritizedSampler(capacity, alpha=0.6, beta=0.5)
    sampler.extend(torch.arange(capacity))
    gen = torch.Generator().manual_seed(0)
    sampler.update_priority(torch.arange(capacity), torch.rand(capacity, generator=gen) ** 3 + 1e-6)

    def step() -> None:
        index, _ = sampler.sample(storage, batch)
        sampler.update_priority(index, torch.rand(batch, generator=gen))

    return step


def time_us(step: Callable[[], None], iters: int, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    sync(device)
    return (time.perf_counter() - start) / iters * 1e6


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("tree", "sum-tree alone"), ("buffer", "full buffer (uint8 frames)"),
                       ("linear", "previous O(N) sampler"), ("torchrl", "torchrl PrioritizedSampler")):
        pts = [(r["capacity"], r[key]) for r in rows if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=label)
    ax.set(xscale="log", yscale="log", xlabel="capacity (transitions)", ylabel="us per sample + priority update",
           title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--capacities", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--batch", type=int, default=32, help="transitions per sample (32: the Atari recipes)")
    p.add_argument("--iters", type=int, default=200, help="sample + update steps per timed block")
    p.add_argument("--repeats", type=int, default=7, help="timed blocks per contender (median reported)")
    p.add_argument("--device", default="cpu", help="cpu or cuda: where the buffer and the tree live")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-buffer-gb", type=float, default=4.0,
                   help="full buffers larger than this are skipped (the machine's memory)")
    p.add_argument("--no-linear", action="store_true", help="skip the previous O(N) sampler")
    p.add_argument("--torchrl", action="store_true", help="add torchrl's PrioritizedSampler (must be importable)")
    p.add_argument("--out", type=Path, help="Markdown file to write the table to (PNG beside it)")
    args = p.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for capacity in args.capacities:
        contenders = {"tree": tree_step(capacity, args.batch, device)}
        gb = capacity * BYTES_PER_TRANSITION / 1e9
        if gb <= args.max_buffer_gb:
            started = time.perf_counter()
            contenders["buffer"] = buffer_step(filled_buffer(capacity, device), args.batch)
            print(f"capacity {capacity}: filled {gb:.2f} GB of frames in {time.perf_counter() - started:.1f} s",
                  file=sys.stderr)
        if not args.no_linear and device.type == "cpu":
            contenders["linear"] = linear_step(capacity, args.batch)
        if args.torchrl:
            contenders["torchrl"] = torchrl_step(capacity, args.batch)
        times: dict[str, list[float]] = {k: [] for k in contenders}
        for step in contenders.values():  # warm-up: caches, allocator
            for _ in range(20):
                step()
        for _ in range(args.repeats):
            for key, step in contenders.items():
                times[key].append(time_us(step, args.iters, device))
        row = {"capacity": capacity, "gb": gb, **{k: statistics.median(v) for k, v in times.items()},
               **{f"{k}_spread": (max(v) - min(v)) / statistics.median(v) for k, v in times.items()}}
        rows.append(row)
        print(row, file=sys.stderr)
        contenders.clear()

    def cell(row: dict, key: str) -> str:
        if row.get(key) is None:
            return "not run"
        return f"{row[key]:,.0f} (±{100 * row[f'{key}_spread'] / 2:.0f}%)"

    def growth(key: str, i: int) -> str:
        a, b = rows[i - 1].get(key), rows[i].get(key)
        if i == 0 or a is None or b is None:
            return ""
        per_decade = (b / a) ** (1 / np.log10(rows[i]["capacity"] / rows[i - 1]["capacity"]))
        return f" x{per_decade:.2f}"

    header = (f"{datetime.date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"torch {torch.__version__}, device {device}, {args.threads} thread(s); batch {args.batch}, "
              f"median of {args.repeats} blocks of {args.iters} sample + update steps; "
              f"frames {FRAMES[0]}x{FRAMES[1]}x{FRAMES[2]} uint8, {BYTES_PER_TRANSITION:,} bytes per transition")
    columns = [("tree", "sum-tree alone"), ("buffer", "full buffer"), ("linear", "previous O(N) sampler")]
    if args.torchrl:
        columns.append(("torchrl", "torchrl PrioritizedSampler"))
    lines = [header, "", "| capacity | frames | " + " | ".join(f"{name}, us" for _, name in columns) + " |",
             "|---:|---:|" + "---:|" * len(columns)]
    for i, r in enumerate(rows):
        lines.append(f"| {r['capacity']:,} | {r['gb']:.2f} GB | "
                     + " | ".join(f"{cell(r, key)}{growth(key, i)}" for key, _ in columns) + " |")
    lines += ["", "xK after a time: growth per 10x capacity (10 = linear, 1 = constant); ±: half the spread "
                  "(max - min) of the blocks over the median."]
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
        plot(rows, args.out.with_suffix(".png"), f"prioritised replay, batch {args.batch}, {device}")
        print(f"wrote {args.out} and {args.out.with_suffix('.png')}", file=sys.stderr)


if __name__ == "__main__":
    main()
