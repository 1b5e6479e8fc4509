"""``rsuite``: train, evaluate, predict, list backbones and recipes, and report over run folders.

This is the only place (with the ``python -m tasks.<task>.train`` entry points, which call
:func:`train_entry`) that parses arguments; every command is a thin layer over :mod:`tasks.api`.
Errors at this boundary (bad path, bad config, unknown task) print one line to stderr and
exit with code 2; ``RSUITE_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
from pathlib import Path
from typing import NoReturn

from tasks.core.cli_errors import run_cli
from tasks.core.errors import UserError
from tasks.registry import TASKS, load_module


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors follow the CLI's contract: one line on stderr, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}; see `{self.prog} --help`\n")


class PluginOption(argparse.Action):
    """``--plugin MODULE`` (repeatable): the module is imported as soon as it is parsed, so even
    ``rsuite --plugin m train --help`` lists what it registers; a broken one warns and is skipped."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        from tasks.plugins import load_modules

        load_modules([str(values)])
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), values])


class HelpWithPlugins(argparse.Action):
    """``-h`` of ``rsuite train``: loads the installed plugins first, so the help names their tasks and
    backbones (plugins load lazily, so a plain ``rsuite train`` never pays for this)."""

    def __init__(self, option_strings: list[str], task_argument: argparse.Action, **kwargs: object) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0,
                         help="show this help, with the tasks and backbones of plugins, and exit")
        self.task_argument = task_argument

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        from tasks.plugins import listing
        from tasks.registry import names

        self.task_argument.help = f"one of: {', '.join(names())}"
        found = listing()
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.epilog = ("plugins (name: what it registers):\n" + found) if found else (
            "plugins: none loaded; install one (entry points residual_suite.backbones, residual_suite.tasks) "
            "or pass rsuite --plugin MODULE")
        parser.print_help()
        parser.exit()


def _load_env_plugins() -> None:
    """Import the modules named in ``RSUITE_PLUGINS`` (nothing to import, nothing loaded: ``--help`` stays fast)."""
    if os.environ.get("RSUITE_PLUGINS", "").strip():
        from tasks.plugins import load_from_env

        load_from_env()


def _task_of(run_dir: Path) -> str:
    """The task that wrote ``run_dir`` (``run.json``, else the checkpoint's own record)."""
    meta = run_dir / "run.json"
    if meta.is_file():
        return str(json.loads(meta.read_text())["task"])
    from tasks.core.checkpoint import load_checkpoint

    ckpts = run_dir / "checkpoints"
    for name in ("best.pt", "last.pt"):
        if (ckpts / name).is_file():
            return str(load_checkpoint(ckpts / name)["task"])
    raise UserError(f"{run_dir} has no checkpoints/best.pt or last.pt; pass a folder printed by `rsuite train`")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="RECIPE", help="a recipe name (`rsuite recipes TASK`) or a YAML path "
                                                      "(default: the task's embedded offline recipe)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its last checkpoint")


def cmd_train(args: argparse.Namespace, rest: list[str]) -> None:
    import tasks

    run = tasks.train(args.task, overrides=rest, recipe=args.config, resume=args.resume)
    print(run.dir)


def train_entry(task: str, argv: list[str] | None = None) -> None:
    """``python -m tasks.<task>.train [--config RECIPE] [--resume RUN_DIR] [key=value ...]``."""
    p = OneLineParser(prog=f"python -m tasks.{task}.train",
                                description=f"Train the {task} task; key=value pairs override the recipe.")
    add_train_arguments(p)
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. trainer.max_steps=100 backbone.name=plain20")
    _load_env_plugins()
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    args.task = task
    run_cli(lambda: cmd_train(args, args.overrides))


def cmd_evaluate(args: argparse.Namespace, rest: list[str]) -> None:
    import tasks

    metrics = tasks.evaluate(Path(args.run_dir), args.device)
    if args.json:
        print(json.dumps(metrics))
    else:
        for key, value in metrics.items():
            print(f"{key:>16}: {value:.5g}" if isinstance(value, float) else f"{key:>16}: {value}")


def cmd_predict(args: argparse.Namespace, rest: list[str]) -> None:
    from tasks.plugins import require

    run_dir = Path(args.run_dir)
    require(run_dir)  # a plugin task or backbone that is missing is named before its predict is looked up
    predict = load_module(_task_of(run_dir), "predict").predict
    options = {} if args.horizon is None else {"horizon": args.horizon}
    if options and "horizon" not in inspect.signature(predict).parameters:
        raise UserError(f"--horizon applies to dynamics runs; {run_dir} is a {_task_of(run_dir)} run")
    results = predict(run_dir, [Path(p) for p in args.inputs], Path(args.out) if args.out else None, **options)
    for r in results:
        print(json.dumps(r))


def cmd_export(args: argparse.Namespace, rest: list[str]) -> None:
    import tasks

    path, record = tasks.export(Path(args.run_dir), args.format, Path(args.out) if args.out else None,
                                dynamic_batch=args.dynamic_batch, opset=args.opset)
    print(f"max_abs_diff {record['max_abs_diff']:.3g} <= tolerance {record['tolerance']:g} "
          f"({len(record['checked'])} validation inputs; record in {path.name}.json)")
    print(path)


def cmd_recipes(args: argparse.Namespace, rest: list[str]) -> None:
    import tasks

    for name in [args.task] if args.task else tasks.task_names():
        print(f"{name}: {', '.join(tasks.recipes(name))}")


def cmd_backbones(args: argparse.Namespace, rest: list[str]) -> None:
    import backbones

    print(f"| {'name':<18} | {'modality':<8} | {'params':>9} | {'MACs':>9} | input |")
    print(f"|{'-' * 20}|{'-' * 10}|{'-' * 11}|{'-' * 11}|-------|")
    for name in backbones.names(args.modality):
        d = backbones.describe(name)
        print(f"| {name:<18} | {d['modality']:<8} | {d['params'] / 1e6:>8.2f}M | {d['macs'] / 1e9:>8.3f}G | "
              f"{'x'.join(map(str, d['input']))} |")
    from tasks.plugins import listing

    found = listing()
    if found:
        print(f"\nplugins (name: what it registers):\n{found}")


def cmd_report(args: argparse.Namespace, rest: list[str]) -> None:
    from tasks.core.report import write_report

    out = write_report(Path(args.runs_dir), Path(args.out) if args.out else None)
    print(out)


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x]
    except ValueError:
        raise UserError(f"{text!r} is not a comma-separated list of integers, e.g. 20,56") from None


def cmd_experiment(args: argparse.Namespace, rest: list[str]) -> None:
    from tasks import experiments

    out = Path(args.out) if args.out else None
    if args.kind == "connectivity":
        from tasks import connectivity

        budget = connectivity.DEFAULT_CPU_SECONDS if args.cpu_seconds is None else args.cpu_seconds
        print(connectivity.connectivity(_ints(args.seeds), budget, args.steps, out, list(rest)))
    elif args.kind == "depth-refinement":
        from tasks import depth_refinement as study

        images = args.part != "dynamics"  # key=value overrides go to the image runs, or to dynamics alone
        systems = tuple(s for s in args.systems.split(",") if s) if args.systems else None
        print(study.depth_refinement(_ints(args.seeds), part=args.part, blocks=args.blocks,
                                     steps=study.DEFAULT_IMAGE_STEPS if args.steps is None else args.steps, out=out,
                                     overrides=list(rest) if images else [],
                                     dynamics_overrides=[] if images else list(rest), systems=systems))
    elif args.kind == "degradation":
        if args.task != "classification":
            raise UserError(f"degradation runs on classification (CIFAR-style depths); for {args.task} use "
                            "`rsuite experiment sweep`")
        config, overrides = args.config, list(rest)
        if args.data == "cifar10":
            config = config or "cifar10_resnet56"
            overrides.append(f"data.root={args.root}")
        elif args.data:
            overrides.append(f"data.dataset={args.data}")
            if args.root:
                overrides.append(f"data.root={args.root}")
        print(experiments.degradation(_ints(args.depths), _ints(args.seeds), args.steps or 160, out, config,
                                      overrides))
    else:
        if rest:
            raise UserError(f"sweep takes no overrides ({' '.join(rest)}); it uses each task's --budget")
        tasks = [t for t in args.tasks.split(",") if t]
        variants = [v for v in args.variants.split(",") if v]
        print(experiments.sweep(tasks, variants, args.budget, _ints(args.seeds), out))


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="rsuite", description=__doc__.splitlines()[0])
    p.add_argument("--plugin", action=PluginOption, metavar="MODULE",
                   help="import MODULE first (repeatable; also RSUITE_PLUGINS=mod1,mod2): it may register "
                        "backbones or tasks; runs record it, evaluate/predict/--resume import it again")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a task; prints the run folder last", add_help=False,
                       description="Train TASK. Extra key=value arguments override the recipe.")
    task_argument = t.add_argument("task", help=f"one of: {', '.join(TASKS)}")
    t.add_argument("-h", "--help", action=HelpWithPlugins, task_argument=task_argument)
    add_train_arguments(t)
    t.set_defaults(fn=cmd_train)
    rc = sub.add_parser("recipes", help="the recipes shipped for each task")
    rc.add_argument("task", nargs="?", help=f"one of: {', '.join(TASKS)}, or a plugin's task")
    rc.set_defaults(fn=cmd_recipes)
    e = sub.add_parser("evaluate", help="evaluate a run's best checkpoint")
    e.add_argument("run_dir")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    e.set_defaults(fn=cmd_evaluate)
    r = sub.add_parser("predict", help="apply a run's model to your files; prints one JSON object per input",
                       description="Apply a run's model to your files. Every task prints one JSON object per "
                                   "input on stdout (JSON lines); --out also writes the task's result file.")
    r.add_argument("run_dir")
    r.add_argument("inputs", nargs="+")
    r.add_argument("--out", help="where to write the result file")
    r.add_argument("--horizon", type=int, help="dynamics: steps to roll out (default: the run's eval.horizon, or "
                                               "the whole trajectory given)")
    r.set_defaults(fn=cmd_predict)
    ex = sub.add_parser("export", help="export a run's model (ONNX, TorchScript, torch.export) and check it; "
                                      "prints the file last")
    ex.add_argument("run_dir")
    ex.add_argument("--format", default="onnx", choices=["onnx", "torchscript", "exported"])
    ex.add_argument("--out", help="the file to write (default RUN_DIR/export/model.<suffix>)")
    ex.add_argument("--dynamic-batch", action="store_true", help="leave the batch size free")
    ex.add_argument("--opset", type=int, help="ONNX opset (default 18)")
    ex.set_defaults(fn=cmd_export)
    b = sub.add_parser("backbones", help="table of registered backbones: parameters, multiply-adds")
    b.add_argument("--modality", choices=["image", "sequence", "vector"])
    b.set_defaults(fn=cmd_backbones)
    rp = sub.add_parser("report", help="one table and figures over every run folder found")
    rp.add_argument("runs_dir")
    rp.add_argument("--out", help="output folder (default: RUNS_DIR/report)")
    rp.set_defaults(fn=cmd_report)
    x = sub.add_parser("experiment", help="residual-vs-plain studies: degradation, sweep, connectivity, "
                                          "depth-refinement")
    x.add_argument("kind", choices=["degradation", "sweep", "connectivity", "depth-refinement"])
    x.add_argument("--task", default="classification", help="degradation: the task (classification)")
    x.add_argument("--depths", default="20,56", help="degradation: CIFAR depths, e.g. 20,56")
    x.add_argument("--steps", type=int, help="degradation: steps per run (default 160, ~15 min in all on 2 cores); "
                                             "connectivity: the same steps for every run instead of --cpu-seconds; "
                                             "depth-refinement: training steps per image run (default 250)")
    x.add_argument("--cpu-seconds", type=float,
                   help="connectivity: training CPU seconds per run, the equal CPU budget (default 28: ~15 CPU "
                        "minutes in all)")
    x.add_argument("--data", help="degradation: dataset instead of the embedded default, e.g. cifar10")
    x.add_argument("--root", help="degradation: folder of --data")
    x.add_argument("--config", help="degradation: base recipe (a name or a YAML path)")
    x.add_argument("--tasks", default=",".join(TASKS), help="sweep: comma-separated tasks")
    x.add_argument("--variants", default="residual,plain", help="sweep: residual,plain")
    x.add_argument("--budget", default="small", help="sweep: each task's named budget")
    x.add_argument("--part", default="all", choices=["images", "dynamics", "all"],
                   help="depth-refinement: which half (key=value overrides go to the image runs; with "
                        "--part dynamics to the dynamics runs)")
    x.add_argument("--blocks", type=int, default=4,
                   help="depth-refinement: training depth N of the image nets (even; evaluated at N/2, N, 2N, 4N)")
    x.add_argument("--systems", help="depth-refinement: comma-separated embedded dynamical systems "
                                     "(default pendulum,lorenz)")
    x.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    x.add_argument("--out", help="output folder (default runs/experiments/<kind>-<time>)")
    x.set_defaults(fn=cmd_experiment)
    return p


def main(argv: list[str] | None = None) -> None:
    _load_env_plugins()  # --plugin modules are imported while the arguments are parsed
    parser = build_parser()
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.command not in ("train", "experiment") and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    run_cli(lambda: args.fn(args, rest))


if __name__ == "__main__":
    main()
