"""Super-resolution quality: bicubic vs. a residual EDSR body vs. its plain twin, same budget and seed.

What: trains the super-resolution task twice on the embedded photos (scikit-image + scikit-learn,
offline) with identical data order, seed, optimizer and step budget: once with the residual body
(``edsr_baseline`` by default: 16 blocks, 64 channels, long skip) and once with its plain twin
(``backbone.shortcut=none``: the same convolutions, no block skips, no long skip). Both are then
scored on the validation photos beside the bicubic upsampling of the same LR images: PSNR and
SSIM on the BT.601 Y channel, ``scale`` pixels shaved, as in the EDSR/BasicSR tables.

Why: the seeds argue that residual learning is what makes deep SR bodies trainable; this puts
the claim in numbers. By default the head is EDSR's (no global bicubic skip), so the only skips
are the body's; ``--global-residual`` adds the VDSR-style bicubic skip to both contenders.

    python benchmarks/sr_quality.py --steps 1000 --device cuda --out sr_quality.md
    python benchmarks/sr_quality.py --backbone edsr_tiny --steps 120 --threads 1     # a CPU look
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path

import torch

import tasks
from tasks.core.runlog import read_jsonl
from tasks.super_resolution.task import TASK


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="edsr_baseline", help="stride-1 SR body (edsr_baseline, edsr_tiny, edsr)")
    p.add_argument("--steps", type=int, default=1000, help="optimizer steps per contender")
    p.add_argument("--scale", type=int, default=2, choices=[2, 3, 4])
    p.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate (both contenders)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--patch-size", type=int, default=96, help="HR patch side")
    p.add_argument("--global-residual", action="store_true", help="add the bicubic skip to both contenders")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=0, help="CPU threads per run (0 = torch default)")
    p.add_argument("--runs-dir", default="runs/bench_sr", help="where the two run folders go")
    p.add_argument("--out", help="also write the Markdown table here")
    return p.parse_args(argv)


def train_and_score(args: argparse.Namespace, shortcut: str) -> dict:
    """Train one contender; its validation metrics, parameter count and training seconds."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    overrides = [
        f"seed={args.seed}", f"data.scale={args.scale}", f"data.batch_size={args.batch_size}",
        f"data.patch_size={args.patch_size - args.patch_size % args.scale}", f"backbone.name={args.backbone}",
        f"backbone.shortcut={shortcut}", f"model.global_residual={str(args.global_residual).lower()}",
        "optim.name=adam", f"optim.lr={args.lr}", "optim.schedule=constant", "optim.weight_decay=0",
        f"trainer.max_steps={args.steps}", f"trainer.eval_every={args.steps}", f"trainer.device={args.device}",
        f"trainer.threads={args.threads}", "trainer.progress=false", f"trainer.runs_dir={args.runs_dir}",
        f"trainer.run_name={args.backbone}-{shortcut}-x{args.scale}-{stamp}",
    ]
    run_dir = tasks.train(TASK, overrides).dir
    metrics = tasks.evaluate(run_dir, args.device)
    last = read_jsonl(run_dir / "metrics.jsonl")[-1]
    return {**metrics, "train_seconds": last["train_seconds"], "run_dir": str(run_dir)}


def table(args: argparse.Namespace, residual: dict, plain: dict) -> str:
    """Markdown: one row per contender, bicubic first, PSNR/SSIM on Y and the gain over bicubic."""
    head = (f"x{args.scale}, {args.backbone}, {args.steps} steps, batch {args.batch_size}, "
            f"{args.patch_size}-px HR patches, Adam {args.lr:g}, seed {args.seed}, "
            f"global residual {'on' if args.global_residual else 'off'}; "
            f"{residual['images']} validation photos; {platform.processor() or platform.machine()}, "
            f"torch {torch.__version__}, device {args.device}")
    rows = [head, "", "| method | params | train s | PSNR-Y (dB) | SSIM-Y | gain over bicubic (dB) | PSNR-RGB (dB) |",
            "|---|---|---|---|---|---|---|",
            f"| bicubic (Pillow) | 0 | - | {residual['psnr_y_bicubic']:.2f} | {residual['ssim_y_bicubic']:.4f} | "
            f"0.00 | {residual['psnr_rgb_bicubic']:.2f} |"]
    for name, m in ((f"{args.backbone} (residual)", residual), (f"{args.backbone} plain twin", plain)):
        rows.append(f"| {name} | {m['params'] / 1e6:.2f}M | {m['train_seconds']:.0f} | {m['psnr_y']:.2f} | "
                    f"{m['ssim_y']:.4f} | {m['gain_db']:+.2f} | {m['psnr_rgb']:.2f} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    results = {shortcut: train_and_score(args, shortcut) for shortcut in ("identity", "none")}
    text = table(args, results["identity"], results["none"])
    print(text)
    print(json.dumps({k: v["run_dir"] for k, v in results.items()}), file=sys.stderr)
    if args.out:
        Path(args.out).write_text(text)
    return text


if __name__ == "__main__":
    main()
