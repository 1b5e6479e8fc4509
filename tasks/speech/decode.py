"""CTC decoding: greedy (best path), and beam search through torchaudio's flashlight-text decoder.

The beam search is lexicon-free, lexicon-constrained (only words of a lexicon can be written),
or lexicon + word n-gram LM (KenLM, ARPA or binary); see :mod:`tasks.speech.language` for
the lexicon and LM that ``corpus`` builds from the training transcripts.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator

import torch

from tasks.core.errors import UserError

from .config import SpeechConfig
from .language import decoding_files
from .text import Vocabulary, normalize

#: ``(logits (N, V, T), frames (N,)) -> one transcript per utterance``
Decoder = Callable[[torch.Tensor, torch.Tensor], list[str]]


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence C-level writes to stderr (file descriptor 2) for the duration of the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def greedy_decode(logits: torch.Tensor, frames: torch.Tensor, vocab: Vocabulary) -> list[str]:
    """Best path per utterance: argmax per frame, merge repeats, drop blanks. ``logits`` is ``(N, V, T)``."""
    best = logits.argmax(1).cpu()
    return [vocab.ctc_collapse(best[i, : int(n)].tolist()) for i, n in enumerate(frames.cpu())]


def close_last_word(emissions: torch.Tensor, frames: torch.Tensor, boundary: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Append one frame per utterance where only the word boundary can be emitted.

    Lexicon spellings end in the boundary token (``w o r d |``), but transcripts end without
    a space, so a CTC model never emits a boundary after the last word; the lexicon search
    would then leave the last word unfinished and silently drop it. The utterance's end is
    a word boundary by definition, and this frame says so. ``emissions``: log-probs ``(N, T, V)``.
    """
    n, t, v = emissions.shape
    out = emissions.new_full((n, t + 1, v), -1e4)
    out[:, :t] = emissions
    rows = torch.arange(n)
    out[rows, frames.long()] = -1e4
    out[rows, frames.long(), boundary] = 0.0
    return out, frames + 1


class BeamDecoder:
    """Beam search with ``torchaudio.models.decoder.ctc_decoder`` (flashlight-text, KenLM inside).

    ``lexicon`` and ``lm`` are file paths or ``None``; scores are the model's log-posteriors
    plus ``lm_weight`` times the LM's log-probability plus ``word_score`` per word.
    """

    def __init__(self, vocab: Vocabulary, *, lexicon: str | None = None, lm: str | None = None,
                 beam_size: int = 32, beam_threshold: float = 25.0, lm_weight: float = 2.0,
                 word_score: float = 0.0) -> None:
        try:
            from torchaudio.models.decoder import ctc_decoder
        except ImportError:
            raise UserError("model.decoder=beam needs flashlight-text: run `.venv/bin/pip install flashlight-text` "
                            "or use model.decoder=greedy") from None
        self.vocab, self.lexicon = vocab, lexicon is not None
        # flashlight's word separator token must not be a space; our space becomes "|"
        tokens = ["|" if t == " " else t for t in vocab.tokens]
        try:
            with _quiet_stderr():  # KenLM prints a progress bar and a hint about binary files on every load
                self.decoder = ctc_decoder(lexicon=lexicon, tokens=tokens, lm=lm, beam_size=beam_size,
                                           beam_threshold=beam_threshold, blank_token=vocab.tokens[vocab.blank],
                                           sil_token="|", lm_weight=lm_weight if lm else 0.0,
                                           word_score=word_score, unk_word="<unk>")
        except (RuntimeError, ValueError) as err:  # a malformed lexicon or LM file
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserError(f"the beam decoder cannot load lexicon {lexicon} / LM {lm} ({first}); "
                            "check the files (an ARPA or KenLM binary LM, a lexicon or word list)") from None

    def __call__(self, logits: torch.Tensor, frames: torch.Tensor) -> list[str]:
        emissions = logits.float().log_softmax(1).permute(0, 2, 1).contiguous().cpu()  # (N, T, V)
        frames = frames.cpu().to(torch.int32)
        if self.lexicon:
            emissions, frames = close_last_word(emissions, frames, self.vocab.index[" "])
        hyps = self.decoder(emissions, frames)
        texts = []
        for nbest in hyps:
            if not nbest:  # every hypothesis was pruned: nothing to write
                texts.append("")
            elif self.lexicon:  # words as the lexicon writes them (an upper-case LM's lexicon too)
                texts.append(normalize(" ".join(nbest[0].words)))
            else:
                texts.append(self.vocab.ctc_collapse(nbest[0].tokens.tolist()))
        return texts


def make_decoder(cfg: SpeechConfig, vocab: Vocabulary, decoder: str | None = None) -> Decoder:
    """The decoder ``model.decoder`` names (or ``decoder``, e.g. ``"greedy"`` for the side-by-side metrics)."""
    m = cfg.model
    kind = decoder or m.decoder
    if kind == "greedy":
        return lambda logits, frames: greedy_decode(logits, frames, vocab)
    if kind == "beam":
        lexicon, lm = decoding_files(cfg)
        return BeamDecoder(vocab, lexicon=lexicon, lm=lm, beam_size=m.beam_size, beam_threshold=m.beam_threshold,
                           lm_weight=m.lm_weight, word_score=m.word_score)
    raise UserError(f"model.decoder={kind!r} is not valid; choose greedy or beam")
