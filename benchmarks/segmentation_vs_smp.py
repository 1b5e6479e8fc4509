"""Segmentation encoders: our ``rs-resnet34`` against SMP's own ``resnet34``, interleaved in one run.

What: the same SMP decoder (``model.arch``, the default recipe's FPN) on two encoders, both without
weights: segmentation-models-pytorch's stock ``resnet34`` (torchvision's ResNet) and ours
(``backbones`` resnet34 through the ``rs-`` adapter). A third contender is ours with
torchvision's initialisation (``backbone.zero_init_last=false``), which separates our code
from our init default. All share the segmentation task's data (the embedded scenes unless
overridden), loss, optimizer, schedule and seed, and see **the same batches in the same
order**: each step draws one batch and every contender takes one optimizer step on it, the
order rotating per step, so load on the machine falls on all of them alike. The task's own
``evaluate`` scores them at the end. Prints (and with ``--out`` appends) a table of mIoU,
pixel accuracy, parameters and the median training-step time; ``--plot`` draws the training
losses and the step times.

Why: the backbone library claims drop-in ResNets; for segmentation that means our resnet34
must train at least as well and as fast as SMP's inside SMP's decoder.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/segmentation_vs_smp.py --steps 300 --out benchmarks/RESULTS.md
    python benchmarks/segmentation_vs_smp.py --steps 2 data.num_train=16 data.num_val=8   # smoke test
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backbones.adapters.smp import encoder_name
from tasks.core.config import load_config
from tasks.core.loader import ShuffledBatchSampler, make_loader
from tasks.core.optim import build_optimizer, build_scheduler
from tasks.segmentation.model import smp_model
from tasks.segmentation.task import TASK

#: name -> (table label, SMP encoder name given the config)
CONTENDERS = {
    "smp": "SMP `resnet34` (torchvision ResNet)",
    "ours": "residual-suite `rs-resnet34`",
    "ours-torchvision-init": "residual-suite `rs-resnet34`, `zero_init_last=false`",
}


def build(name: str, cfg: Any, num_classes: int, seed: int) -> nn.Module:
    """The contender's model, seeded identically."""
    torch.manual_seed(seed)
    if name == "smp":
        return smp_model(cfg.model, "resnet34", num_classes)
    options = {"zero_init_last": False} if name == "ours-torchvision-init" else {}
    return smp_model(cfg.model, encoder_name("resnet34", **options), num_classes)


def run(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    cfg = load_config(TASK.config_class, TASK.recipe_path(None),
                      ["backbone.name=resnet34", f"seed={args.seed}", *args.overrides])
    torch.set_num_threads(args.threads or torch.get_num_threads())
    data = TASK.build_data(cfg)
    k = data.info["num_classes"]
    models = {name: build(name, cfg, k, cfg.seed) for name in args.contenders}
    optimizers = {name: build_optimizer(m, cfg.optim) for name, m in models.items()}
    schedulers = {name: build_scheduler(o, args.steps, cfg.optim) for name, o in optimizers.items()}
    sampler = ShuffledBatchSampler(len(data.train), cfg.data.batch_size, seed=cfg.seed)
    loader = make_loader(data.train, cfg.data.batch_size, batch_sampler=sampler, seed=cfg.seed,
                         collate_fn=data.collate_fn)
    times: dict[str, list[float]] = {n: [] for n in models}
    losses: dict[str, list[float]] = {n: [] for n in models}
    order = list(models)
    step, epoch = 0, 0
    torch.manual_seed(cfg.seed)  # the augmentation draws from torch, once per batch for all contenders
    while step < args.steps:
        sampler.set_epoch(epoch)
        for batch in loader:
            for name in order:
                model, opt = models[name], optimizers[name]
                model.train()
                started = time.perf_counter()
                loss, _ = TASK.loss(model, batch, cfg)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                schedulers[name].step()
                times[name].append(time.perf_counter() - started)
                losses[name].append(float(loss.detach()))
            order = order[1:] + order[:1]  # rotate who goes first
            step += 1
            print(f"\rstep {step}/{args.steps}", end="", file=sys.stderr)
            if step >= args.steps:
                break
        epoch += 1
    print(file=sys.stderr)
    val = make_loader(data.val, cfg.data.batch_size, seed=cfg.seed, collate_fn=data.collate_fn)
    results = {}
    for name, model in models.items():
        model.eval()
        with torch.no_grad():
            metrics = TASK.evaluate(model, val, torch.device("cpu"), data.info, cfg, None)
        results[name] = {**metrics, "params": sum(p.numel() for p in model.parameters()),
                         "step_s": statistics.median(times[name]), "train_s": sum(times[name]),
                         "losses": losses[name], "times": times[name]}
    return results


def plot(results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_time) = plt.subplots(1, 2, figsize=(11, 4))
    for name, r in results.items():
        window = max(1, len(r["losses"]) // 30)
        smooth = [statistics.fmean(r["losses"][max(0, i - window + 1): i + 1]) for i in range(len(r["losses"]))]
        ax_loss.plot(range(1, len(smooth) + 1), smooth, label=f"{CONTENDERS[name]}: mIoU {r['miou']:.3f}")
    ax_loss.set(xlabel="step", ylabel="training loss (running mean)", title="same batches, same decoder")
    ax_loss.legend(fontsize=7)
    names = list(results)
    ax_time.bar(range(len(names)), [results[n]["step_s"] * 1000 for n in names], color="tab:gray")
    ax_time.set_xticks(range(len(names)), names, fontsize=8)
    ax_time.set(ylabel="median training step (ms)", title="step time, interleaved")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--contenders", nargs="+", choices=list(CONTENDERS), default=list(CONTENDERS))
    p.add_argument("--out", help="append the Markdown table to this file")
    p.add_argument("--plot", help="write the loss curves and step times to this PNG")
    p.add_argument("overrides", nargs="*", help="segmentation config overrides for all, e.g. data.num_train=500")
    args = p.parse_args()
    results = run(args)
    arch = load_config(TASK.config_class, TASK.recipe_path(None), args.overrides).model.arch
    extra = f", overrides: `{' '.join(args.overrides)}`" if args.overrides else ""
    lines = [f"SMP {arch} decoder from scratch on the embedded scenes, {args.steps} interleaved steps, seed "
             f"{args.seed}, {platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"
             f"{extra}", "",
             "| encoder | params | mIoU | pixel acc | Dice | median step ms | train s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {CONTENDERS[n]} | {r['params'] / 1e6:.2f}M | {r['miou']:.3f} | {r['pixel_acc']:.3f} | "
              f"{r['dice']:.3f} | {r['step_s'] * 1000:.0f} | {r['train_s']:.0f} |" for n, r in results.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n" + text)
    if args.plot:
        plot(results, Path(args.plot))


if __name__ == "__main__":
    main()
