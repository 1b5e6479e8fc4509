"""Trajectories for the dynamics task: the generated systems and the folders users bring.

A trajectory is observation times ``t`` (T,) and states ``x`` (T, D). Training samples are
windows of ``model.horizon + 1`` consecutive observations of the training trajectories (every
start); validation samples are windows of ``eval.horizon + 1`` observations starting every
``eval.stride`` observations of the validation trajectories. States are normalised per
dimension with the mean and std of the training observations (stored in ``data_info.json``);
times stay in the data's units, and the models measure steps in ``time_scale`` = the median
training interval (see :mod:`.model`).

Folders: every ``.npz`` (arrays ``t`` and ``x``) and ``.csv`` (header ``t,<state names>``, one row
per observation) directly inside ``data.root``, sorted by name; every ``data.val_every``-th file
(the ``val_every``-th, the ``2 * val_every``-th, ...) is a validation trajectory, the others
train. A file that cannot be read, or whose ``t`` is not strictly increasing, or whose ``x``
does not match it, follows the suite's bad-file policy (:mod:`tasks.core.unreadable`): skipped
with a one-line warning naming it, or with ``data.strict=true`` a one-line error.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from tasks.core.cache import cache_dir
from tasks.core.errors import UserError
from tasks.core.supervised import DataBundle

from .config import DataConfig, DynamicsConfig
from .systems import get_system

VERSION = 1
SUFFIXES = (".npz", ".csv")


@dataclass
class Trajectory:
    t: np.ndarray  # (T,) float64, strictly increasing
    x: np.ndarray  # (T, D) float64
    source: str  # the file it came from, or "<system> #i"


class BadTrajectory(ValueError):
    """A trajectory file that cannot be used; the message is one line saying why."""


# ----------------------------------------------------------------------------- generated
def _generate_split(cfg: DataConfig, count: int, stream: int) -> tuple[np.ndarray, np.ndarray]:
    system = get_system(cfg.system, cfg.masses)
    rng = np.random.default_rng([cfg.seed, stream])
    dt = cfg.dt or system.dt
    pairs = [system.trajectory(rng, cfg.length, dt) for _ in range(count)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def generated_file(cfg: DataConfig) -> Path:
    """The cached trajectories for these settings (``train_t/x``, ``val_t/x``), made on first use."""
    system = get_system(cfg.system, cfg.masses)
    params = {"system": cfg.system, "num_train": cfg.num_train, "num_val": cfg.num_val, "length": cfg.length,
              "dt": cfg.dt or system.dt, "seed": cfg.seed, "version": VERSION}
    if cfg.system == "spring_chain":
        params["masses"] = cfg.masses
    key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir("dynamics") / f"{cfg.system}-{key}.npz"
    if path.is_file():
        return path
    print(f"generating {cfg.num_train}+{cfg.num_val} {cfg.system} trajectories into {path}", file=sys.stderr)
    train_t, train_x = _generate_split(cfg, cfg.num_train, 0)
    val_t, val_x = _generate_split(cfg, cfg.num_val, 1)
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.npz")
    np.savez(tmp, train_t=train_t, train_x=train_x, val_t=val_t, val_x=val_x, params=json.dumps(params))
    os.replace(tmp, path)  # atomic: a concurrent generator cannot leave a half-written file
    return path


def generated(cfg: DataConfig) -> tuple[list[Trajectory], list[Trajectory]]:
    """The embedded default: ``cfg.system`` trajectories (cached), with optional observation noise."""
    if cfg.num_train < 1 or cfg.num_val < 1 or cfg.length < 2:
        raise UserError(f"data.num_train={cfg.num_train}, data.num_val={cfg.num_val} must be >= 1 and "
                        f"data.length={cfg.length} >= 2")
    if cfg.dt < 0 or cfg.noise < 0:
        raise UserError(f"data.dt={cfg.dt} and data.noise={cfg.noise} must be >= 0")
    with np.load(generated_file(cfg)) as f:
        arrays = {k: f[k] for k in ("train_t", "train_x", "val_t", "val_x")}
    if cfg.noise > 0:
        # one noise level per dimension from the clean training data, the same for both splits
        scale = cfg.noise * arrays["train_x"].reshape(-1, arrays["train_x"].shape[-1]).std(0)
        rng = np.random.default_rng([cfg.seed, 2])
        for split in ("train", "val"):
            arrays[f"{split}_x"] = arrays[f"{split}_x"] + rng.normal(size=arrays[f"{split}_x"].shape) * scale
    return tuple(  # type: ignore[return-value]
        [Trajectory(t, x, f"{cfg.system} {split} #{i}") for i, (t, x) in
         enumerate(zip(arrays[f"{split}_t"], arrays[f"{split}_x"]))] for split in ("train", "val"))


def check_settings(cfg: DynamicsConfig) -> None:
    """Generated-data settings that cannot work, found before anything is generated."""
    d = cfg.data
    if d.dataset == "generated" or (d.dataset == "auto" and not d.root):
        get_system(d.system, d.masses)
        for key, value in (("model.horizon", cfg.model.horizon), ("eval.horizon", cfg.eval.horizon)):
            if value >= d.length:
                raise UserError(f"{key}={value} needs {value + 1} observations per trajectory but data.length="
                                f"{d.length}; lower {key} or raise data.length")


# ------------------------------------------------------------------------------- folders
def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    with path.open(newline="") as f:
        header = next(csv.reader(f), None)
    if not header or header[0].strip().lower() != "t":
        raise BadTrajectory(f"its header {','.join(header or [])!r} does not start with a t column "
                            "(write t,<state names> then one row per observation)")
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
    except ValueError as err:
        raise BadTrajectory(f"not numbers: {str(err).splitlines()[0][:100]}") from None
    if table.shape[1] != len(header):
        raise BadTrajectory(f"rows have {table.shape[1]} columns, the header {len(header)}")
    if table.shape[1] < 2:
        raise BadTrajectory("it has a t column but no state columns")
    return table[:, 0], table[:, 1:], [h.strip() for h in header[1:]]


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if not zipfile.is_zipfile(path):  # else numpy tries it as a pickle and says so, which misleads
        raise BadTrajectory("not a .npz archive (numpy.savez writes one)")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("t", "x") if k not in f.files]
            if missing:
                raise BadTrajectory(f"it has no array {' or '.join(missing)} (arrays: {', '.join(f.files) or 'none'})")
            t, x = np.asarray(f["t"], np.float64), np.asarray(f["x"], np.float64)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        if isinstance(err, BadTrajectory):
            raise
        raise BadTrajectory(f"not a readable .npz ({type(err).__name__}: {str(err).splitlines()[0][:80]})") from None
    if x.ndim == 1:
        x = x[:, None]
    return t, x, []


def read_trajectory(path: Path) -> tuple[Trajectory, list[str]]:
    """One trajectory file and its state names (CSV header; empty for ``.npz``); :class:`BadTrajectory` if unusable."""
    try:
        t, x, names = _read_csv(path) if path.suffix.lower() == ".csv" else _read_npz(path)
    except UnicodeDecodeError:
        raise BadTrajectory("not a text CSV file") from None
    except StopIteration:
        raise BadTrajectory("the file is empty") from None
    if t.ndim != 1:
        raise BadTrajectory(f"t has shape {t.shape}; it must be one time per observation (T,)")
    if x.ndim != 2 or len(x) != len(t):
        raise BadTrajectory(f"x has shape {x.shape} for {len(t)} times; it must be (T, D) = ({len(t)}, D)")
    if len(t) < 2:
        raise BadTrajectory(f"it has {len(t)} observation; a trajectory needs at least 2")
    if not (np.isfinite(t).all() and np.isfinite(x).all()):
        raise BadTrajectory("it holds NaN or infinite values")
    if not (np.diff(t) > 0).all():
        raise BadTrajectory("its times t are not strictly increasing")
    return Trajectory(t, x, str(path)), names


def _bad(path: Path, why: str, strict: bool, skipped: list[Path]) -> None:
    """The bad-file policy of :mod:`tasks.core.unreadable` for files read up front."""
    if strict:
        raise UserError(f"{path} cannot be read ({why[:160]}); fix or remove it, or set data.strict=false "
                        "to skip unreadable files")
    skipped.append(path)
    print(f"warning: skipped unreadable {path} ({why[:160]}); {len(skipped)} skipped so far "
          "(data.strict=true makes this an error)", file=sys.stderr)


def folder(cfg: DataConfig) -> tuple[list[Trajectory], list[Trajectory], list[str]]:
    """The trajectories in ``cfg.root`` split by the fixed rule (module docstring), and the state names."""
    root = Path(cfg.root)
    if not root.is_dir():
        raise UserError(f"data.root={cfg.root!r} is not a folder; give a folder of .npz or .csv trajectories")
    if cfg.val_every < 2:
        raise UserError(f"data.val_every={cfg.val_every} must be >= 2 (every n-th file is a validation trajectory)")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    if len(files) < 2:
        raise UserError(f"data.root={cfg.root!r} holds {len(files)} trajectory files (.npz or .csv); "
                        f"give at least 2 (every {cfg.val_every}-th by name is held out for validation)")
    splits: tuple[list[Trajectory], list[Trajectory]] = ([], [])
    names: list[str] = []
    dim, skipped = 0, []
    for i, path in enumerate(files):
        try:
            traj, found = read_trajectory(path)
            if dim and traj.x.shape[1] != dim:
                raise BadTrajectory(f"it has {traj.x.shape[1]} state columns, {files[0].name} and the others {dim}")
        except BadTrajectory as err:
            _bad(path, str(err), cfg.strict, skipped)
            continue
        dim, names = dim or traj.x.shape[1], names or found
        splits[(i + 1) % cfg.val_every == 0].append(traj)
    train, val = splits
    if not val and len(train) >= 2:  # fewer files than val_every: the last one validates
        val.append(train.pop())
    if not train or not val:
        raise UserError(f"data.root={cfg.root!r} has {len(train)} usable training and {len(val)} validation "
                        "trajectories; give at least 2 readable files")
    return train, val, names


# ------------------------------------------------------------------------------ datasets
class Windows(Dataset):
    """Windows of ``length`` consecutive observations, one starting every ``stride`` observations.

    An item is ``(t (length,), x (length, D), trajectory index)``: float64 times (the models take
    differences, which large absolute times would blur in float32), float32 normalised states.
    """

    def __init__(self, trajectories: list[Trajectory], mean: np.ndarray, std: np.ndarray, length: int,
                 stride: int = 1) -> None:
        self.trajectories, self.length = trajectories, length
        self.states = [torch.from_numpy(((tr.x - mean) / std).astype(np.float32)) for tr in trajectories]
        self.times = [torch.from_numpy(tr.t.astype(np.float64)) for tr in trajectories]
        self.index = [(k, s) for k, tr in enumerate(trajectories) for s in range(0, len(tr.t) - length + 1, stride)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        k, s = self.index[i]
        return self.times[k][s: s + self.length], self.states[k][s: s + self.length], k

    def source(self, i: int) -> str:
        return self.trajectories[self.index[i][0]].source


def trajectories(cfg: DynamicsConfig) -> tuple[list[Trajectory], list[Trajectory], dict[str, Any]]:
    """Training and validation trajectories for ``cfg.data``, and what describes them."""
    d = cfg.data
    kind = d.dataset if d.dataset != "auto" else ("folder" if d.root else "generated")
    if kind == "generated":
        system = get_system(d.system, d.masses)
        train, val = generated(d)
        extra = {"system": d.system, "names": list(system.names), "conservative": system.invariant is not None}
        if d.system == "spring_chain":
            extra["masses"] = d.masses
    elif kind == "folder":
        if not d.root:
            raise UserError("data.dataset=folder needs data.root: a folder of .npz or .csv trajectories")
        train, val, names = folder(d)
        extra = {"names": names or [f"x{i}" for i in range(train[0].x.shape[1])], "conservative": False}
    else:
        raise UserError(f"data.dataset={d.dataset!r} is not valid; choose auto, generated or folder")
    if d.limit_train > 0:
        train = train[: d.limit_train]
    if d.limit_val > 0:
        val = val[: d.limit_val]
    observed = np.concatenate([tr.x for tr in train])
    mean, std = observed.mean(0), observed.std(0)
    std = np.where(std > 1e-8, std, 1.0)  # a constant dimension stays as it is
    steps = np.concatenate([np.diff(tr.t) for tr in train])
    info = {"dataset": kind if kind == "folder" else d.system, "dim": int(observed.shape[1]),
            "mean": mean.tolist(), "std": std.tolist(), "time_scale": float(np.median(steps)),
            "regular": bool(np.allclose(steps, steps[0], rtol=1e-6)),
            "num_train": len(train), "num_val": len(val), **extra}
    return train, val, info


def build_data(cfg: DynamicsConfig, split: str = "train") -> DataBundle:
    """Training windows of ``model.horizon + 1`` observations and validation windows of ``eval.horizon + 1``."""
    train, val, info = trajectories(cfg)
    mean, std = np.asarray(info["mean"]), np.asarray(info["std"])
    val_set = Windows(val, mean, std, cfg.eval.horizon + 1, cfg.eval.stride)
    if len(val_set) == 0:
        longest = max(len(tr.t) for tr in val)
        raise UserError(f"no validation trajectory has eval.horizon+1={cfg.eval.horizon + 1} observations "
                        f"(longest: {longest}); lower eval.horizon to at most {longest - 1}")
    train_set = Windows(train if split == "train" else train[:0], mean, std, cfg.model.horizon + 1)
    if split == "train" and len(train_set) == 0:
        longest = max(len(tr.t) for tr in train)
        raise UserError(f"no training trajectory has model.horizon+1={cfg.model.horizon + 1} observations "
                        f"(longest: {longest}); lower model.horizon to at most {longest - 1}")
    return DataBundle(train_set, val_set, info)
