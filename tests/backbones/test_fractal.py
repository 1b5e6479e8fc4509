"""FractalNet: the expansion rule, joins, local/global drop-path, deepest-column evaluation, the plain analog."""

import pytest
import torch

import backbones
from backbones import diagnostics
from backbones.fractal import FractalBlock, FractalConv


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_count_of_the_cifar_net() -> None:
    # Larsson et al. 2017, Sec. 4: B = 5 blocks, C = 3 columns, 64, 128, 256, 512, 512 filters, conv3x3-BN-ReLU.
    # That architecture has 33.72M parameters; osmr/imgclsmob's fractalnet_cifar10 counts the same
    # (33,724,618 with its 512 x 10 classifier). The deepest column alone is 20 conv layers.
    with torch.device("meta"):
        model = backbones.create("fractalnet_cifar")
        plain = backbones.create("plain_fractalnet_cifar")
    assert _count(model) + 512 * 10 + 10 == 33_724_618
    assert sum(isinstance(m, FractalConv) for m in model.modules()) == 5 * 7  # 2^C - 1 convs per block
    assert sum(isinstance(m, FractalConv) for m in plain.modules()) == 5 * 4 == 20


def test_rows_follow_the_expansion_rule() -> None:
    block = FractalBlock(3, 8, columns=3)
    assert [block.ending_at(i) for i in range(4)] == [[2], [1, 2], [2], [0, 1, 2]]
    assert [sorted(row) for row in block.rows] == [["col2"], ["col1", "col2"], ["col2"], ["col0", "col1", "col2"]]
    four = FractalBlock(3, 8, columns=4)
    assert len(four.rows) == 8 and sum(len(r) for r in four.rows) == 15


def test_joins_are_means_of_the_columns_that_meet() -> None:
    torch.manual_seed(0)
    block = FractalBlock(3, 8, columns=3).eval()
    z = torch.randn(2, 3, 8, 8)
    r = block.rows
    with torch.no_grad():
        f2 = (r[1]["col1"](z) + r[1]["col2"](r[0]["col2"](z))) / 2  # f_2(z) = join(conv(conv(z)), conv(z))
        expected = (r[3]["col0"](z) + r[3]["col1"](f2) + r[3]["col2"](r[2]["col2"](f2))) / 3  # joins collapse
        assert torch.allclose(block(z), expected, atol=1e-6)
        # one column alone: its chain of convs
        assert torch.allclose(block(z, path=0), r[3]["col0"](z))
        assert torch.allclose(block(z, path=2), r[3]["col2"](r[2]["col2"](r[1]["col2"](r[0]["col2"](z)))))


def test_deepest_column_evaluation_and_training_are_separate() -> None:
    torch.manual_seed(0)
    model = backbones.create("fractalnet_cifar", width=0.125, blocks=3)
    x = torch.randn(2, 3, 16, 16)
    model.eval()
    full = model(x)[-1]
    model.fractal_column = "deepest"
    deepest = model(x)[-1]
    manual = x
    for i, name in enumerate(["block1", "block2", "block3"]):
        manual = getattr(model, name)(model.pool(manual) if i else manual, path=2)
    assert torch.allclose(deepest, manual) and not torch.allclose(deepest, full)
    model.train()  # training still runs the whole fractal (no drop-path configured)
    assert model.sample_path() is None


def test_global_drop_path_is_a_50_50_mix_of_single_columns_per_batch() -> None:
    model = backbones.create("fractalnet_cifar", width=0.125, blocks=2, global_drop=0.5).train()
    torch.manual_seed(0)
    paths = [model.sample_path() for _ in range(2000)]
    globals_ = [p for p in paths if p is not None]
    assert 0.45 < len(globals_) / len(paths) < 0.55
    assert {c: globals_.count(c) / len(globals_) for c in range(3)} == pytest.approx({0: 1 / 3, 1: 1 / 3, 2: 1 / 3},
                                                                                      abs=0.05)
    model.eval()
    assert all(model.sample_path() is None for _ in range(20))  # no sampling at evaluation


def test_a_global_batch_trains_one_column_in_every_block() -> None:
    torch.manual_seed(3)
    model = backbones.create("fractalnet_cifar", width=0.125, blocks=2, global_drop=0.99).train()
    model(torch.randn(2, 3, 8, 8))[-1].mean().backward()
    trained = {name.split(".")[2] for name, p in model.named_parameters() if p.grad is not None}
    assert len(trained) == 1  # one column (e.g. "col1") in both blocks


def test_local_drop_path_keeps_at_least_one_input_per_join() -> None:
    torch.manual_seed(0)
    block = FractalBlock(1, 1, columns=3).train()
    block.local_drop = 0.9
    inputs = [torch.full((1, 1, 1, 1), float(v)) for v in (1, 10, 100)]
    means = {float(block.join(inputs)) for _ in range(300)}
    subsets = {1.0, 10.0, 100.0, 5.5, 50.5, 55.0, 37.0}
    assert means <= subsets and {1.0, 10.0, 100.0} <= means  # mostly single survivors at rate 0.9
    block.eval()
    assert float(block.join(inputs)) == 37.0


def test_plain_analog_is_the_deepest_column_alone() -> None:
    full, plain = backbones.create("fractalnet_cifar", width=0.125), backbones.create("plain_fractalnet_cifar",
                                                                                      width=0.125)
    full_state, plain_state = full.state_dict(), plain.state_dict()
    assert set(plain_state) < set(full_state)
    assert all(".col2." in k for k in plain_state) and all(plain_state[k].shape == full_state[k].shape
                                                           for k in plain_state)
    # The fractal's deepest column, loaded into the plain net, computes the fractal's deepest-column output.
    plain.load_state_dict({k: full_state[k] for k in plain_state})
    full.eval().fractal_column = "deepest"
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(full(x)[-1], plain.eval()(x)[-1])


def test_four_blocks_four_columns_and_odd_sizes() -> None:
    model = backbones.create("fractalnet_cifar", blocks=4, columns=4, width=0.125, in_channels=1).eval()
    assert [f.stride for f in model.feature_info] == [1, 2, 4, 8]
    assert [f.shape[-1] for f in model(torch.randn(2, 1, 28, 28))] == [28, 14, 7, 4]
    assert sum(isinstance(m, FractalConv) for m in model.modules()) == 4 * 15


def test_dropout_per_block() -> None:
    model = backbones.create("fractalnet_cifar", width=0.125, dropout=[0.0, 0.1, 0.2, 0.3, 0.4])
    rates = [m.dropout.p if isinstance(m.dropout, torch.nn.Dropout) else 0.0
             for m in model.block5.modules() if isinstance(m, FractalConv)]
    assert rates == [0.4] * 7


@pytest.mark.parametrize(("options", "needle"), [
    ({"blocks": 6}, "blocks=6"), ({"columns": 0}, "columns=0"), ({"local_drop": 1.0}, "local_drop=1.0"),
    ({"global_drop": -0.1}, "global_drop=-0.1"), ({"fractal_column": "middle"}, "fractal_column='middle'"),
    ({"dropout": [0.1, 0.2]}, "dropout"), ({"columns": "3"}, "expected int")])
def test_option_errors_are_one_line(options: dict, needle: str) -> None:
    with pytest.raises(ValueError) as info:
        backbones.create("fractalnet_cifar", **options)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_gradient_norms_one_per_conv_unit_in_depth_order() -> None:
    torch.manual_seed(0)
    model = backbones.create("fractalnet_cifar", width=0.125, blocks=2)
    norms = diagnostics.gradient_norms(model, model(torch.randn(4, 3, 8, 8))[-1].square().mean())
    assert list(norms)[:3] == ["block1.rows.0.col2", "block1.rows.1.col1", "block1.rows.1.col2"]
    assert len(norms) == 14 and all(v > 0 for v in norms.values())
