"""Rows of comparable runs, what tells rows of one backbone apart, and residual/plain twins.

A row is every run with the same task and the same row key (:func:`runs.row_key`). Its value is
the mean over *distinct seeds*: runs that repeat a seed are averaged into that seed's value first
and the row is flagged, because a rerun of one seed is not an independent sample. Two rows are
twins (residual and plain) when their keys are equal except ``backbone.name`` and
``backbone.shortcut``, their networks are the same once the shortcut is set aside
(:func:`runs.architecture`), and one has shortcuts while the other has none.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from .runs import MISSING, RunRecord, architecture, canon

#: keys a plain twin may change: which registered name, and the shortcut option
TWIN_KEYS = ("backbone.name", "backbone.shortcut")


@dataclass
class Baseline:
    """A reference value beside a row: what chance, bicubic or a random policy scores."""

    name: str
    value: float
    note: str = ""


@dataclass
class Row:
    """Comparable runs: one task, one row key, any number of seeds."""

    id: str
    task: str
    metric: str
    higher_is_better: bool
    key: dict[str, Any]
    runs: list[RunRecord]
    arch: str = ""
    variant: str = "residual"
    differs: dict[str, Any] = field(default_factory=dict)
    baseline: Baseline | None = None
    twins: list[Row] = field(default_factory=list, repr=False)

    @property
    def backbone(self) -> str:
        return str(self.key.get("backbone.name", "?"))

    @property
    def per_seed(self) -> dict[int, list[float]]:
        """seed -> headline values of the runs with that seed (more than one: a repeated seed)."""
        out: dict[int, list[float]] = {}
        for run in sorted(self.runs, key=lambda r: (r.seed, r.rel)):
            out.setdefault(run.seed, []).append(run.value)
        return out

    @property
    def seeds(self) -> list[int]:
        return sorted(self.per_seed)

    @property
    def repeated(self) -> dict[int, int]:
        """Seeds run more than once, with their counts."""
        return {s: len(v) for s, v in self.per_seed.items() if len(v) > 1}

    @property
    def seed_values(self) -> list[float]:
        """One value per distinct seed (repeats of a seed averaged first)."""
        return [statistics.fmean(v) for _, v in sorted(self.per_seed.items())]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.seed_values)

    @property
    def std(self) -> float:
        """Sample standard deviation over distinct seeds (0 with one seed: unknown, not zero)."""
        values = self.seed_values
        return statistics.stdev(values) if len(values) > 1 else 0.0

    @property
    def steps(self) -> int:
        return max(r.step for r in self.runs)

    @property
    def seconds(self) -> float | None:
        secs = [float(r.seconds) for r in self.runs if isinstance(r.seconds, (int, float))]
        return statistics.fmean(secs) if secs else None

    @property
    def params(self) -> int | None:
        return next((int(r.params) for r in self.runs if isinstance(r.params, (int, float))), None)

    @property
    def data(self) -> str:
        """What the row was measured on: the resolved dataset, else ``data.dataset``, else the env id."""
        for name in ("data.dataset", "env.id"):
            if self.key.get(name) not in (None, "", "auto"):
                return str(self.key[name])
        return ""

    def metric_mean(self, name: str) -> float | None:
        """Mean over distinct seeds of another final metric (``ssim_y``, ``psnr_y_bicubic``, ...)."""
        per_seed: dict[int, list[float]] = {}
        for run in self.runs:
            value = run.metrics.get(name)
            if not isinstance(value, (int, float)):
                return None
            per_seed.setdefault(run.seed, []).append(float(value))
        return statistics.fmean(statistics.fmean(v) for v in per_seed.values()) if per_seed else None

    def label(self, width: int = 40) -> str:
        """Backbone, variant and the values that tell this row from its same-backbone neighbours."""
        leaves = [k.rsplit(".", 1)[-1] for k in self.differs]
        names = [leaf if leaves.count(leaf) == 1 else k for leaf, k in zip(leaves, self.differs)]
        parts = [f"{self.backbone} ({self.variant})"]
        parts += [f"{n}={short(v, 16)}" for n, v in zip(names, self.differs.values())]
        text, lines = "", []
        for part in parts:
            if text and len(text) + len(part) + 2 > width:
                lines.append(text)
                text = part
            else:
                text = f"{text}, {part}" if text else part
        return "\n".join([*lines, text])


@dataclass
class Pair:
    """A residual row and its plain twin, and what the comparison says."""

    residual: Row
    plain: Row
    diff: float
    verdict: str


def short(value: Any, limit: int = 30) -> str:
    """A config value in a table cell or label (``None``: the option was left at its default)."""
    if value is None or value == "":
        return "default" if value is None else '""'
    text = value if isinstance(value, str) else canon(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def group(runs: list[RunRecord]) -> list[Row]:
    """One row per (task, headline, row key), ordered by task then backbone, twins side by side."""
    buckets: dict[tuple[str, str, str], list[RunRecord]] = {}
    for run in runs:
        buckets.setdefault((run.task, run.headline, canon(run.key)), []).append(run)
    rows = []
    for (task, metric, _), members in buckets.items():
        first = members[0]
        arch, shortcut = architecture(first.backbone)
        rows.append(Row(id="", task=task, metric=metric, higher_is_better=first.higher_is_better, key=first.key,
                        runs=members, arch=arch, variant="plain" if shortcut == "none" else "residual"))
    _mark_differences(rows)
    _link_twins(rows)
    rows = _order(rows)
    counters: dict[str, int] = {}
    for row in rows:
        counters[row.task] = counters.get(row.task, 0) + 1
        row.id = f"{row.task}-{counters[row.task]}"
    return rows


def _mark_differences(rows: list[Row]) -> None:
    """For rows of one task and backbone name: the keys whose values are not the same in all."""
    families: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        families.setdefault((row.task, row.backbone), []).append(row)
    for family in families.values():
        if len(family) < 2:
            continue
        names = sorted({k for r in family for k in r.key})
        varying = [k for k in names if len({canon(r.key.get(k, MISSING)) for r in family}) > 1]
        for row in family:
            row.differs = {k: row.key.get(k, MISSING) for k in varying}


def twin_key(row: Row) -> str:
    """What a residual row and its plain twin share: the key without TWIN_KEYS, and the architecture."""
    return canon({"task": row.task, "metric": row.metric, "arch": row.arch,
                  "key": {k: v for k, v in row.key.items() if k not in TWIN_KEYS}})


def _link_twins(rows: list[Row]) -> None:
    by_key: dict[str, list[Row]] = {}
    for row in rows:
        by_key.setdefault(twin_key(row), []).append(row)
    for row in rows:
        row.twins = [o for o in by_key[twin_key(row)] if o.variant != row.variant]


def _order(rows: list[Row]) -> list[Row]:
    """Task by task; each residual row followed by its plain twins, unpaired rows after."""
    ordered: list[Row] = []
    seen: set[int] = set()
    for row in sorted(rows, key=lambda r: (r.task, r.variant != "residual", r.backbone, canon(r.key))):
        if id(row) in seen:
            continue
        ordered.append(row)
        seen.add(id(row))
        for twin in row.twins:
            if id(twin) not in seen:
                ordered.append(twin)
                seen.add(id(twin))
    return ordered


def pairs(rows: list[Row]) -> list[Pair]:
    """Every residual row with each of its plain twins, and a verdict that respects seed spread."""
    out = []
    for res in rows:
        if res.variant != "residual":
            continue
        for plain in res.twins:
            diff = res.mean - plain.mean
            better = diff > 0 if res.higher_is_better else diff < 0
            verdict = "residual better" if better else ("no difference" if diff == 0 else "plain better")
            n = min(len(res.seeds), len(plain.seeds))
            if n < 2:
                verdict += " (1 seed: spread unknown)"
            elif abs(diff) <= max(res.std, plain.std):
                verdict += " (within seed spread)"
            out.append(Pair(res, plain, diff, verdict))
    return out
