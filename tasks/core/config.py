"""Typed task settings: dataclasses <- YAML recipe <- ``key.sub=value`` overrides (OmegaConf).

Every task config shares the sections below (``trainer``, ``optim``, ``backbone``, and a
``data`` section with at least ``root``), so one override grammar works everywhere. An
unknown key or a wrong type becomes a one-line :class:`UserError` naming the key, its
valid neighbours and the file it came from.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from .errors import UserError

C = TypeVar("C")


#: BackboneConfig fields that say how the backbone starts and learns, not how it is built
FINE_TUNING = ("weights", "trainable_stages", "frozen_bn")


@dataclass
class BackboneConfig:
    """Which registered backbone, the block options passed to ``backbones.create``, and how it starts.

    ``None`` keeps the family's default. ``options`` carries family-specific extras
    (``depth`` of a ``resmlp``, ``width`` of a ``quartznet``, ...). ``weights``,
    ``trainable_stages`` and ``frozen_bn`` are for fine-tuning (see :mod:`tasks.core.weights`).
    """

    name: str = "resnet20"
    shortcut: str | None = None
    norm: str | None = None
    attention: str | None = None
    gate: str | None = None
    drop_path: float | None = None
    residual_scale: Any = None
    zero_init_last: bool | None = None
    options: dict[str, Any] = field(default_factory=dict)
    # a local state dict (torchvision, timm, safetensors) or a run folder of any task; never downloaded
    weights: str = ""
    trainable_stages: int = -1  # -1 = all learn; k = only the last k stages learn (0 = frozen backbone)
    frozen_bn: bool = False  # every BatchNorm keeps its statistics and affine (torchvision's FrozenBatchNorm2d)

    def create_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``backbones.create`` (only the ones that were set)."""
        kwargs = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name not in ("name", "options", *FINE_TUNING) and getattr(self, f.name) is not None}
        kwargs.update(self.options)
        return kwargs


@dataclass
class OptimConfig:
    """Optimizer and learning-rate schedule (the step count comes from the trainer)."""

    name: str = "sgd"  # sgd | adamw | adam
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    schedule: str = "cosine"  # cosine | poly | step | onecycle | constant
    warmup_steps: int = 0
    milestones: list[int] = field(default_factory=list)  # step schedule: decay at these steps
    gamma: float = 0.1  # step schedule: lr multiplier at each milestone
    grad_clip: float = 0.0  # max gradient L2 norm; 0 disables
    backbone_lr_scale: float = 1.0  # the backbone learns at lr * this (< 1 keeps pretrained weights close)


@dataclass
class TrainerConfig:
    """How training runs: device, precision, length, evaluation and checkpoint cadence."""

    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 on CUDA, fp16 where bf16 is not native, fp32 on CPU) | bf16 | fp16 | fp32
    compile: bool = False
    channels_last: bool = True  # for 2-D models on CUDA
    epochs: int = 1
    max_steps: int = 0  # optimizer steps; > 0 caps the run whatever `epochs` says
    eval_every: int = 0  # steps between evaluations; 0 = once per epoch
    log_every: int = 20
    monitor: str = ""  # metric that picks best.pt (compared in the headline's direction); empty = the headline
    ema_decay: float = 0.0  # > 0 keeps an exponential moving average of the weights
    num_workers: int = -1  # loader processes per rank; -1 = auto: min(8, cores / local ranks) on CUDA, 0 on CPU
    sync_bn: bool = False  # under DDP on GPUs: BatchNorm statistics over the global batch (small per-GPU batches)
    dist_timeout: int = 3600  # seconds a collective waits for the slowest rank (cache building, COCO evaluation)
    resume: bool = False
    runs_dir: str = "runs"
    run_name: str = ""  # empty = <recipe>-<timestamp>
    threads: int = 0  # CPU threads per process; 0 = torch's default
    progress: bool = True  # the start line and the progress bar on stderr


def _valid_keys(node: Any) -> list[str]:
    return list(node.keys()) if isinstance(node, DictConfig) else []


def _explain(err: OmegaConfBaseException, schema: DictConfig, source: str) -> UserError:
    key = str(getattr(err, "full_key", "") or "").strip()
    if isinstance(err, (ConfigKeyError, ConfigAttributeError)):
        parent_key, _, leaf = key.rpartition(".")
        parent = OmegaConf.select(schema, parent_key) if parent_key else schema
        valid = _valid_keys(parent)
        close = difflib.get_close_matches(leaf, valid, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        return UserError(f"unknown key '{key}' in {source}; {hint}valid keys: {', '.join(valid)}")
    if isinstance(err, ValidationError):
        msg = str(err).splitlines()[0]
        return UserError(f"bad value for '{key}' in {source}: {msg}")
    return UserError(f"bad config in {source}: {str(err).splitlines()[0]}")


#: ``key=value`` strings (the command line) or a mapping ``{"trainer.max_steps": 300}`` (Python)
Overrides = Sequence[str] | Mapping[str, Any]


def read_recipe(path: str | Path, _chain: tuple[Path, ...] = ()) -> DictConfig:
    """The YAML at ``path`` with its ``base:`` recipe (a name beside it, or a path) merged underneath.

    A plain twin is then one line over its residual recipe, and the two cannot drift apart.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {str(path)!r} does not exist; pass an existing YAML or a recipe name "
                        "(`rsuite recipes TASK` lists them)")
    if path.resolve() in _chain:
        raise UserError(f"recipe {path} names itself as a base through {' -> '.join(p.name for p in _chain)}; "
                        "remove the loop of base: keys")
    try:
        loaded = OmegaConf.load(path)
    except Exception as err:
        raise UserError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(loaded, DictConfig):
        raise UserError(f"{path} holds no mapping of settings; a recipe is YAML like `trainer: {{max_steps: 100}}`")
    base = loaded.pop("base", None)
    if base is None:
        return loaded
    base_path = Path(str(base))
    if not base_path.is_absolute():
        base_path = path.parent / (base_path if base_path.suffix == ".yaml" else f"{base}.yaml")
    return OmegaConf.merge(read_recipe(base_path, (*_chain, path.resolve())), loaded)  # type: ignore[return-value]


def _override_config(overrides: Overrides) -> DictConfig:
    if isinstance(overrides, Mapping):
        node = OmegaConf.create()
        for key, value in overrides.items():
            OmegaConf.update(node, str(key), value, merge=True, force_add=True)
        return node
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} is not key=value; write e.g. trainer.max_steps=100")
    return OmegaConf.from_dotlist(list(overrides))


def load_config(schema_cls: type[C], path: str | Path | None = None, overrides: Overrides = ()) -> C:
    """Build ``schema_cls`` from its defaults, the recipe at ``path`` (and its bases), then ``overrides``."""
    schema = OmegaConf.structured(schema_cls)
    cfg = schema
    if path is not None:
        try:
            cfg = OmegaConf.merge(cfg, read_recipe(path))
        except OmegaConfBaseException as err:
            raise _explain(err, schema, str(path)) from None
    try:
        cfg = OmegaConf.merge(cfg, _override_config(overrides))
    except OmegaConfBaseException as err:
        raise _explain(err, schema, "the overrides") from None
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


def check_common(cfg: Any) -> None:
    """Reject shared settings that cannot work, naming the key (before any run folder is made).

    Types are checked by the schema; these are the values a type cannot rule out, which would
    otherwise pass silently (0 steps, exit 0) or fail deep inside torch without naming the key.
    """
    t, o = cfg.trainer, cfg.optim
    checks = [
        (t.max_steps >= 0, f"trainer.max_steps={t.max_steps} must be >= 0 (0 = run trainer.epochs epochs)"),
        (t.max_steps > 0 or t.epochs > 0,
         f"trainer.max_steps={t.max_steps} and trainer.epochs={t.epochs} give no training steps; set one > 0"),
        (t.eval_every >= 0, f"trainer.eval_every={t.eval_every} must be >= 0 (0 = once per epoch)"),
        (t.log_every >= 1, f"trainer.log_every={t.log_every} must be >= 1"),
        (t.threads >= 0, f"trainer.threads={t.threads} must be >= 0 (0 = torch's default)"),
        (t.num_workers >= -1, f"trainer.num_workers={t.num_workers} must be >= 0, or -1 for auto"),
        (t.dist_timeout > 0, f"trainer.dist_timeout={t.dist_timeout} must be > 0 seconds"),
        (0 <= t.ema_decay < 1, f"trainer.ema_decay={t.ema_decay} must be in [0, 1) (0 = off)"),
        (cfg.data.batch_size >= 1, f"data.batch_size={cfg.data.batch_size} must be >= 1"),
        (o.lr > 0, f"optim.lr={o.lr} must be > 0"),
        (o.weight_decay >= 0, f"optim.weight_decay={o.weight_decay} must be >= 0"),
        (0 <= o.momentum < 1, f"optim.momentum={o.momentum} must be in [0, 1)"),
        (o.grad_clip >= 0, f"optim.grad_clip={o.grad_clip} must be >= 0 (0 = off)"),
        (o.warmup_steps >= 0, f"optim.warmup_steps={o.warmup_steps} must be >= 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


def to_dict(cfg: Any) -> dict[str, Any]:
    """The resolved config as plain containers (for checkpoints and ``config.yaml``)."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def save_yaml(cfg: Any, path: Path) -> None:
    path.write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))


def from_dict(schema_cls: type[C], data: dict[str, Any]) -> C:
    """Rebuild a config saved by :func:`to_dict` (e.g. from a checkpoint)."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema_cls), data))  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        raise UserError(f"saved config does not fit {schema_cls.__name__}: {str(err).splitlines()[0]}") from None
