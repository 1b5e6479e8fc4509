"""Plain vs residual at depth: the seeds' gradient argument, measured at initialisation.

Minimal CIFAR nets + a linear head, cross-entropy on a fixed random batch, training mode
(batch statistics), fixed seeds. Measured on CPU with this exact setup (ratio of the
gradient norm of the first 3x3 conv to the last, without zero-init):

    resnet56 44, plain56 4.3e3, resnet110 129, plain110 1.0e7

With batch norm, a deep *plain* net's gradients explode toward the input, by orders of
magnitude more than a residual net's of the same depth; zero-initialising the last norm of
each branch makes every residual block start as the identity, and the per-block ratio
falls near 1 (0.2-0.4 measured).
"""

import pytest
import torch

import backbones
from backbones import diagnostics
from backbones.adapters import Classifier


def _backward(name: str, **options: object) -> Classifier:
    torch.manual_seed(0)
    model = Classifier(backbones.create(name, **options), 10).train()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (16,), generator=g)
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    return model


def _conv_ratio(name: str, **options: object) -> float:
    return diagnostics.first_last_ratio(diagnostics.conv_gradient_norms(_backward(name, **options)))


def test_plain56_gradients_explode_toward_the_input_resnet56_do_not() -> None:
    res = _conv_ratio("resnet56", zero_init_last=False)
    plain = _conv_ratio("plain56")
    assert 5 < res < 150  # measured 44
    assert plain > 1000  # measured 4.3e3
    assert plain > 30 * res


def test_plain110_explodes_by_orders_of_magnitude() -> None:
    res = _conv_ratio("resnet110", zero_init_last=False)
    plain = _conv_ratio("plain110")
    assert res < 500  # measured 129
    assert plain > 1e5  # measured 1.0e7
    assert plain > 1e3 * res


@pytest.mark.parametrize("name", ["resnet56", "resnet110"])
def test_zero_init_last_balances_block_gradients(name: str) -> None:
    norms = list(diagnostics.gradient_norms(_backward(name)).values())
    assert len(norms) == {"resnet56": 27, "resnet110": 54}[name]
    assert 0.1 < diagnostics.first_last_ratio(norms) < 2.0  # measured 0.31 and 0.23


def test_gradient_norms_reads_loss_and_activation_stats_cover_every_block() -> None:
    torch.manual_seed(0)
    model = Classifier(backbones.create("resnet20"), 10)
    x = torch.randn(4, 3, 32, 32)
    norms = diagnostics.gradient_norms(model, model(x).logsumexp(-1).mean())
    assert list(norms) == [n for n, _ in diagnostics.residual_blocks(model)] and len(norms) == 9
    stats = diagnostics.activation_stats(model, x)
    assert list(stats) == list(norms)
    assert all(s["rms"] > 0 and 0 <= s["zeros"] <= 1 for s in stats.values())


def test_plot_gradient_norms_writes_png(tmp_path) -> None:
    path = diagnostics.plot_gradient_norms({"a": [1.0, 0.5], "b": [10.0, 0.1]}, str(tmp_path / "g.png"))
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
