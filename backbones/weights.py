"""Load torchvision-format ResNet weights from a local file (nothing is downloaded)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn


def load_torchvision_weights(model: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor],
                             *, strict: bool = True) -> nn.Module:
    """Copy a torchvision ``resnet*`` state dict into our ImageNet-style backbone.

    ``source`` is a path to a ``.pth`` file (loaded with ``weights_only=True``) or a state
    dict. The classifier (``fc.*``) is dropped: a backbone has no head. Loading is strict,
    so an architecture mismatch names the offending keys instead of silently half-loading.
    """
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise ValueError(f"weights file {path!r} does not exist; give the path to a local .pth file")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{path!r} is not a loadable state dict ({type(err).__name__}); "
                             "save it with torch.save(model.state_dict(), path)") from None
        if isinstance(state, Mapping) and "state_dict" in state:
            state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.startswith("fc.")}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        first = str(err).strip().splitlines()[-1].strip()
        raise ValueError(f"weights do not fit {type(model).__name__}: {first}; "
                         "create the backbone of the same depth and width") from None
    if strict and (result.missing_keys or result.unexpected_keys):
        missing = ", ".join(result.missing_keys[:4])
        unexpected = ", ".join(result.unexpected_keys[:4])
        raise ValueError(f"weights do not match {type(model).__name__}: missing [{missing}] "
                         f"unexpected [{unexpected}]; create the backbone of the same depth")
    return model
