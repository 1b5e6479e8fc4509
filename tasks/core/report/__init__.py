"""``rsuite report``: compare only comparable runs, in a folder a person can share.

Runs are grouped into rows of comparable runs (:mod:`.runs` says which config keys do not
count, :mod:`.groups` forms rows and residual/plain twins), each row gets the baseline that
makes its number readable (:mod:`.baselines`), and the report folder receives ``report.md``,
a self-contained ``report.html``, ``report.json``, the figures (:mod:`.figures`) and a copy of
every run's ``curves.png``. Every link is relative to the report folder and points inside it,
so the folder can be moved, zipped or mailed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..errors import UserError
from . import baselines, document, figures, summary
from .groups import Pair, Row, group, pairs
from .runs import RunRecord, find_runs

__all__ = ["Pair", "Row", "RunRecord", "find_runs", "group", "pairs", "write_report"]


def _copy_curves(runs: list[RunRecord], out: Path) -> None:
    for run in runs:
        if run.curves is not None:
            target = out / summary.curves_target(run.rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run.curves, target)


def _copy_extra(paths: list[Path], out: Path) -> list[str]:
    """Figures made elsewhere (an experiment's root) copied into the report folder; their names there."""
    names = []
    for path in paths:
        if not path.is_file():
            continue
        target = out / path.name
        if path.resolve() != target.resolve():
            shutil.copyfile(path, target)
        names.append(path.name)
    return names


def _as_json(rows: list[Row], found: list[Pair], skipped: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "rows": [{"id": r.id, "task": r.task, "metric": r.metric, "higher_is_better": r.higher_is_better,
                  "backbone": r.backbone, "variant": r.variant, "mean": r.mean, "std": r.std, "seeds": r.seeds,
                  "repeated_seeds": r.repeated, "seed_values": r.seed_values, "steps": r.steps,
                  "train_seconds": r.seconds, "params": r.params, "differs": r.differs,
                  "baseline": None if r.baseline is None else vars(r.baseline),
                  "twins": [t.id for t in r.twins], "config": r.key,
                  "runs": [{"folder": x.rel, "seed": x.seed, "step": x.step, "value": x.value} for x in r.runs]}
                 for r in rows],
        "pairs": [{"residual": p.residual.id, "plain": p.plain.id, "diff": p.diff, "verdict": p.verdict}
                  for p in found],
        "skipped": [{"folder": rel, "reason": why} for rel, why in skipped],
    }


def write_report(root: Path, out: Path | None = None, extra_figures: list[Path] | None = None) -> Path:
    """Write the report over every run folder below ``root`` into ``out`` (default ``root/report``).

    Returns the path of ``report.md``. ``extra_figures`` (PNG files anywhere) are copied into
    the report folder and shown after the tables.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root} is not a folder; pass the runs/ folder that `rsuite train` writes into")
    out = Path(out) if out is not None else root / "report"
    runs, skipped = find_runs(root, skip=out)
    if not runs:
        raise UserError(f"no finished run folders (run.json + config.yaml + metrics.jsonl) under {root}; "
                        "train something first")
    out.mkdir(parents=True, exist_ok=True)
    rows = group(runs)
    baselines.attach(rows, out)
    found = pairs(rows)
    _copy_curves(runs, out)
    figure = figures.headline_figure(rows, out / "headline.png").name
    pair_figure = figures.pairs_figure(found, out / "pairs.png")
    if pair_figure is None:
        (out / "pairs.png").unlink(missing_ok=True)  # a stale figure from an earlier report would mislead
    extra = _copy_extra(list(extra_figures or []), out)
    blocks = summary.blocks(root.resolve().name, rows, found, skipped, [figure],
                            pair_figure.name if pair_figure else None, extra)
    (out / "report.md").write_text(document.markdown(blocks))
    (out / "report.html").write_text(document.to_html(blocks, out, "residual-suite report"))
    (out / "report.json").write_text(json.dumps(_as_json(rows, found, skipped), indent=1, default=str) + "\n")
    return out / "report.md"
