"""The bad-file policy: an unreadable sample is skipped with a counted warning, or is an error.

Real datasets hold the odd truncated JPEG, zero-byte PNG or corrupt FLAC. Checking every file
up front costs a full pass over the data, so files are checked when first read: the loader
gets the next readable sample instead, and stderr names the file once with a running count.
``data.strict=true`` turns the first unreadable file into a one-line error. Either way a run
never dies mid-epoch with a traceback from inside PIL or libsndfile.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol, runtime_checkable

from torch.utils.data import Dataset, Subset
from torchvision.datasets import DatasetFolder

from .errors import UserError

#: what decoders raise on a bad file: PIL (OSError, SyntaxError for broken chunks), torchvision's
#: decode_image and libsndfile (RuntimeError), truncated streams (EOFError)
READ_ERRORS = (OSError, RuntimeError, SyntaxError, EOFError)
MAX_CONSECUTIVE = 32  # this many unreadable samples in a row means the data, not a file, is broken


@runtime_checkable
class NamesSources(Protocol):
    """A dataset that can say which file a sample comes from (for the warning)."""

    def source(self, index: int) -> str: ...


def source_of(dataset: Dataset, index: int) -> str:
    """The file behind ``dataset[index]`` when the dataset knows it, else the index."""
    if isinstance(dataset, Subset):
        return source_of(dataset.dataset, int(dataset.indices[index]))
    if isinstance(dataset, NamesSources):
        return dataset.source(index)
    if isinstance(dataset, DatasetFolder):  # torchvision's ImageFolder
        return str(dataset.samples[index][0])
    return f"sample {index}"


class SkipUnreadable(Dataset):
    """``dataset`` with the bad-file policy applied (see the module docstring)."""

    def __init__(self, dataset: Dataset, split: str, strict: bool = False) -> None:
        self.dataset, self.split, self.strict = dataset, split, strict
        self.skipped: set[int] = set()

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        n = len(self)
        for attempt in range(min(n, MAX_CONSECUTIVE)):
            i = (index + attempt) % n
            try:
                return self.dataset[i]
            except UserError:
                raise
            except READ_ERRORS as err:
                self._bad(i, err)
        raise UserError(f"{min(n, MAX_CONSECUTIVE)} samples in a row of the {self.split} set cannot be read "
                        f"(last: {source_of(self.dataset, i)}); check data.root")

    def _bad(self, index: int, err: BaseException) -> None:
        where, why = source_of(self.dataset, index), (str(err).strip().splitlines() or [type(err).__name__])[0]
        if self.strict:
            raise UserError(f"{where} cannot be read ({why[:120]}); fix or remove it, or set data.strict=false "
                            "to skip unreadable files")
        if index not in self.skipped:
            self.skipped.add(index)
            print(f"warning: skipped unreadable {where} ({why[:120]}); {len(self.skipped)} skipped in the "
                  f"{self.split} set so far (data.strict=true makes this an error)", file=sys.stderr)
