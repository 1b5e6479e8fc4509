"""The training loop every supervised task shares.

One :class:`Trainer` owns device and precision, DDP, the optimizer and schedule, EMA,
evaluation cadence, atomic checkpoints, resume and logging. Resuming restores model,
optimizer, schedule, scaler, EMA, RNG states and the position inside the epoch, so on CPU
a resumed run ends with exactly the weights of an uninterrupted one.

On GPUs the step never waits for the device: losses and logged scalars stay on it and are
read every ``trainer.log_every`` steps (:mod:`tasks.core.meter`). Inputs follow the model's
channels-last layout; cuDNN autotunes for tasks whose batches have one shape; TF32 serves fp32
work; ``trainer.compile`` compiles what the task says (detection: backbone + FPN only). Under
``torchrun`` local rank 0 builds the dataset caches first, every rank evaluates its shard of
the validation set, and ``trainer.sync_bn`` shares BatchNorm statistics across GPUs.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from backbones.ode import nfe, ode_blocks

from . import distributed
from .device import autocast, autocast_dtype, loader_workers, precision_name, resolve_device, set_threads
from .ema import EMA
from .errors import UserError
from .evaluation import score, sync_buffers
from .lifecycle import Progress, RunFolder, StopRequest, best_view, checkpoint, restore
from .loader import ShuffledBatchSampler, make_loader, shard_loader
from .meter import LogWindow
from .optim import build_optimizer, build_scheduler
from .runlog import plot_curves
from .unreadable import SkipUnreadable
from .weights import load_pretrained

if TYPE_CHECKING:
    from .supervised import SupervisedTask


class Trainer:
    """Fits ``task`` with config ``cfg`` into the claimed run folder ``run`` (see :func:`tasks.api.train`)."""

    def __init__(self, task: SupervisedTask, cfg: Any, run: RunFolder) -> None:
        self.task, self.cfg, self.run, self.run_dir = task, cfg, run, run.path
        t = cfg.trainer
        self.device = resolve_device(t.device, int(os.environ.get("LOCAL_RANK", "0")))
        self.dist = distributed.setup(self.device.type, t.dist_timeout)
        run.is_main = self.dist.is_main
        self.num_workers = loader_workers(t.num_workers, self.device, self.dist.local_world_size)
        set_threads(t.threads, self.dist.local_world_size, self.num_workers)
        torch.manual_seed(cfg.seed + self.dist.rank)
        self.amp_dtype = autocast_dtype(t.precision, self.device)
        # detection autocasts its backbone and FPN itself; its box arithmetic stays fp32
        self.forward_dtype = None if task.autocast_in_model else self.amp_dtype
        with distributed.local_main_first(self.dist):  # the other ranks read the caches rank 0 wrote
            self.data = task.build_data(cfg)
        self.model = task.build_model(cfg, self.data.info)
        self.pretrained = load_pretrained(self.model, cfg.backbone)  # before EMA/DDP copy the weights
        self.model = self.model.to(self.device)
        self.channels_last = self.device.type == "cuda" and t.channels_last and task.image_model
        if self.channels_last:
            self.model = task.to_channels_last(self.model)
        self.sync_bn = self.dist.enabled and t.sync_bn
        if self.sync_bn:
            self.model = sync_batch_norm(self.model, self.device)
        self.train_model: nn.Module = self.model
        if self.dist.enabled:  # DDP broadcasts rank 0's weights: the EMA copy below starts from them
            self.train_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                gradient_as_bucket_view=True)
        self.ema = None
        if t.ema_decay > 0:
            self.ema = EMA(self.model, t.ema_decay)
        if t.compile:  # after the EMA copy: a task may compile part of the model in place
            self.train_model = task.compile(self.model, self.train_model, cfg)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = task.fixed_train_shapes
        self._build_loaders()
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, self.total_steps, cfg.optim)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype is torch.float16)
        self.progress = Progress(t.monitor or task.headline, task.higher_is_better)
        self.params = sum(p.numel() for p in self.model.parameters())
        self.ode_blocks = ode_blocks(self.model)  # continuous-depth backbones: their NFE is logged
        self.info = self.data.info
        self.logger = run.open_logger()
        self.interrupted = False
        self.runtime = self._runtime()
        if self.dist.is_main and t.progress:  # with the progress bar: scripts and tests keep stderr for errors
            print(start_line(task.name, self.runtime), file=sys.stderr)

    @property
    def step(self) -> int:
        return self.progress.step

    # ----------------------------------------------------------------- setup
    def _build_loaders(self) -> None:
        cfg, world = self.cfg, self.dist.world_size
        if cfg.data.batch_size % world:
            raise UserError(f"data.batch_size={cfg.data.batch_size} is the global batch and must divide "
                            f"by the {world} processes; pick a multiple of {world}")
        self.local_batch = cfg.data.batch_size // world
        n = len(self.data.train)
        if n // world < self.local_batch:
            raise UserError(f"the training set has {n} samples, fewer than one batch of {cfg.data.batch_size}; "
                            "lower data.batch_size or add data")
        pin = self.device.type == "cuda"
        # the task's batches (similar lengths, aspect ratios) or plain shuffled ones; resumable either way
        sampler = self.task.batch_sampler(cfg, self.data.train, self.local_batch, self.dist.rank, world)
        if sampler is None:  # a sampler's truth value is its length, so test for None explicitly
            sampler = ShuffledBatchSampler(n, self.local_batch, seed=cfg.seed, rank=self.dist.rank, world_size=world)
        self.sampler = sampler
        strict = cfg.data.strict
        self.train_loader = make_loader(SkipUnreadable(self.data.train, "training", strict), self.local_batch,
                                        batch_sampler=self.sampler, num_workers=self.num_workers, seed=cfg.seed,
                                        rank=self.dist.rank, collate_fn=self.data.collate_fn, pin_memory=pin)
        val = SkipUnreadable(self.data.val, "validation", strict)
        self.val_loader = None
        if self.task.sharded_eval:  # every rank scores every world-th batch; the task reduces the metrics
            self.val_loader = shard_loader(val, self.local_batch, self.dist.rank, world, num_workers=self.num_workers,
                                           collate_fn=self.data.collate_fn, pin_memory=pin)
        elif self.dist.is_main:
            self.val_loader = shard_loader(val, self.local_batch, 0, 1, num_workers=self.num_workers,
                                           collate_fn=self.data.collate_fn, pin_memory=pin)
        self.steps_per_epoch = self.sampler.batches_per_epoch()
        t = cfg.trainer
        self.total_steps = t.max_steps if t.max_steps > 0 else t.epochs * self.steps_per_epoch
        self.eval_every = t.eval_every if t.eval_every > 0 else self.steps_per_epoch

    def _runtime(self) -> dict[str, Any]:
        """Where and how this run trains (printed at start, written to run.json)."""
        cuda = self.device.type == "cuda"
        return {
            "device": f"{self.device} ({torch.cuda.get_device_name(self.device)})" if cuda else "cpu",
            "precision": precision_name(self.amp_dtype) + (" (backbone+FPN; boxes fp32)"
                                                           if self.task.autocast_in_model and self.amp_dtype else ""),
            "world_size": self.dist.world_size,
            "compile": self.task.compile_scope if self.cfg.trainer.compile else "off",
            "num_workers": self.num_workers,
            "threads": torch.get_num_threads(),
            "channels_last": self.channels_last,
            "sync_bn": self.sync_bn,
            "tf32": cuda and torch.get_float32_matmul_precision() != "highest",
            "cudnn_benchmark": cuda and self.task.fixed_train_shapes,
            "torch": torch.__version__,
        }

    # ------------------------------------------------------------ checkpoint
    def save(self, is_best: bool) -> None:
        state = checkpoint(self.task.name, self.cfg, self.data.info, self.progress, model=self.model.state_dict(),
                           optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                           scaler=self.scaler.state_dict(), ema=self.ema.state_dict() if self.ema else None)
        best = None
        if is_best:  # with EMA, evaluate/predict use the averaged weights
            weights = {k.removeprefix("module."): v for k, v in self.ema.state_dict().items()
                       if k.startswith("module.")} if self.ema is not None else state["model"]
            best = best_view(state, ("optimizer", "scheduler", "scaler", "ema"), model=weights)
        self.run.save(state, best)

    def resume(self) -> bool:
        ckpt = self.run.load_last()
        if ckpt is None:
            return False
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None and ckpt.get("ema") is not None:
            self.ema.load_state_dict(ckpt["ema"])
        restore(ckpt, self.progress)
        if self.dist.enabled:  # each rank's own stream continues from the shared state
            torch.manual_seed(self.cfg.seed + self.dist.rank + self.step)
        return True

    # ------------------------------------------------------------------ loop
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def evaluate(self) -> dict[str, Any]:
        """Validation metrics, the same on every rank (sharded and reduced, or rank 0's broadcast)."""
        metrics: dict[str, Any] = {}
        model = self.eval_model()
        run_dir = self.run_dir if self.dist.is_main else None
        if self.task.sharded_eval:
            sync_buffers(model)
            metrics = score(self.task, model, self.val_loader, self.device, self.data.info, self.cfg, run_dir)
        else:
            if self.dist.is_main:
                metrics = score(self.task, model, self.val_loader, self.device, self.data.info, self.cfg, run_dir)
            metrics = distributed.broadcast(metrics)
        self.model.train()
        return metrics

    def _train_step(self, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        """One optimizer step; returns the detached loss and the task's logs, still on the device."""
        batch = self.task.to_device(batch, self.device, self.channels_last)
        with autocast(self.device, self.forward_dtype):
            loss, logs = self.task.loss(self.train_model, batch, self.cfg)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.ode_blocks:  # the solver's work this step: train/nfe_forward, train/nfe_backward
            logs = {**logs, **nfe(self.ode_blocks)}
        if self.cfg.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return loss.detach(), logs

    def fit(self, stop_at: int | None = None) -> dict[str, Any]:
        """Train to ``total_steps`` (or stop after ``stop_at`` steps, as a kill would: no plot then).

        Ctrl-C or SIGTERM stops after the current step with a checkpoint (``self.interrupted``).
        """
        self.model.train()
        bar = tqdm(total=self.total_steps, initial=self.step, file=sys.stderr, dynamic_ncols=True,
                   disable=not (self.dist.is_main and self.cfg.trainer.progress), desc=self.task.name)
        self._clock = time.perf_counter()
        with StopRequest() as stop:
            metrics = self._epochs(bar, stop, stop_at)
        bar.close()
        if self.dist.is_main and (self.step >= self.total_steps or self.interrupted):
            plot_curves(self.run_dir, f"{self.task.name}: {self.cfg.backbone.name}")
        return metrics

    def _epochs(self, bar: tqdm, stop: StopRequest, stop_at: int | None) -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        window = LogWindow(self.device)
        while self.step < self.total_steps:
            epoch, offset = divmod(self.step, self.steps_per_epoch)
            self.sampler.set_epoch(epoch, offset)
            batches = iter(self.train_loader)
            while True:
                asked = time.perf_counter()
                batch = next(batches, None)
                if batch is None:
                    break
                waited = time.perf_counter() - asked
                loss, logs = self._train_step(batch)
                self.progress.step += 1
                window.add(loss, logs, self.task.batch_size(batch), waited)
                if self.step % self.cfg.trainer.log_every == 0 or self.step == self.total_steps:
                    self._log(window, epoch, bar)
                bar.update(1)
                if self.step % self.eval_every == 0 or self.step == self.total_steps:
                    metrics = self._eval_and_save(window)
                elif stop:
                    self._check_finite(window)
                    self.progress.elapsed += time.perf_counter() - self._clock
                    self.save(is_best=False)
                if stop:
                    self.interrupted = True
                    return metrics
                if self.step >= self.total_steps or (stop_at is not None and self.step >= stop_at):
                    return metrics
        return metrics

    def _log(self, window: LogWindow, epoch: int, bar: tqdm) -> None:
        """Read the window (one all-reduce, one host sync), stop every rank on a non-finite loss, log."""
        record = {"step": self.step, "epoch": epoch, **window.read(self.dist.world_size),
                  "lr": self.scheduler.get_last_lr()[0]}
        if not math.isfinite(record["train/loss"]):
            self._diverged(record["train/loss"])
        if self.device.type == "cuda":
            record["max_memory_gb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**30, 3)
        self.logger.train(record)
        bar.set_postfix(loss=f"{record['train/loss']:.4f}", rate=f"{record['samples_per_s']:.0f}/s")

    def _check_finite(self, window: LogWindow) -> None:
        """Before a checkpoint: a non-finite loss since the last log must not be saved as ``last.pt``."""
        if not window.loss_is_finite():
            self._diverged(float("nan"))

    def _diverged(self, value: float) -> None:
        raise UserError(f"loss became {value} by step {self.step}; lower optim.lr, set optim.grad_clip, or check "
                        "the data (last good checkpoint kept)")

    def _eval_and_save(self, window: LogWindow) -> dict[str, Any]:
        self._check_finite(window)
        window.pause()
        self.progress.elapsed += time.perf_counter() - self._clock
        metrics = self.evaluate()
        self._clock = time.perf_counter()
        is_best = self.progress.improved(metrics)
        if self.dist.is_main:
            self.logger.eval({"step": self.step, "train_seconds": round(self.progress.elapsed, 2),
                              "params": self.params, **{f"val/{k}": v for k, v in metrics.items()}})
            summary = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float)))
            tqdm.write(f"step {self.step}: {summary}", file=sys.stderr)
        self.save(is_best)
        window.resume()
        return metrics


def sync_batch_norm(model: nn.Module, device: torch.device) -> nn.Module:
    """``trainer.sync_bn``: BatchNorm statistics over the global batch (torchvision's and timm's ``--sync-bn``);
    what small per-GPU batches (1-2 detection images) need. Frozen BatchNorms stay frozen."""
    if device.type != "cuda":
        raise UserError("trainer.sync_bn=true needs CUDA (PyTorch's SyncBatchNorm runs on GPUs only); "
                        "drop it for CPU runs")
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def start_line(task: str, runtime: dict[str, Any]) -> str:
    """One line naming device, precision, processes, compile and loader (stderr at start)."""
    flags = [name for name in ("channels_last", "tf32", "cudnn_benchmark", "sync_bn") if runtime.get(name)]
    return (f"{task}: {runtime['device']} | {runtime['precision']} | {runtime['world_size']} process"
            f"{'es' if runtime['world_size'] > 1 else ''} | compile {runtime['compile']} | "
            f"{runtime['num_workers']} loader workers, {runtime['threads']} threads"
            + (f" | {', '.join(flags)}" if flags else ""))
