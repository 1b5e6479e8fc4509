"""Faster R-CNN: torchvision's stock ResNet-50-FPN vs ours on the registry's resnet50.

Same data (the embedded scenes), same anchors and RPN/RoI settings, same batches, optimizer,
schedule and seed; only the backbone+FPN differ. Prints mAP, mAP@50 and training time of
each, side by side (ours must not be worse).

    python benchmarks/detection_vs_torchvision.py --steps 300 [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn

from tasks.core.config import load_config
from tasks.core.loader import make_loader
from tasks.detection.config import DetectionConfig
from tasks.detection.data import build_data
from tasks.detection.evaluate import evaluate
from tasks.detection.model import build_model


def ours(cfg: DetectionConfig, info: dict) -> torch.nn.Module:
    return build_model(cfg, info)


def stock(cfg: DetectionConfig, info: dict) -> torch.nn.Module:
    """torchvision's builder, given our model's anchors and sampling so only the backbone differs."""
    reference = build_model(cfg, info)
    return fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=info["num_classes"], trainable_backbone_layers=5,
        min_size=reference.transform.min_size[0], max_size=reference.transform.max_size,
        rpn_anchor_generator=reference.rpn.anchor_generator, box_batch_size_per_image=cfg.model.rois_per_image,
        rpn_pre_nms_top_n_train=reference.rpn._pre_nms_top_n["training"],
        rpn_post_nms_top_n_train=reference.rpn._post_nms_top_n["training"],
        rpn_pre_nms_top_n_test=reference.rpn._pre_nms_top_n["testing"],
        rpn_post_nms_top_n_test=reference.rpn._post_nms_top_n["testing"])


def train(model: torch.nn.Module, loader, steps: int, lr: float) -> float:
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=0.9,
                          weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    start, step = time.perf_counter(), 0
    while step < steps:
        for images, targets in loader:
            loss = sum(model(images, targets).values())
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            sched.step()
            step += 1
            if step % 25 == 0:
                print(f"  step {step}/{steps} loss {float(loss):.3f}", flush=True)
            if step == steps:
                break
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", help="append the Markdown table to this file")
    p.add_argument("overrides", nargs="*", help="detection config overrides, e.g. data.num_train=500")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(DetectionConfig, None, ["backbone.name=resnet50", "model.fpn_channels=256",
                                              "model.returned_stages=[0,1,2,3]", "model.proposals=300",
                                              "model.rois_per_image=128", *args.overrides])
    data = build_data(cfg)
    rows = []
    for name, builder in (("torchvision fasterrcnn_resnet50_fpn", stock), ("residual-suite resnet50 + fpn", ours)):
        torch.manual_seed(args.seed)
        model = builder(cfg, data.info)
        loader = make_loader(data.train, cfg.data.batch_size, shuffle=True, seed=args.seed, collate_fn=data.collate_fn)
        print(f"{name}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params", flush=True)
        seconds = train(model, loader, args.steps, args.lr)
        model.eval()
        val = make_loader(data.val, cfg.data.batch_size, collate_fn=data.collate_fn)
        with torch.no_grad():
            metrics = evaluate(model, val, torch.device("cpu"), data.info)
        rows.append((name, metrics, seconds))
    table = [f"### Faster R-CNN on the embedded scenes ({args.steps} steps, batch {cfg.data.batch_size}, "
             f"seed {args.seed}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads)", "",
             "| model | mAP | mAP@50 | mAP@75 | train s |", "|---|---:|---:|---:|---:|"]
    table += [f"| {n} | {m['map']:.3f} | {m['map_50']:.3f} | {m['map_75']:.3f} | {s:.0f} |" for n, m, s in rows]
    text = "\n".join(table) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
