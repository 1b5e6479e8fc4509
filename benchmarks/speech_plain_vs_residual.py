"""Residual QuartzNet against its plain twin on the synthesised speech corpus, same depth and budget.

What: trains the ``espeak_quartznet5x5`` recipe twice per seed, once as is and once
with ``backbone.shortcut=none`` (the plain twin: identical layers, widths, optimiser and step
count), and reports held-out WER/CER (validation speaks unseen sentences, with unseen voice
variants or an unseen accent) under three decodings of the same posteriors: best path
(greedy), beam search constrained to the training lexicon, and lexicon + the training
transcripts' trigram LM (the recipe's default), plus final training CTC loss and training
seconds, as a Markdown table and a PNG bar chart. Depth is the variable the residual argument
is about: ``--block-repeat 2`` or ``3`` turns 5x5 into 10x5 or 15x5 for both nets.

Why: the plain net's question is whether it trains as well as the residual one at the same
depth within the same budget; the seeds' claim is that it does not, and that the gap grows
with depth. Decoding with a lexicon and LM moves both nets' WER; the table shows whether it
closes the gap or keeps it.

    python benchmarks/speech_plain_vs_residual.py --seeds 0 1 2 --out speech_bench.md
    python benchmarks/speech_plain_vs_residual.py --steps 4 --num-train 64 --num-val 16   # smoke test
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from run_reuse import finished_run

import tasks
from tasks.core.config import load_config
from tasks.core.runlog import read_jsonl
from tasks.speech.task import TASK

RECIPE = "espeak_quartznet5x5"


def decode_three(run_dir: Path, decoding: Any) -> dict[str, float]:
    """Validation metrics of a run's best checkpoint under the recipe's decoding settings, twice:
    beam + lexicon only, and beam + lexicon + LM (each also reports the greedy path of the same
    posteriors). ``decoding`` is the benchmark's resolved ``model`` config, so runs reused from
    an earlier invocation are scored with the same decoder as fresh ones."""
    run = tasks.load_run(run_dir)
    keep = {k: getattr(decoding, k) for k in ("beam_size", "beam_threshold", "lm_weight", "word_score", "lm_order")}
    model_cfg = dataclasses.replace(run.cfg.model, decoder="beam", lexicon=decoding.lexicon or "corpus", **keep)
    scored = {}
    for name, lm in (("lexicon", ""), ("lm", decoding.lm or "corpus")):
        cfg = dataclasses.replace(run.cfg, model=dataclasses.replace(model_cfg, lm=lm))
        scored[name] = TASK.final_metrics(cfg, run.model, run.info, None, torch.device("cpu"))
    return {"wer": scored["lm"]["wer"], "cer": scored["lm"]["cer"], "wer_lexicon": scored["lexicon"]["wer"],
            "wer_greedy": scored["lm"]["wer_greedy"], "cer_greedy": scored["lm"]["cer_greedy"]}


def run_one(shortcut: str, seed: int, args: argparse.Namespace, runs: Path) -> dict[str, float]:
    """Train one net; its last validation metrics under each decoding, final training loss and seconds."""
    name = f"{'residual' if shortcut == 'identity' else 'plain'}-s{seed}"
    overrides = [f"seed={seed}", f"backbone.shortcut={shortcut}",
                 f"backbone.options.block_repeat={args.block_repeat}", f"trainer.threads={args.threads}",
                 "trainer.progress=false", f"trainer.runs_dir={runs}", f"trainer.run_name={name}"]
    overrides += [f"data.{key}={value}" for key, value in (("num_train", args.num_train), ("num_val", args.num_val))
                  if value > 0]
    if args.steps:
        overrides += [f"trainer.max_steps={args.steps}", f"trainer.eval_every={args.steps}",
                      f"trainer.log_every={max(1, args.steps // 10)}"]
    resolved = load_config(TASK.config_class, TASK.recipe_path(args.recipe), [*overrides, *args.overrides])
    run_dir = Path(runs) / TASK.name / name  # the run folder layout: <runs_dir>/<task>/<run_name>
    last = finished_run(run_dir, resolved.trainer.max_steps)
    if last:
        print(f"reusing {run_dir} (finished at step {resolved.trainer.max_steps})")
    else:
        run_dir = tasks.train(TASK, [*overrides, *args.overrides], recipe=args.recipe).dir
        last = read_jsonl(run_dir / "metrics.jsonl")[-1]
    train = read_jsonl(run_dir / "train.jsonl")
    return {**decode_three(run_dir, resolved.model), "val_loss": last["val/loss"],
            "train_loss": train[-1]["train/loss"], "seconds": last["train_seconds"], "params": last["params"]}


def table(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> str:
    def cell(rows: list[dict[str, float]], key: str, fmt: str) -> str:
        values = [r[key] for r in rows]
        mean = format(statistics.mean(values), fmt)
        return mean if len(values) == 1 else f"{mean} ± {format(statistics.stdev(values), fmt)}"

    steps = f"{args.steps} steps" if args.steps else "the recipe's steps"
    utterances = args.num_train or "the recipe's"
    lines = [f"QuartzNet {5 * args.block_repeat}x5 (recipe {Path(args.recipe).stem}), {steps}, "
             f"seeds {' '.join(map(str, args.seeds))}, {utterances} training utterances; "
             f"validation: unseen sentences, voices and accent; mean ± std over seeds", "",
             "| net | params | WER greedy | WER lexicon | WER lexicon+LM | CER greedy | CER lexicon+LM "
             "| final train loss | train s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for net, rows in results.items():
        lines.append(f"| {net} | {int(rows[0]['params']):,} | {cell(rows, 'wer_greedy', '.3f')} "
                     f"| {cell(rows, 'wer_lexicon', '.3f')} | {cell(rows, 'wer', '.3f')} "
                     f"| {cell(rows, 'cer_greedy', '.3f')} | {cell(rows, 'cer', '.3f')} "
                     f"| {cell(rows, 'train_loss', '.3f')} | {cell(rows, 'seconds', '.0f')} |")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, list[dict[str, float]]], path: Path) -> Path:
    """Grouped bars: held-out WER per decoding, residual beside plain, one dot per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = (("wer_greedy", "greedy"), ("wer_lexicon", "lexicon"), ("wer", "lexicon + LM"))
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(results)
    for j, (net, rows) in enumerate(results.items()):
        xs = [i + (j - (len(results) - 1) / 2) * width for i in range(len(keys))]
        ax.bar(xs, [statistics.mean(r[k] for r in rows) for k, _ in keys], width, label=net)
        for x, (k, _) in zip(xs, keys):
            ax.scatter([x] * len(rows), [r[k] for r in rows], color="black", s=10, zorder=3)
    ax.set_xticks(range(len(keys)), [label for _, label in keys])
    ax.set(ylabel="held-out WER (lower is better)", title="speech: residual vs plain QuartzNet")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default=RECIPE, help="a speech recipe name or YAML path")
    p.add_argument("--steps", type=int, default=0, help="training steps (0 = the recipe's)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--block-repeat", type=int, default=1, help="1 = 5x5, 2 = 10x5, 3 = 15x5")
    p.add_argument("--num-train", type=int, default=0, help="training utterances (0 = the recipe's)")
    p.add_argument("--num-val", type=int, default=0, help="validation utterances (0 = the recipe's)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads per run (0 = torch's default)")
    p.add_argument("--runs", type=Path, help="keep run folders here (default: a temporary folder)")
    p.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    p.add_argument("overrides", nargs="*", help="extra key=value overrides for both nets, e.g. trainer.device=cuda")
    args = p.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.runs or Path(tmp)
        results = {"residual": [], "plain": []}
        for seed in args.seeds:  # interleaved, so drifting machine load hits both nets alike
            results["residual"].append(run_one("identity", seed, args, runs))
            results["plain"].append(run_one("none", seed, args, runs))
    text = table(results, args)
    print(text)
    print(f"benchmark finished in {time.perf_counter() - started:.0f} s")
    if args.out:
        args.out.write_text(text)
        print(f"figure: {plot(results, args.out.with_suffix('.png'))}")


if __name__ == "__main__":
    main()
