"""The training loop every supervised task shares.

One :class:`Trainer` owns device and precision, DDP, the optimizer and schedule, EMA,
evaluation cadence, atomic checkpoints, resume and logging. Resuming restores model,
optimizer, schedule, scaler, EMA, RNG states and the position inside the epoch, so on CPU
a resumed run ends with exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from . import distributed
from .device import autocast, autocast_dtype, resolve_device, set_threads
from .errors import UserError
from .lifecycle import Progress, RunFolder, best_view, checkpoint, restore
from .loader import ShuffledBatchSampler, make_loader
from .optim import build_optimizer, build_scheduler
from .runlog import plot_curves

if TYPE_CHECKING:
    from .supervised import SupervisedTask


class Trainer:
    """Fits ``task`` with config ``cfg`` into the claimed run folder ``run`` (see :func:`tasks.api.train`)."""

    def __init__(self, task: SupervisedTask, cfg: Any, run: RunFolder) -> None:
        self.task, self.cfg, self.run, self.run_dir = task, cfg, run, run.path
        t = cfg.trainer
        self.device = resolve_device(t.device, int(os.environ.get("LOCAL_RANK", "0")))
        self.dist = distributed.setup(self.device.type)
        run.is_main = self.dist.is_main
        set_threads(t.threads, self.dist.world_size, t.num_workers)
        torch.manual_seed(cfg.seed + self.dist.rank)
        self.amp_dtype = autocast_dtype(t.precision, self.device)
        self.data = task.build_data(cfg)
        self.model = task.build_model(cfg, self.data.info).to(self.device)
        if self.device.type == "cuda" and t.channels_last and task.image_model:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.train_model: nn.Module = self.model
        if self.dist.enabled:
            self.train_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if t.compile:
            self.train_model = torch.compile(self.train_model)
        self._build_loaders()
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, self.total_steps, cfg.optim)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype is torch.float16)
        self.ema = None
        if t.ema_decay > 0:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(t.ema_decay), use_buffers=True)
        self.progress = Progress(t.monitor or task.headline, task.higher_is_better)
        self.params = sum(p.numel() for p in self.model.parameters())
        self.info = self.data.info
        self.logger = run.open_logger()

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
        self.train_loader = make_loader(self.data.train, self.local_batch, batch_sampler=self.sampler,
                                        num_workers=cfg.trainer.num_workers, seed=cfg.seed,
                                        collate_fn=self.data.collate_fn, pin_memory=pin)
        self.val_loader = make_loader(self.data.val, self.local_batch, num_workers=cfg.trainer.num_workers,
                                      seed=cfg.seed, collate_fn=self.data.collate_fn, pin_memory=pin)
        self.steps_per_epoch = self.sampler.batches_per_epoch()
        t = cfg.trainer
        self.total_steps = t.max_steps if t.max_steps > 0 else t.epochs * self.steps_per_epoch
        self.eval_every = t.eval_every if t.eval_every > 0 else self.steps_per_epoch

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

    def evaluate(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self.dist.is_main:
            model = self.eval_model()
            model.eval()
            with torch.no_grad(), autocast(self.device, self.amp_dtype):
                metrics = self.task.evaluate(model, self.val_loader, self.device, self.data.info, self.cfg,
                                             self.run_dir)
            self.model.train()
        distributed.barrier()
        return metrics

    def _train_step(self, batch: Any) -> tuple[float, dict[str, float]]:
        batch = self.task.to_device(batch, self.device)
        with autocast(self.device, self.amp_dtype):
            loss, logs = self.task.loss(self.train_model, batch, self.cfg)
        if not torch.isfinite(loss):
            raise UserError(f"loss became {float(loss.detach())} at step {self.step}; lower optim.lr, set "
                            "optim.grad_clip, or check the data (last good checkpoint kept)")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return float(loss.detach()), logs

    def fit(self, stop_at: int | None = None) -> dict[str, float]:
        """Train to ``total_steps`` (or stop after ``stop_at`` steps, as a kill would)."""
        self.model.train()
        bar = tqdm(total=self.total_steps, initial=self.step, file=sys.stderr, dynamic_ncols=True,
                   disable=not (self.dist.is_main and self.cfg.trainer.progress), desc=self.task.name)
        metrics: dict[str, float] = {}
        window_loss, window_n, seen, t0 = 0.0, 0, 0, time.perf_counter()
        self._clock = time.perf_counter()
        while self.step < self.total_steps:
            epoch, offset = divmod(self.step, self.steps_per_epoch)
            self.sampler.set_epoch(epoch, offset)
            for batch in self.train_loader:
                loss, logs = self._train_step(batch)
                self.progress.step += 1
                window_loss, window_n = window_loss + loss, window_n + 1
                seen += self.task.batch_size(batch) * self.dist.world_size
                if self.step % self.cfg.trainer.log_every == 0 or self.step == self.total_steps:
                    rate = seen / max(1e-9, time.perf_counter() - t0)
                    record = {"step": self.step, "epoch": epoch, "train/loss": window_loss / window_n,
                              "lr": self.scheduler.get_last_lr()[0], "samples_per_s": rate,
                              **{f"train/{k}": v for k, v in logs.items()}}
                    self.logger.train(record)
                    bar.set_postfix(loss=f"{record['train/loss']:.4f}", rate=f"{rate:.0f}/s")
                    window_loss, window_n = 0.0, 0
                bar.update(1)
                if self.step % self.eval_every == 0 or self.step == self.total_steps:
                    metrics = self._eval_and_save()
                if self.step >= self.total_steps or (stop_at is not None and self.step >= stop_at):
                    break
            if stop_at is not None and self.step >= stop_at:
                break
        bar.close()
        if self.dist.is_main:
            plot_curves(self.run_dir, f"{self.task.name}: {self.cfg.backbone.name}")
        return metrics

    def _eval_and_save(self) -> dict[str, float]:
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
        return metrics
