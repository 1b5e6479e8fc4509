"""The report's text: how rows are formed, the results table, twins, runs, skipped folders."""

from __future__ import annotations

from .document import Block, Bullets, Cell, Heading, Image, Link, Para, Table
from .groups import Pair, Row, short
from .runs import EXCLUDED

CURVES_DIR = "run_curves"  # copies of each run's curves.png, at run_curves/<run folder below root>/curves.png


def fmt(value: float | None) -> str:
    """Four decimals for rates in [-1, 1] (top-1, mAP, WER, SSIM), two for scores (dB, returns)."""
    if value is None:
        return "-"
    return f"{value:.4f}" if abs(value) <= 1 else f"{value:.2f}"


def curves_target(rel: str) -> str:
    return f"{CURVES_DIR}/{rel}/curves.png"


def how_rows_are_formed() -> list[Block]:
    excluded = ", ".join(f"`{k}`" for k in EXCLUDED)
    return [
        Heading(2, "How rows are formed"),
        Para("A row holds the runs of one task whose resolved `config.yaml` is identical once the keys below are "
             "removed; `data.dataset` counts as the dataset the run used (`data_info.json`), so `auto` and the "
             "explicit name of the same dataset are one row. "
             "Budget (`trainer.max_steps`, `trainer.epochs`), data, model, optimizer, evaluation cadence "
             "(`trainer.eval_every`, which also decides which checkpoint is best) and precision all split rows. "
             f"Keys left out, because they name the run or say how it was executed: {excluded}. "
             "`trainer.device` stays in (with `trainer.precision=auto` a CUDA run trains in bf16, a CPU run in fp32)."),
        Para("The value is the final in-run evaluation (last row of `metrics.jsonl`) of every run, so all runs are "
             "read the same way. **mean ± std** is over distinct seeds; runs that repeat a seed are averaged into that "
             "seed first and flagged, never counted as independent samples. **differs in** lists the keys that tell "
             "apart rows of the same task and backbone. Residual/plain twins are rows whose configs are equal except "
             "`backbone.name` and `backbone.shortcut`, whose networks are the same once the shortcut is set aside "
             "(`plain20` is `resnet20` without shortcuts), and of which one has no shortcuts."),
    ]


def _seeds(row: Row) -> str:
    repeated = row.repeated
    listed = ", ".join(f"{s} x{repeated[s]}" if s in repeated else str(s) for s in row.seeds)
    text = f"{len(row.seeds)} ({listed})"
    return text + " **repeated seed: averaged within the seed**" if repeated else text


def _spread(row: Row) -> str:
    if len(row.seeds) < 2:
        return f"{fmt(row.mean)} (1 seed)"
    return f"{fmt(row.mean)} ± {fmt(row.std)}"


def _baseline(row: Row) -> str:
    if row.baseline is None:
        return "-"
    note = f" ({row.baseline.note})" if row.baseline.note else ""
    return f"{row.baseline.name} {fmt(row.baseline.value)}{note}"


def results_table(rows: list[Row]) -> Table:
    body: list[list[Cell]] = []
    for r in rows:
        twins = "; ".join(f"{t.id}: {t.backbone} {fmt(t.mean)}" for t in r.twins) or "-"
        differs = ", ".join(f"`{k}`={short(v)}" for k, v in r.differs.items()) or "-"
        links = [Link(str(i + 1), curves_target(run.rel)) for i, run in
                 enumerate(sorted(r.runs, key=lambda x: (x.seed, x.rel))) if run.curves is not None]
        body.append([r.task, r.backbone, r.variant, r.metric, _spread(r), _seeds(r), _baseline(r), twins,
                     str(r.steps), f"{r.seconds:.0f}" if r.seconds is not None else "-",
                     f"{r.params / 1e6:.2f}M" if r.params else "-", differs, r.id, links])
    return Table(["task", "backbone", "variant", "metric", "mean ± std", "seeds", "baseline", "twin", "steps",
                  "train s", "params", "differs in", "row", "curves"], body)


def pairs_table(pairs: list[Pair]) -> Table:
    body: list[list[Cell]] = []
    for p in pairs:
        res, plain = p.residual, p.plain
        body.append([res.task, res.metric, f"{res.backbone} {fmt(res.mean)} ({res.id})",
                     f"{plain.backbone} {fmt(plain.mean)} ({plain.id})", fmt(p.diff),
                     f"{len(p.residual.seeds)} / {len(p.plain.seeds)}", p.verdict])
    return Table(["task", "metric", "residual", "plain", "residual - plain", "seeds", "verdict"], body)


def runs_table(rows: list[Row]) -> Table:
    body: list[list[Cell]] = []
    for r in rows:
        for run in sorted(r.runs, key=lambda x: (x.seed, x.rel)):
            curves: Cell = Link("curves", curves_target(run.rel)) if run.curves is not None else "-"
            body.append([r.id, f"`{run.rel}`", str(run.seed), str(run.step), fmt(run.value), curves])
    return Table(["row", "run folder (below the runs root)", "seed", "step", "headline", "curves"], body)


def blocks(root_name: str, rows: list[Row], pairs: list[Pair], skipped: list[tuple[str, str]],
           figures: list[str], pair_figure: str | None, extra: list[str]) -> list[Block]:
    """The whole report; ``figures``, ``pair_figure`` and ``extra`` are files in the report folder."""
    n_runs = sum(len(r.runs) for r in rows)
    out: list[Block] = [
        Heading(1, "residual-suite report"),
        Para(f"Runs under `{root_name}/`: {n_runs} runs in {len(rows)} rows"
             + (f"; {len(skipped)} folders skipped (listed at the end)." if skipped else ".")),
        *how_rows_are_formed(),
        Heading(2, "Results"),
        results_table(rows),
        *[Image(f, "headline metric per task: every run, row means, baselines") for f in figures],
    ]
    if pairs:
        out += [Heading(2, "Residual minus plain, per domain"),
                Para("Each residual row beside its plain twin. A difference no larger than the seed spread (the larger "
                     "std of the two rows) is called within seed spread; with one seed the spread is unknown."),
                pairs_table(pairs)]
        if pair_figure:
            out.append(Image(pair_figure, "curves of matched residual and plain runs, overlaid"))
    out += [Heading(2, "Runs"), runs_table(rows)]
    if extra:
        out += [Heading(2, "More figures"), *[Image(f, f) for f in extra]]
    if skipped:
        out += [Heading(2, "Skipped folders"), Bullets([f"`{rel}`: {why}" for rel, why in skipped])]
    return out
