"""The character vocabulary of the CTC head: blank, space, apostrophe, a-z."""

from __future__ import annotations

import re

BLANK = "<b>"
TOKENS: tuple[str, ...] = (BLANK, " ", "'", *"abcdefghijklmnopqrstuvwxyz")

_DROP = re.compile(r"[^a-z' ]+")
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lower-case, punctuation and other symbols to spaces, single spaces: what the model can spell."""
    text = text.lower().replace("\u2019", "'")
    return _SPACES.sub(" ", _DROP.sub(" ", text)).strip()


class Vocabulary:
    """Maps normalised text to token ids and back; id 0 is the CTC blank."""

    def __init__(self, tokens: tuple[str, ...] | list[str] = TOKENS) -> None:
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def blank(self) -> int:
        return 0

    def encode(self, text: str) -> list[int]:
        """Token ids of ``normalize(text)`` (characters outside the vocabulary are dropped there)."""
        return [self.index[c] for c in normalize(text)]

    def decode(self, ids: list[int]) -> str:
        """Text of token ids (blanks skipped; no CTC collapsing, see :func:`ctc_collapse`)."""
        return "".join(self.tokens[i] for i in ids if i != self.blank)

    def ctc_collapse(self, ids: list[int]) -> str:
        """Greedy CTC rule: merge repeats, then drop blanks."""
        out, prev = [], None
        for i in ids:
            if i != prev and i != self.blank:
                out.append(self.tokens[i])
            prev = i
        return _SPACES.sub(" ", "".join(out)).strip()
