"""Training-step throughput of our backbones against torchvision and timm twins of the same architecture.

What: images/s of one full training step (forward, cross-entropy on random data, backward, SGD step) for
ours ``resnet18``/``resnet50`` (wrapped as ``Classifier(backbones.create(name), 1000)``) next to
torchvision's and timm's, plus ours ``resnet56`` (CIFAR, 32x32, 10 classes) alone, as it has no peer there.

Why: our nets are meant to be drop-in replacements, so they should train at least as fast as the reference
implementations. Every contender runs in the same process and the timed blocks are interleaved (the order
rotates each repeat), so drift in clock speed or machine load hits all of them alike; the median of the
repeats is reported, and ``ours/torchvision`` or ``ours/timm`` >= 1.00 means ours is at least as fast.

    python benchmarks/backbone_throughput.py --device cuda --bf16 --channels-last --out bench.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchvision
from torch import nn

import backbones
from backbones.adapters import Classifier

IMAGENET_CLASSES, CIFAR_CLASSES = 1000, 10


@dataclass
class Contender:
    name: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    rates: list[float] = field(default_factory=list)


def peers(arch: str) -> list[tuple[str, Callable[[], nn.Module]]]:
    """(label, builder) of every implementation of ``arch``; ours first."""
    classes = CIFAR_CLASSES if arch == "resnet56" else IMAGENET_CLASSES
    found: list[tuple[str, Callable[[], nn.Module]]] = [
        ("ours", lambda: Classifier(backbones.create(arch), classes))]
    if arch != "resnet56":
        import timm

        found.append(("torchvision", lambda: getattr(torchvision.models, arch)(weights=None)))
        found.append(("timm", lambda: timm.create_model(arch, pretrained=False)))
    return found


def make_contender(label: str, build: Callable[[], nn.Module], args: argparse.Namespace) -> Contender:
    model = build().to(args.device).train()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    if args.compile:
        model = torch.compile(model)
    return Contender(label, model, optimizer)


def train_steps(c: Contender, x: torch.Tensor, y: torch.Tensor, steps: int, args: argparse.Namespace) -> float:
    """Run ``steps`` training steps; return images/s."""
    sync = torch.cuda.synchronize if args.device.type == "cuda" else lambda: None
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        c.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(args.device.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss = nn.functional.cross_entropy(c.model(x), y)
        loss.backward()
        c.optimizer.step()
    sync()
    return steps * x.shape[0] / (time.perf_counter() - start)


def bench_arch(arch: str, args: argparse.Namespace) -> dict[str, list[float]]:
    """Warm up, then time every implementation of ``arch`` interleaved, rotating the order each repeat."""
    torch.manual_seed(0)
    size, classes = (32, CIFAR_CLASSES) if arch == "resnet56" else (args.image_size, IMAGENET_CLASSES)
    x = torch.randn(args.batch, 3, size, size, device=args.device)
    x = x.contiguous(memory_format=torch.channels_last) if args.channels_last else x
    y = torch.randint(0, classes, (args.batch,), device=args.device)
    contenders = [make_contender(label, build, args) for label, build in peers(arch)]
    for c in contenders:
        train_steps(c, x, y, args.warmup, args)
    for rep in range(args.repeats):
        shift = rep % len(contenders)
        for c in contenders[shift:] + contenders[:shift]:
            c.rates.append(train_steps(c, x, y, args.steps, args))
    return {c.name: c.rates for c in contenders}  # the models are freed before the next arch


def median(rates: list[float] | None) -> float | None:
    return statistics.median(rates) if rates else None


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "—" if value is None else format(value, spec)


def table(results: dict[str, dict[str, list[float]]]) -> str:
    rows = ["| model | ours img/s | torchvision img/s | timm img/s | ours/torchvision | ours/timm | spread |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for arch, found in results.items():
        ours, tv, tm = (median(found.get(k)) for k in ("ours", "torchvision", "timm"))
        spread = max((max(r) - min(r)) / statistics.median(r) for r in found.values())
        ratios = [ours / other if ours and other else None for other in (tv, tm)]
        rows.append(f"| {arch} | {fmt(ours)} | {fmt(tv)} | {fmt(tm)} | {fmt(ratios[0], '.2f')} "
                    f"| {fmt(ratios[1], '.2f')} | {spread:.0%} |")
    return "\n".join(rows)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(args: argparse.Namespace) -> list[str]:
    import timm

    device = torch.cuda.get_device_name(args.device) if args.device.type == "cuda" else "cpu"
    shown = {k: (str(v) if isinstance(v, (Path, torch.device)) else v) for k, v in vars(args).items()}
    return [f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
            f"- cpu: {cpu_model()} ({os.cpu_count()} logical cores), torch threads: {torch.get_num_threads()}",
            f"- device: {device}",
            f"- torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}, "
            f"python {platform.python_version()}",
            f"- args: {shown}",
            "- median images/s of one training step (fwd + bwd + SGD); ratio >= 1.00: ours at least as fast; "
            "spread: worst (max - min) / median over repeats"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--batch", type=int, help="default: 32 on CPU, 128 on CUDA")
    p.add_argument("--image-size", type=int, default=224, help="ImageNet nets only; resnet56 always uses 32")
    p.add_argument("--steps", type=int, default=10, help="training steps per timed block")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per model before timing")
    p.add_argument("--models", default="resnet18,resnet50,resnet56")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--bf16", action="store_true", help="autocast to bfloat16 (meant for CUDA)")
    p.add_argument("--compile", action="store_true", help="torch.compile each model")
    p.add_argument("--out", type=Path, help="append the table and machine info to this Markdown file")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available")
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    args.device = torch.device("cuda" if use_cuda else "cpu")
    args.batch = args.batch or (128 if use_cuda else 32)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(args.models) - {"resnet18", "resnet50", "resnet56"})
    if unknown:
        p.error(f"unknown --models {unknown}; choose from resnet18, resnet50, resnet56")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    results = {arch: bench_arch(arch, args) for arch in args.models}
    report = "\n".join([f"## Backbone training throughput ({args.device.type})", "", *machine_info(args), "",
                        table(results), ""])
    print(report)
    if args.out:
        with args.out.open("a") as f:
            f.write(report + "\n")


if __name__ == "__main__":
    main()
