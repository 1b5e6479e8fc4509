"""Registry: option names and types are checked up front; builders' own errors pass through unchanged."""

from collections.abc import Iterator, Sequence

import pytest
import torch

import backbones
from backbones import registry


@pytest.fixture
def temporary_builders() -> Iterator[list[str]]:
    """Register test-only builders, and remove them again so ``names()`` stays the real set."""
    added: list[str] = []
    yield added
    for name in added:
        registry._REGISTRY.pop(name, None)


def _register(added: list[str], name: str, builder) -> None:
    backbones.register(name, "vector")(builder)
    added.append(name)


def test_internal_type_error_propagates_unchanged(temporary_builders: list[str]) -> None:
    def broken(*, width: int = 4) -> torch.nn.Module:
        return torch.nn.Linear(width, None)  # a bug inside the builder, not the caller's mistake

    _register(temporary_builders, "test_broken_builder", broken)
    with pytest.raises(TypeError) as info:
        backbones.create("test_broken_builder", width=8)
    assert not isinstance(info.value, ValueError) and "option" not in str(info.value)


def test_builder_value_errors_pass_through(temporary_builders: list[str]) -> None:
    def picky(*, depth: int = 2) -> torch.nn.Module:
        if depth > 3:
            raise ValueError(f"depth={depth} is too deep for this test net")
        return torch.nn.Identity()

    _register(temporary_builders, "test_picky_builder", picky)
    with pytest.raises(ValueError, match="too deep"):
        backbones.create("test_picky_builder", depth=5)


def test_required_option_left_out_is_a_value_error(temporary_builders: list[str]) -> None:
    def needs_width(*, width: int) -> torch.nn.Module:
        return torch.nn.Linear(width, width)

    _register(temporary_builders, "test_needs_width", needs_width)
    with pytest.raises(ValueError, match="width"):
        backbones.create("test_needs_width")
    assert isinstance(backbones.create("test_needs_width", width=3), torch.nn.Linear)


def test_container_hints_accept_lists_and_check_elements(temporary_builders: list[str]) -> None:
    def sized(*, sizes: Sequence[int] = (1, 2), pair: tuple[int, int] = (3, 4)) -> torch.nn.Module:
        return torch.nn.Identity()

    _register(temporary_builders, "test_sized", sized)
    backbones.create("test_sized", sizes=[5, 6, 7], pair=[1, 2])  # YAML gives lists
    for bad in ({"sizes": "abc"}, {"sizes": [1, "x"]}, {"pair": [1, 2, 3]}):
        with pytest.raises(ValueError, match="expected"):
            backbones.create("test_sized", **bad)


@pytest.mark.parametrize(
    ("name", "options", "needle"),
    [
        ("resnet18", {"widht": 2.0}, "does not take option 'widht'"),
        ("resnet18", {"width": "wide"}, "option width='wide' is a str; expected float"),
        ("resnet20", {"zero_init_last": "yes"}, "expected bool"),
        ("resnet50", {"in_channels": 3.5}, "expected int"),
        ("resnet50", {"attention": 1}, "expected str | None"),
        ("quartznet_small", {"stride": "2"}, "expected int"),
        ("resmlp", {"depth": [4]}, "expected int"),
    ],
)
def test_wrong_option_name_or_type_is_a_one_line_value_error(name: str, options: dict, needle: str) -> None:
    with pytest.raises(ValueError) as info:
        backbones.create(name, **options)
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_valid_values_of_compatible_types_are_accepted() -> None:
    # ints for floats, "1/L" for the scale, None for optional options
    assert backbones.create("resnet20", width=1, residual_scale="1/L", attention=None).num_features == 64
    assert backbones.create("quartznet_small", width=1, stride=1).feature_info[-1].stride == 1
