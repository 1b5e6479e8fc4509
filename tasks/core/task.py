"""What every task declares: its name, headline metric, recipes, config class and budgets.

:class:`Task` imports nothing that runs. The two kinds of task put their machinery beside
it: :class:`tasks.core.supervised.SupervisedTask` (data, model, loss, batch evaluation, run
by :mod:`tasks.core.engine`) and the DQN agent (its own acting loop). Both hand their run to
the one lifecycle in :mod:`tasks.core.lifecycle`, and :mod:`tasks.api` drives them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .errors import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .export import ExportSpec
    from .lifecycle import RunFolder
    from .predict import TaskPredictor


def recipes_dir() -> Path:
    """The recipes shipped inside the package (``tasks/configs/<task>/<recipe>.yaml``)."""
    return Path(str(resources.files("tasks") / "configs"))


@dataclass(frozen=True)
class Budget:
    """A named amount of training: a recipe (``None`` = the task's default) plus overrides."""

    overrides: dict[str, Any] = field(default_factory=dict)
    recipe: str | None = None


class Fitter(Protocol):
    """What a task's trainer offers the run lifecycle (the engine's ``Trainer``, the ``DQNTrainer``)."""

    info: dict[str, Any]
    pretrained: dict[str, Any] | None  # what backbone.weights loaded (recorded in run.json), or None

    def resume(self) -> bool: ...

    def fit(self, stop_at: int | None = None) -> dict[str, float]: ...


class Task:
    """Base of every task plugin; subclasses fill the class attributes and the hooks below."""

    name: ClassVar[str]
    config_class: ClassVar[type]
    default_recipe: ClassVar[str]  # a recipe name under tasks/configs/<name>/
    headline: ClassVar[str]  # the metric that picks best.pt and that reports compare
    higher_is_better: ClassVar[bool] = True
    #: named CPU budgets for `make demo` and `rsuite experiment sweep`; "small" also fixes the
    #: backbone whose residual/plain twins the sweep compares
    budgets: ClassVar[dict[str, Budget]] = {}

    # ------------------------------------------------------------ recipes
    def recipe_folder(self) -> Path:
        """Where this task's recipes live: ``tasks/configs/<name>/`` (a plugin task points at its own package)."""
        return recipes_dir() / self.name

    def recipes(self) -> list[str]:
        """Names of the recipes shipped for this task."""
        folder = self.recipe_folder()
        return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []

    def recipe_path(self, recipe: str | Path | None = None) -> Path:
        """A recipe by name (``fashion_mnist_plain20``), or a YAML path; ``None`` is the default recipe."""
        if recipe is None:
            recipe = self.default_recipe
        path = Path(recipe)
        if path.suffix in (".yaml", ".yml"):
            return path  # a user's file (a missing one is reported when it is read)
        shipped = self.recipe_folder() / f"{recipe}.yaml"
        if not shipped.is_file():
            raise UserError(f"{self.name} has no recipe {str(recipe)!r}; choose one of: {', '.join(self.recipes())} "
                            "or give a YAML path")
        return shipped

    # -------------------------------------------------------------- hooks
    def check(self, cfg: Any) -> None:
        """Reject settings that cannot work, before any data is built or run folder made (one-line errors)."""

    def build_model(self, cfg: Any, info: dict[str, Any]) -> nn.Module:
        """The model for ``cfg`` and the data it was built for (``info``, saved in every checkpoint)."""
        raise NotImplementedError

    def make_trainer(self, cfg: Any, run: RunFolder) -> Fitter:
        """The object that trains ``cfg`` into ``run`` (the engine, or an acting loop)."""
        raise NotImplementedError

    def final_metrics(self, cfg: Any, model: nn.Module, info: dict[str, Any], run_dir: Path | None,
                      device: Any) -> dict[str, Any]:
        """``rsuite evaluate``: the metrics of a finished run's model under the task's fixed names.

        ``run_dir`` receives pictures; ``None`` (a read-only run folder) means metrics only.
        """
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What a run folder records about its task (``run.json``), so reports need no task table."""
        return {"task": self.name, "headline": self.headline, "higher_is_better": self.higher_is_better}

    # ------------------------------------------------- deployment hooks
    def example_inputs(self, cfg: Any, info: dict[str, Any], batch: int = 1) -> list[tuple[torch.Tensor, ...]]:
        """Real inputs from the validation data, as the exported module takes them (``rsuite export``).

        Several input tuples of ``batch`` items each; where an axis is free (image size, frames)
        they differ along it, so the export's self-check covers what it promises.
        """
        raise UserError(f"{self.name} has no export; exportable tasks define example_inputs and export_spec")

    def export_spec(self, cfg: Any, model: nn.Module, info: dict[str, Any]) -> ExportSpec:
        """What ``rsuite export`` writes for this task (see :class:`tasks.core.export.ExportSpec`)."""
        raise UserError(f"{self.name} has no export; exportable tasks define example_inputs and export_spec")

    def make_predictor(self, cfg: Any, info: dict[str, Any], device: torch.device, model: nn.Module | None = None,
                       session: Any = None) -> TaskPredictor:
        """Pre- and post-processing around ``model`` (a run) or ``session`` (an exported ONNX file)."""
        raise UserError(f"{self.name} has no predictor")
