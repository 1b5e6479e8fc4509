"""Fixtures for task tests: a tiny real dataset (Fashion-MNIST slice, else sklearn digits)."""

from collections.abc import Callable

import pytest

from tasks.cli import main
from tasks.core.idx import fashion_mnist_available


@pytest.fixture
def tiny_cls(tmp_path) -> list[str]:
    """Overrides for a seconds-long classification run on real images in ``tmp_path/runs``."""
    data = ["data.dataset=fashion_mnist", "data.limit_train=256", "data.limit_val=128"] if fashion_mnist_available() \
        else ["data.dataset=digits", "data.limit_train=256", "data.limit_val=128", "data.hflip=false"]
    return [*data, "data.batch_size=32", "backbone.name=resnet20", "backbone.options.width=0.5",
            "trainer.max_steps=8", "trainer.eval_every=4", "trainer.log_every=2", "trainer.progress=false",
            f"trainer.runs_dir={tmp_path / 'runs'}", "trainer.run_name=t", "trainer.threads=1"]


@pytest.fixture
def rsuite(capsys) -> Callable[..., tuple[int, str, str]]:
    """Run ``rsuite ARGV...`` in process; returns (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = 0
        try:
            main(list(argv))
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
