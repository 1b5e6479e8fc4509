"""Sharded evaluation, DDP with unused stages and NaN stops, with 2 gloo processes on the CPU.

One ``mp.spawn`` runs every multi-process check (starting processes costs most of the time):
classification and detection validation scored on 2 ranks gives exactly the numbers of 1
process, each rank scoring only its shard; a detector whose last stage the FPN never reads
trains under DDP; a diverging loss stops both ranks with the one-line error.
"""

import json
import os
from pathlib import Path

import torch

import tasks
from tasks.classification.task import TASK as CLS
from tasks.core import distributed
from tasks.core.checkpoint import load_checkpoint
from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.core.evaluation import score
from tasks.core.loader import shard_loader
from tasks.core.unreadable import SkipUnreadable
from tasks.detection.task import TASK as DET
from tests.ranks import free_port, run_ranks

WORLD = 2


def _det_overrides(root: Path) -> list[str]:
    return ["data.num_train=16", "data.num_val=12", "data.image_size=64", "data.batch_size=4",
            "backbone.name=resnet18", "model.fpn_channels=32", "model.proposals=32", "model.rois_per_image=32",
            "model.returned_stages=[1,2]", "trainer.max_steps=2", "trainer.eval_every=2", "trainer.log_every=1",
            "trainer.progress=false", f"trainer.runs_dir={root / 'runs'}", "trainer.threads=1"]


class Recorded(torch.utils.data.Dataset):
    """A dataset that remembers which indices it served (loaders run in-process here)."""

    def __init__(self, dataset) -> None:
        self.dataset, self.seen = dataset, []

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        self.seen.append(i)
        return self.dataset[i]


def _score(task, overrides: list[str], batch: int, rank: int, world: int) -> tuple[dict, list[int]]:
    """``task``'s validation metrics of a seeded, untrained model on this rank's shard."""
    cfg = load_config(task.config_class, task.recipe_path(), overrides)
    data = task.build_data(cfg)
    torch.manual_seed(0)
    model = task.build_model(cfg, data.info)
    val = Recorded(SkipUnreadable(data.val, "validation"))
    loader = shard_loader(val, batch, rank, world, collate_fn=data.collate_fn)
    return score(task, model, loader, torch.device("cpu"), data.info, cfg), val.seen


def _cases(tiny_cls: list[str], root: Path) -> list[tuple]:
    return [(CLS, tiny_cls, 16), (DET, _det_overrides(root), 2)]


def _worker(rank: int, ports: list[int], tiny_cls: list[str], root: Path) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(ports[0]), OMP_WAIT_POLICY="PASSIVE")
    torch.set_num_threads(1)
    distributed.setup("cpu", timeout_s=120)
    out = {}
    for task, overrides, batch in _cases(tiny_cls, root):
        out[task.name] = _score(task, overrides, batch, rank, WORLD)
    # the engine: DDP on a detector whose last two stages the FPN never runs, sharded evaluation
    run = tasks.train(DET, [*_det_overrides(root), "trainer.run_name=ddp"])  # tears the group down after
    out["ddp_metrics"] = run.metrics
    # a diverging loss stops both ranks (the check happens on the all-reduced loss)
    os.environ["MASTER_PORT"] = str(ports[1])  # a fresh process group for the next run
    try:
        tasks.train(CLS, [*tiny_cls, "trainer.run_name=nan", "optim.lr=1e30", "optim.momentum=0",
                          "backbone.norm=none", "trainer.max_steps=4", "trainer.log_every=2"])
        out["nan"] = "trained on"
    except UserError as err:
        out["nan"] = str(err)
    (root / f"rank{rank}.json").write_text(json.dumps(out))


def test_two_gloo_ranks_shard_evaluation_train_unused_stages_and_stop_together(tiny_cls, tmp_path) -> None:
    run_ranks(_worker, ([free_port(), free_port()], tiny_cls, tmp_path), WORLD)  # ~20 s on an idle 2-core CPU
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the ranks ran one thread each: the same kernels, bit for bit
    try:
        for task, overrides, batch in _cases(tiny_cls, tmp_path):
            single, seen = _score(task, overrides, batch, 0, 1)
            assert all(r[task.name][0] == single for r in ranks), (task.name, single, [r[task.name][0] for r in ranks])
            shards = [r[task.name][1] for r in ranks]
            assert not set(shards[0]) & set(shards[1])  # each rank scored only its own samples
            assert sorted(shards[0] + shards[1]) == sorted(seen) == list(range(len(seen)))
            assert shards[0] == [i for b in distributed.shard_batches(len(seen), batch, 0, WORLD) for i in b]
    finally:
        torch.set_num_threads(threads)
    assert ranks[0]["classification"][0]["samples"] == 128
    assert 0 < ranks[0]["detection"][0]["map_50"] <= 1  # an untrained detector still finds a few boxes

    ddp = tmp_path / "runs" / "detection" / "ddp"
    assert load_checkpoint(ddp / "checkpoints" / "last.pt")["step"] == 2
    assert ranks[0]["ddp_metrics"] == ranks[1]["ddp_metrics"] and "map_50" in ranks[0]["ddp_metrics"]
    runtime = json.loads((ddp / "run.json").read_text())["runtime"]
    assert runtime["world_size"] == WORLD and runtime["device"] == "cpu"
    assert ranks[0]["nan"].startswith("loss became") and ranks[0]["nan"] == ranks[1]["nan"], [r["nan"] for r in ranks]
