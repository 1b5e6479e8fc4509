"""The first thing to run on a GPU: speed, memory, compile health and correctness of the GPU path in <= 8 minutes.

What it prints (and writes to ``benchmarks/results/gpu_check.json``), in this order:

1. the machine: GPU name, memory, count, torch/CUDA versions;
2. box decoding at 1333 x 800: the error of torchvision's decode in bf16 against fp64 (the defect
   detection avoids) and the dtype the detector's own decodes see with ``trainer.precision=bf16``;
3. ResNet-50 training images/s, ours (``Classifier(backbones.create("resnet50"))``) against
   torchvision's, batch 256 at 224 px, eager bf16 + channels-last, with peak memory;
4. the engine's classification step against a bare torchvision-reference loop (goal: within 10 %);
5. a short CUDA training run of every task with ``trainer.compile=true``: engine samples/s, loader
   alone against step alone (a loader slower than the step starves the GPU), peak memory, and the
   compile's graph breaks, graphs and recompiles;
6. ResNet-50 ours vs torchvision again, compiled (goal: ours/torchvision >= 1.2, >= 3,000 img/s on H100);
7. a 2-process NCCL ``torchrun`` smoke run when 2 GPUs are visible.

Every section runs unchanged on an H100 or H200; what does not fit (memory, the time budget, one
GPU, a missing dataset or tool) is skipped with a one-line reason, and a failing section prints its
error in one line and the rest go on. ``--dry-run`` runs every code path on the CPU at tiny sizes
(compile with the ``eager`` backend), so the script is known to work before a GPU appears.

    python benchmarks/gpu_check.py                 # on the GPU machine (make gpu-check)
    python benchmarks/gpu_check.py --dry-run       # on a CPU, about a minute
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # engine_throughput beside this file

import backbones
import tasks
from backbones.adapters import Classifier

BUDGET_S = 480.0


class Budget:
    """Seconds left of the whole check; a section that would not fit is skipped with a reason."""

    def __init__(self, total: float) -> None:
        self.total, self.start = total, time.monotonic()

    def left(self) -> float:
        return self.total - (time.monotonic() - self.start)

    def allows(self, needed: float) -> bool:
        return self.left() >= needed


class Report:
    def __init__(self) -> None:
        self.sections: dict[str, Any] = {}

    def section(self, name: str, fn: Callable[[], Any], budget: Budget, needs: float) -> None:
        """Run ``fn`` if ``needs`` seconds are left; one line for a skip or a failure, never a traceback."""
        if not budget.allows(needs):
            self.skip(name, f"needs about {needs:.0f} s, {max(0.0, budget.left()):.0f} s of the budget left")
            return
        started = time.monotonic()
        try:
            result = fn()
        except Skip as why:
            self.skip(name, str(why))
            return
        except Exception as err:  # one line per failure; the other sections still run
            where = traceback.extract_tb(err.__traceback__)[-1]
            line = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
            print(f"[{name}] FAILED ({line[:200]} at {Path(where.filename).name}:{where.lineno})", flush=True)
            self.sections[name] = {"status": "failed", "error": line[:500]}
            return
        self.sections[name] = {"status": "ok", "seconds": round(time.monotonic() - started, 1), "result": result}

    def skip(self, name: str, why: str) -> None:
        print(f"[{name}] skipped: {why}", flush=True)
        self.sections[name] = {"status": "skipped", "reason": why}


class Skip(Exception):
    """A section that cannot run here (the message is the one-line reason)."""


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


# ------------------------------------------------------------------ sections
def machine(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                            "python": platform.python_version(), "cpus": os.cpu_count()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpus=torch.cuda.device_count(), memory_gib=round(props.total_memory / 2**30, 1),
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                    bf16_native=torch.cuda.is_bf16_supported(including_emulation=False))
    else:
        info.update(gpu=None, cpu=platform.processor() or platform.machine())
    print(f"[machine] {json.dumps(info)}", flush=True)
    return info


def box_decode(device: torch.device, size: tuple[int, int]) -> dict[str, Any]:
    """bf16 decode error against fp64 at COCO scale, and the dtype our detector decodes in under bf16."""
    from torchvision.models.detection._utils import BoxCoder

    from tasks.core.config import load_config
    from tasks.detection.config import DetectionConfig
    from tasks.detection.model import build_model

    h, w = size
    coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(5000, generator=g) * (w - 64)
    y0 = torch.rand(5000, generator=g) * (h - 64)
    sides = 16 + torch.rand(5000, 2, generator=g) * 48
    anchors = torch.stack([x0, y0, x0 + sides[:, 0], y0 + sides[:, 1]], 1).to(device)
    deltas = (torch.randn(5000, 4, generator=g) * 0.2).to(device)
    exact = coder.decode_single(deltas.double(), anchors.double())
    errors = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        errors[name] = round(float((coder.decode_single(deltas.to(dtype), anchors.to(dtype)).double() - exact)
                                   .abs().max()), 4)
    seen: list[torch.dtype] = []
    original = BoxCoder.decode_single

    def spy(self: BoxCoder, rel_codes: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        seen.append(rel_codes.dtype)
        return original(self, rel_codes, boxes)

    cfg = load_config(DetectionConfig, overrides=["trainer.precision=bf16", f"model.min_size={min(size)}",
                                                  f"model.max_size={max(size)}", "model.proposals=300"])
    model = build_model(cfg, {"num_classes": 81, "dataset": "coco"}).to(device).eval()
    image = torch.rand(3, h, w, device=device)
    BoxCoder.decode_single = spy
    try:
        with torch.no_grad():
            model([image])
            sync(device)
            start = time.perf_counter()
            model([image])
            sync(device)
            seconds = time.perf_counter() - start
    finally:
        BoxCoder.decode_single = original
    result = {"image": f"{w}x{h}", "max_abs_error_px": errors, "detector_decode_dtypes": sorted({str(d) for d in seen}),
              "detector_forward_ms": round(1000 * seconds, 1)}
    ok = seen and all(d is torch.float32 for d in seen)
    print(f"[box_decode] decode error vs fp64 at {w}x{h}: fp32 {errors['fp32']} px, bf16 {errors['bf16']} px, "
          f"fp16 {errors['fp16']} px; our detector (precision=bf16) decodes in {result['detector_decode_dtypes']}"
          f" -> {'OK' if ok else 'WRONG: boxes in low precision'}", flush=True)
    return result


def resnet50(device: torch.device, batch: int, size: int, steps: int, compiled: bool,
             dtype: torch.dtype | None) -> dict[str, Any]:
    """Training images/s and peak memory, ours vs torchvision, interleaved; eager or compiled."""
    builders = {"ours": lambda: Classifier(backbones.create("resnet50"), 1000),
                "torchvision": lambda: torchvision.models.resnet50(weights=None)}
    contenders = {}
    for name, build in builders.items():
        model = build().to(device).to(memory_format=torch.channels_last).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        call = torch.compile(model) if compiled else model
        contenders[name] = (model, call, optimizer)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device=device)

    def run(name: str, n: int) -> float:
        _, call, optimizer = contenders[name]
        sync(device)
        start = time.perf_counter()
        for _ in range(n):
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = F.cross_entropy(call(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        sync(device)
        return n * batch / (time.perf_counter() - start)

    result: dict[str, Any] = {"batch": batch, "size": size, "compiled": compiled}
    for name in contenders:  # warm-up (cuDNN autotuning, compilation) and peak memory, one at a time
        reset_peak(device)
        run(name, 3)
        result[f"{name}_peak_gib"] = peak_gib(device)
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(3):
        for name in (list(contenders) if r % 2 == 0 else list(contenders)[::-1]):
            rates[name].append(run(name, steps))
    for name, values in rates.items():
        result[f"{name}_img_s"] = round(sorted(values)[1], 1)
    result["ours_over_torchvision"] = round(result["ours_img_s"] / result["torchvision_img_s"], 3)
    label = "compiled" if compiled else "eager"
    print(f"[resnet50 {label}] batch {batch} at {size}px: ours {result['ours_img_s']} img/s "
          f"({result['ours_peak_gib']} GiB), torchvision {result['torchvision_img_s']} img/s "
          f"({result['torchvision_peak_gib']} GiB), ours/torchvision {result['ours_over_torchvision']}", flush=True)
    contenders.clear()  # free the models before the next section
    return result


def engine_vs_bare(device: torch.device, steps: int, rounds: int, extra: dict[str, Any]) -> dict[str, Any]:
    import engine_throughput

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        row = engine_throughput.measure("classification", device, steps, rounds, Path(tmp), extra).row()
    print(f"[engine_vs_bare] classification: engine {row['engine']:.0f}/s, bare {row['bare']:.0f}/s, "
          f"engine/bare {row['ratio']:.3f} (goal >= 0.90 on GPU), loader alone {row['loader_alone']:.0f}/s, "
          f"step alone {row['step_alone']:.0f}/s", flush=True)
    return row


def compile_counters() -> dict[str, int]:
    from torch._dynamo.utils import counters, guard_failures

    return {"graph_breaks": int(sum(counters["graph_break"].values())),
            "unique_graphs": int(counters["stats"]["unique_graphs"]),
            "recompiles": int(sum(len(v) for v in guard_failures.values()))}


def task_run(name: str, device: torch.device, steps: int, extra: dict[str, Any]) -> dict[str, Any]:
    """A short compiled training run of one supervised task: rates, loader vs step, memory, compile health."""
    import engine_throughput
    import torch._dynamo

    torch._dynamo.reset()
    from torch._dynamo.utils import counters, guard_failures

    counters.clear()
    guard_failures.clear()
    reset_peak(device)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        row = engine_throughput.measure(name, device, steps, 1, Path(tmp), {"trainer.compile": True, **extra}).row()
    row.update(compile_counters(), peak_gib=peak_gib(device))
    starving = row["loader_alone"] < row["step_alone"]
    print(f"[task {name}] engine {row['engine']:.1f}/s | loader alone {row['loader_alone']:.1f}/s vs step alone "
          f"{row['step_alone']:.1f}/s{' (LOADER-BOUND)' if starving else ''} | peak {row['peak_gib']} GiB | "
          f"graph breaks {row['graph_breaks']}, graphs {row['unique_graphs']}, recompiles {row['recompiles']}",
          flush=True)
    return row


def dqn_run(device: torch.device, steps: int, root: Path) -> dict[str, Any]:
    start = time.perf_counter()
    run = tasks.train("dqn", {"trainer.device": device.type, "trainer.max_steps": steps, "trainer.eval_every": steps,
                              "trainer.progress": False, "trainer.runs_dir": str(root), "trainer.run_name": "dqn",
                              "eval.episodes": 1, "eval.final_episodes": 1})
    seconds = time.perf_counter() - start
    result = {"env_steps": steps, "seconds": round(seconds, 1), "env_steps_per_s": round(steps / seconds, 1),
              "metrics": {k: v for k, v in run.metrics.items() if isinstance(v, (int, float))}}
    print(f"[task dqn] {steps} env steps in {seconds:.1f} s ({result['env_steps_per_s']}/s, incl. setup and eval)",
          flush=True)
    return result


def nccl_smoke(root: Path, timeout: float) -> dict[str, Any]:
    if torch.cuda.device_count() < 2:
        raise Skip(f"{torch.cuda.device_count()} GPU visible; the NCCL smoke run needs 2")
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "tasks.cli", "train", "classification",
           "trainer.max_steps=40", "trainer.eval_every=20", "trainer.progress=false", "trainer.compile=false",
           f"trainer.runs_dir={root}", "trainer.run_name=nccl"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"torchrun exited {done.returncode}: {tail}")
    run = json.loads((root / "classification" / "nccl" / "run.json").read_text())
    result = {"seconds": round(seconds, 1), "runtime": run.get("runtime")}
    print(f"[nccl] 2 processes trained 40 steps in {seconds:.1f} s: {run.get('runtime')}", flush=True)
    return result


# ------------------------------------------------------------------ plan
#: per-task overrides of the short runs: on the GPU the default recipes at smaller data where
#: generation would dominate; in the dry run tiny everything
GPU_TASKS: dict[str, dict[str, Any]] = {
    "classification": {},
    "super_resolution": {},
    "detection": {},
    "segmentation": {"data.num_train": 400, "data.num_val": 100},
    "speech": {"data.num_train": 400, "data.num_val": 50},
}
DRY_TASKS: dict[str, dict[str, Any]] = {
    "classification": {"data.limit_train": 256, "data.limit_val": 64, "data.batch_size": 32,
                       "backbone.options.width": 0.5},
    "super_resolution": {"data.patches_per_image": 4, "data.val_crop": 96, "data.batch_size": 4},
    "detection": {"data.num_train": 16, "data.num_val": 8, "data.image_size": 64, "data.batch_size": 4,
                  "model.fpn_channels": 32, "model.proposals": 32},
    "segmentation": {"data.num_train": 16, "data.num_val": 8, "data.image_size": 64, "data.crop_size": 64,
                     "data.batch_size": 4},
    "speech": {"data.num_train": 24, "data.num_val": 8, "data.batch_size": 4},
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="every code path on the CPU at tiny sizes")
    p.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for the whole check (default 480)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_check.json"))
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        print("no CUDA device visible: nothing to check (run with --dry-run to exercise the code paths on the CPU)")
        return 0
    if dry:  # compile's code paths without a C++ toolchain's minutes: dynamo with the eager backend
        torch.compile = functools.partial(torch.compile, backend="eager")  # type: ignore[assignment]
    device = torch.device("cpu") if dry else torch.device("cuda", 0)
    if device.type == "cuda":
        from tasks.core.device import enable_tf32

        enable_tf32()
    budget, report = Budget(args.budget), Report()
    bf16 = torch.bfloat16
    r50 = {"batch": 2, "size": 64, "steps": 2} if dry else {"batch": 256, "size": 224, "steps": 20}
    if not dry:  # batch 256 at 224 px needs about 30 GiB in bf16: fits H100 and H200 alike
        free = torch.cuda.mem_get_info(device)[0] / 2**30
        if free < 40:
            r50["batch"] = 128
            print(f"[resnet50] {free:.0f} GiB free: batch 128 instead of 256", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu-check-runs-") as tmp:
        root = Path(tmp)
        report.section("machine", lambda: machine(device), budget, 1)
        report.section("box_decode", lambda: box_decode(device, (200, 333) if dry else (800, 1333)), budget,
                       5 if dry else 20)
        report.section("resnet50_eager", lambda: resnet50(device, r50["batch"], r50["size"], r50["steps"], False,
                                                          bf16), budget, 5 if dry else 45)
        report.section("engine_vs_bare", lambda: engine_vs_bare(
            device, 2 if dry else 40, 1 if dry else 3, DRY_TASKS["classification"] if dry else {}), budget,
            5 if dry else 40)
        for name, extra in (DRY_TASKS if dry else GPU_TASKS).items():
            report.section(f"task_{name}", functools.partial(task_run, name, device, 2 if dry else 20, extra),
                           budget, 5 if dry else 50)
        report.section("task_dqn", lambda: dqn_run(device, 300 if dry else 5000, root), budget, 5 if dry else 40)
        report.section("resnet50_compiled", lambda: resnet50(device, r50["batch"], r50["size"], r50["steps"], True,
                                                             bf16), budget, 10 if dry else 150)
        if dry:
            report.skip("nccl", "dry run (the 2-process smoke run needs 2 GPUs)")
        else:
            report.section("nccl", lambda: nccl_smoke(root, max(30.0, budget.left() - 5)), budget, 60)
    summary = {"dry_run": dry, "seconds": round(budget.total - budget.left(), 1), "sections": report.sections}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out = args.out.with_name(args.out.stem + "_dry.json") if dry else args.out
    out.write_text(json.dumps(summary, indent=1, default=str))
    states = [s["status"] for s in report.sections.values()]
    print(f"gpu_check: {states.count('ok')} ok, {states.count('skipped')} skipped, {states.count('failed')} failed "
          f"in {summary['seconds']} s -> {out}")
    return 1 if "failed" in states else 0


if __name__ == "__main__":
    sys.exit(main())
