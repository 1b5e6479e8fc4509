"""Backbone plugins: entry-point discovery (lazy, with origin), broken plugins, the example ReZero
plugin, and ``check_contract``'s one line per violation."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import backbones
from backbones.base import Backbone, FeatureInfo
from backbones.blocks import ResidualBlock
from backbones.testing import ContractError, check_contract
from tests.plugin_support import add_distribution, add_example_plugin, isolated_plugins

GROUP = "residual_suite.backbones"

TP_NETS = '''
from backbones import register
from backbones.vector import ResMLP


def register_all():
    register("tp_mlp", "vector", width=16, depth=2)(ResMLP)
'''


@pytest.fixture(autouse=True)
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with isolated_plugins(monkeypatch):
        yield


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def test_installed_plugin_is_loaded_only_when_a_name_is_not_built_in(tmp_path: Path, monkeypatch) -> None:
    distribution = add_example_plugin(tmp_path, monkeypatch)
    backbones.create("resnet20")  # a built-in name: no plugin is imported for it
    assert "rsuite_rezero" not in sys.modules
    model = backbones.create("rezero20")  # not built in: the installed plugins are loaded, then it is found
    assert "rsuite_rezero" in sys.modules and model.num_features == 64
    origin = backbones.entry("rezero20").origin
    assert (origin.kind, origin.name, origin.group) == ("entry_point", "rezero", GROUP)
    assert (origin.distribution, origin.version) == (distribution, "0.1.0")
    assert backbones.entry("resnet20").origin is None
    assert {"rezero20", "rezero_plain20", "rezero_resnet18", "rezero_plain18"} <= set(backbones.names("image"))


def test_a_callable_entry_point_registers_its_backbones(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "tp_nets.py").write_text(TP_NETS)
    add_distribution(tmp_path, "tp-nets", "2.1", {GROUP: {"tp": "tp_nets:register_all"}}, monkeypatch)
    assert "tp_mlp" in backbones.names("vector")
    assert backbones.entry("tp_mlp").origin.version == "2.1"
    assert backbones.create("tp_mlp")(torch.randn(3, 4))[-1].shape == (3, 16)


def test_broken_plugin_gives_one_warning_and_the_rest_keep_working(tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "tp_nets.py").write_text(TP_NETS)
    (tmp_path / "tp_broken.py").write_text("raise RuntimeError('boom: a bug in the plugin')\n")
    add_distribution(tmp_path, "tp-plugins", "1.0", {GROUP: {"broken": "tp_broken", "nets": "tp_nets:register_all"}},
                     monkeypatch)
    names = backbones.names()
    warnings = _warnings(capsys.readouterr().err)
    assert len(warnings) == 1
    assert "'broken' (tp-plugins 1.0)" in warnings[0] and "RuntimeError: boom" in warnings[0]
    assert {"resnet20", "resmlp", "tp_mlp"} <= set(names)  # built-ins and the working plugin
    backbones.create("resnet20")
    assert backbones.names() == names and _warnings(capsys.readouterr().err) == []  # tried once, warned once
    with pytest.raises(ValueError, match="unknown backbone 'nope'"):
        backbones.entry("nope")


def test_an_entry_point_naming_neither_module_nor_callable_is_a_broken_plugin(tmp_path: Path, monkeypatch,
                                                                             capsys) -> None:
    (tmp_path / "tp_nets.py").write_text(TP_NETS + "\nVERSION = '1'\n")
    add_distribution(tmp_path, "tp-odd", "1.0", {GROUP: {"odd": "tp_nets:VERSION"}}, monkeypatch)
    backbones.names()
    (warning,) = _warnings(capsys.readouterr().err)
    assert "'odd'" in warning and "name a module or a callable" in warning


def test_rezero_blocks_start_as_identity_and_still_learn(tmp_path: Path, monkeypatch) -> None:
    add_example_plugin(tmp_path, monkeypatch)
    torch.manual_seed(0)
    model = backbones.create("rezero20")
    blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
    alphas = [b.alpha for b in blocks]
    assert len(alphas) == 9 and all(a.item() == 0 and a.requires_grad for a in alphas)
    # alpha = 0: a block whose shortcut is the identity passes its (post-ReLU, so >= 0) input unchanged
    x = torch.rand(2, 16, 8, 8)
    assert torch.equal(model.layer1[0](x), x)
    # zero_init_last must not zero F as well: alpha gets a gradient from F(x) != 0
    sum(f.mean() for f in model(torch.randn(2, 3, 32, 32))).backward()
    assert all(a.grad is not None and a.grad.abs().item() > 0 for a in alphas)


def test_rezero_plain_twin_is_the_plain_net(tmp_path: Path, monkeypatch) -> None:
    add_example_plugin(tmp_path, monkeypatch)
    twin = backbones.create("rezero_plain20")
    assert not any("alpha" in k for k in twin.state_dict())
    assert twin.state_dict().keys() == backbones.create("plain20").state_dict().keys()


@pytest.mark.parametrize("name", ["rezero20", "rezero_plain20", "rezero_resnet18", "rezero_plain18"])
def test_example_plugin_honours_the_contract(name: str, tmp_path: Path, monkeypatch) -> None:
    add_example_plugin(tmp_path, monkeypatch)
    assert check_contract(name, (2, 3, 32, 32)) == []


def test_check_contract_reports_a_wrong_feature_info_in_one_line() -> None:
    model = backbones.create("resnet20", width=0.5)
    assert check_contract(model) == []
    model.feature_info[1] = FeatureInfo(99, 2, "layer2")
    with pytest.raises(ContractError) as err:
        check_contract(model)
    assert str(err.value) == ("CifarResNet: feature_info[1].channels=99 but stage 1 output has 16 channels")
    model.feature_info[1] = FeatureInfo(16, 4, "layer2")
    (line,) = check_contract(model, raises=False)
    assert "feature_info[1].stride=4" in line and "expected ceil(input / stride) = (8, 8)" in line


class _MissingStage(Backbone):
    """forward returns one stage output but feature_info describes two."""

    def __init__(self) -> None:
        super().__init__(3)
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.layer1 = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.feature_info = [FeatureInfo(8, 2, "layer1"), FeatureInfo(8, 2, "layer1")]
        self.stem_info = FeatureInfo(8, 1, "stem")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.layer1(self.stem(x))]


class _WorseStill(_MissingStage):
    """Also a num_features of its own, and strides that go down."""

    num_features = 7

    def __init__(self) -> None:
        super().__init__()
        self.feature_info = [FeatureInfo(8, 2, "layer1"), FeatureInfo(8, 1, "layer1")]


def test_check_contract_gives_one_line_per_violation() -> None:
    (line,) = check_contract(_MissingStage(), (2, 3, 16, 16), raises=False)
    assert line == "_MissingStage: forward(x) returned 1 stage outputs but feature_info describes 2"
    with pytest.raises(ContractError) as err:
        check_contract(_WorseStill(), (2, 3, 16, 16))
    lines = str(err.value).splitlines()  # what is declared is checked first: running it would only repeat these
    assert len(lines) == 2 and "strides [2, 1] must not decrease" in lines[0] and "num_features=7" in lines[1]


def test_check_contract_by_name_and_input_shape_errors() -> None:
    assert check_contract("resmlp") == []
    with pytest.raises(ValueError, match="not an image batch"):
        check_contract("resnet20", (2, 3, 32))
