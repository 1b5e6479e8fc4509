"""Reading run folders for the report: what a run measured, and the settings that define its row.

A run folder (``rsuite train`` writes one) holds ``run.json`` (task, headline metric and its
direction), the resolved ``config.yaml``, ``data_info.json`` and ``metrics.jsonl`` (one row per
evaluation). The report knows no task by name: everything it compares comes from these files.

Two runs are *comparable* (the same row of the report) when they have the same task and the
same resolved config once the keys in :data:`EXCLUDED` are removed. Those keys say which run
this is or how it was executed, not what was measured; every other key (budget, data, model,
optimizer, evaluation cadence, precision, ...) is part of the experiment.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..runlog import read_jsonl

#: config keys left out of the row key, each with the reason it cannot change the measured result
EXCLUDED: dict[str, str] = {
    "seed": "the replicate axis: runs that differ only in seed are the samples a row averages",
    "trainer.run_name": "the run's folder name",
    "trainer.runs_dir": "where the run folder was written",
    "trainer.resume": "a resumed run restores weights, optimizer, data position and RNG states and continues "
                      "the same run",
    "trainer.progress": "the progress bar on stderr",
    "trainer.log_every": "how often training loss is written to train.jsonl (logging only)",
    "trainer.threads": "CPU threads per process (execution only)",
    "trainer.num_workers": "data-loader processes (execution only: the same data and augmentations, seeded per "
                           "sample)",
    "trainer.dist_timeout": "how long a collective waits for the slowest process (execution only)",
    "trainer.compile": "torch.compile (the same computation, fused)",
    "trainer.channels_last": "memory layout of 2-D activations (the same computation)",
    "env.vectorization": "sync or async stepping of the same seeded environments (the same transitions)",
    "env.env_threads": "BLAS threads per async environment process (execution only)",
}

#: ``data_info.json`` fields that replace a config key in the row key: ``data.dataset=auto`` names no
#: dataset, the run's data_info records the one it resolved to (so ``auto`` and the explicit name
#: of the same dataset are one row, and ``auto`` on two different datasets are two)
RESOLVED_KEYS = {"dataset": "data.dataset"}

MISSING = "(unset)"


class SkipRun(Exception):
    """A folder that is not a finished, readable run; the message says why (one line)."""


@dataclass
class RunRecord:
    """One finished run: where it is, what it is (config), and what it measured (final evaluation)."""

    path: Path
    rel: str  # path below the report's root, POSIX separators (for names and links)
    task: str
    headline: str
    higher_is_better: bool
    config: dict[str, Any]
    key: dict[str, Any]  # flattened config minus EXCLUDED, plus data_info fields: the row identity
    info: dict[str, Any]
    seed: int
    step: int
    metrics: dict[str, Any]  # the final in-run evaluation, ``val/`` prefix removed
    history: list[dict[str, Any]] = field(repr=False)  # every metrics.jsonl row
    seconds: float | None = None
    params: int | None = None
    curves: Path | None = None

    @property
    def value(self) -> float:
        return float(self.metrics[self.headline])

    @property
    def backbone(self) -> dict[str, Any]:
        return self.config.get("backbone") or {}


def flatten(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; empty mappings stay as values so they still count."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def row_key(config: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """The settings that define a run's row: its flattened config minus :data:`EXCLUDED`, with the
    values ``data_info.json`` resolved (:data:`RESOLVED_KEYS`) in place of what the config said."""
    key = {k: v for k, v in flatten(config).items() if k not in EXCLUDED}
    for field_name, config_key in RESOLVED_KEYS.items():
        if field_name in info:
            key[config_key] = info[field_name]
    return key


def canon(value: Any) -> str:
    """A value as comparable text (lists, dicts and numbers of either YAML spelling compare equal)."""
    return json.dumps(value, sort_keys=True, default=str)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SkipRun(f"{path.name} is unreadable ({type(err).__name__})") from None
    if not isinstance(data, dict):
        raise SkipRun(f"{path.name} holds no JSON object")
    return data


def _in_training(run_dir: Path) -> bool:
    """Whether the process named in the folder's ``.claim`` is alive (a training holds the folder).

    The claim's lock is not probed: even a brief shared lock could make a ``--resume`` starting at
    that instant fail. A claim left by a killed run names a dead process and does not count.
    """
    try:
        pid = int((run_dir / ".claim").read_text().strip() or 0)
    except (OSError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _relative(run_dir: Path, root: Path) -> str:
    rel = run_dir.relative_to(root).as_posix()
    return run_dir.resolve().name if rel == "." else rel


def read_run(run_dir: Path, root: Path) -> RunRecord:
    """The run in ``run_dir``, or :class:`SkipRun` saying why it cannot be compared."""
    if not (run_dir / "run.json").is_file():
        raise SkipRun("no run.json (not written by `rsuite train`, or from an older version)")
    meta = _read_json(run_dir / "run.json")
    missing = [k for k in ("task", "headline", "higher_is_better") if k not in meta]
    if missing:
        raise SkipRun(f"run.json lacks {', '.join(missing)}")
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
    except FileNotFoundError:
        raise SkipRun("no config.yaml") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise SkipRun(f"config.yaml is unreadable ({type(err).__name__})") from None
    if not isinstance(config, dict):
        raise SkipRun("config.yaml holds no mapping of settings")
    info = _read_json(run_dir / "data_info.json") if (run_dir / "data_info.json").is_file() else {}
    if _in_training(run_dir):
        raise SkipRun("still training (the process in its .claim is alive)")
    history = read_jsonl(run_dir / "metrics.jsonl")
    if not history:
        raise SkipRun("no evaluations in metrics.jsonl")
    last = history[-1]
    headline = str(meta["headline"])
    metrics = {k.removeprefix("val/"): v for k, v in last.items() if k.startswith("val/")}
    if not isinstance(metrics.get(headline), (int, float)):
        raise SkipRun(f"its last evaluation has no val/{headline}")
    step = int(last.get("step", 0))
    max_steps = int((config.get("trainer") or {}).get("max_steps") or 0)
    if 0 < step < max_steps:
        raise SkipRun(f"unfinished: last evaluation at step {step} of trainer.max_steps={max_steps} "
                      f"(finish it with `rsuite train {meta['task']} --resume` on the folder)")
    seed = config.get("seed", 0)
    curves = run_dir / "curves.png"
    return RunRecord(path=run_dir, rel=_relative(run_dir, root),
                     task=str(meta["task"]), headline=headline, higher_is_better=bool(meta["higher_is_better"]),
                     config=config, key=row_key(config, info), info=info,
                     seed=int(seed) if isinstance(seed, (int, float)) else 0, step=step, metrics=metrics,
                     history=history, seconds=last.get("train_seconds"), params=last.get("params"),
                     curves=curves if curves.is_file() else None)


def find_runs(root: Path, skip: Path | None = None) -> tuple[list[RunRecord], list[tuple[str, str]]]:
    """Every comparable run below ``root``, and (folder below root, reason) for each folder skipped.

    A folder is a candidate when it holds ``run.json`` or ``metrics.jsonl``; folders below
    ``skip`` (the report's own output) are not. Each skip is also one warning line on stderr.
    """
    skip_dir = skip.resolve() if skip is not None else None
    candidates = sorted({p.parent for name in ("run.json", "metrics.jsonl") for p in root.rglob(name)})
    runs: list[RunRecord] = []
    skipped: list[tuple[str, str]] = []
    for run_dir in candidates:
        if skip_dir is not None and run_dir.resolve().is_relative_to(skip_dir):
            continue
        try:
            runs.append(read_run(run_dir, root))
        except SkipRun as why:
            print(f"warning: skipped {run_dir}: {why}", file=sys.stderr)
            skipped.append((_relative(run_dir, root), str(why)))
    return runs, skipped


# ------------------------------------------------------------------ residual or plain
_PLAIN_NAME = re.compile(r"^plain(\d+)$")


def architecture(backbone: dict[str, Any]) -> tuple[str, str]:
    """(the network without its shortcut setting, the shortcut in effect) of a backbone config.

    Registered names resolve through the backbone registry: ``plain20`` is ``CifarResNet`` with
    ``depth=20, shortcut="none"`` fixed, so it has the architecture of ``resnet20`` and the
    shortcut ``none``. An unregistered name (a foreign run) falls back to the ``plainN`` /
    ``resnetN`` naming convention.
    """
    name = str(backbone.get("name", "?"))
    shortcut = backbone.get("shortcut")
    try:
        from backbones.registry import entry

        found = entry(name)
    except (ImportError, ValueError):
        plain = _PLAIN_NAME.match(name)
        arch = f"resnet{plain.group(1)}" if plain else name
        return arch, str(shortcut if shortcut is not None else ("none" if plain else "default"))
    fixed = {k: v for k, v in found.fixed.items() if k != "shortcut"}
    builder = f"{found.builder.__module__}.{found.builder.__qualname__}"
    effective = shortcut if shortcut is not None else found.fixed.get("shortcut", "default")
    return f"{builder}{canon(fixed)}", str(effective)
