"""CTC decoding: greedy (best path), and beam search through torchaudio's flashlight-text decoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tasks.core.errors import UserError

from .config import ModelConfig
from .text import Vocabulary


def greedy_decode(logits: torch.Tensor, frames: torch.Tensor, vocab: Vocabulary) -> list[str]:
    """Best path per utterance: argmax per frame, merge repeats, drop blanks. ``logits`` is ``(N, V, T)``."""
    best = logits.argmax(1).cpu()
    return [vocab.ctc_collapse(best[i, : int(n)].tolist()) for i, n in enumerate(frames.cpu())]


class BeamDecoder:
    """Lexicon-free (or lexicon + KenLM) beam search with ``torchaudio.models.decoder.ctc_decoder``."""

    def __init__(self, cfg: ModelConfig, vocab: Vocabulary) -> None:
        try:
            from torchaudio.models.decoder import ctc_decoder
        except ImportError:
            raise UserError("model.decoder=beam needs flashlight-text: run `.venv/bin/pip install flashlight-text` "
                            "or use model.decoder=greedy") from None
        for option, value in (("model.lexicon", cfg.lexicon), ("model.kenlm", cfg.kenlm)):
            if value and not Path(value).is_file():
                raise UserError(f"{option}={value!r} does not exist; give an existing file or leave it empty")
        self.vocab = vocab
        # flashlight's word separator token must not be a space; our space becomes "|"
        tokens = ["|" if t == " " else t for t in vocab.tokens]
        self.decoder = ctc_decoder(lexicon=cfg.lexicon or None, tokens=tokens, lm=cfg.kenlm or None,
                                   beam_size=cfg.beam_size, blank_token=vocab.tokens[vocab.blank],
                                   sil_token="|", lm_weight=cfg.lm_weight if cfg.kenlm else 0.0,
                                   word_score=cfg.word_score, unk_word="<unk>")
        self.lexicon = bool(cfg.lexicon)

    def __call__(self, logits: torch.Tensor, frames: torch.Tensor) -> list[str]:
        emissions = logits.float().log_softmax(1).permute(0, 2, 1).contiguous().cpu()  # (N, T, V)
        hyps = self.decoder(emissions, frames.cpu().to(torch.int32))
        texts = []
        for nbest in hyps:
            best = nbest[0]
            if self.lexicon:
                texts.append(" ".join(best.words))
            else:
                texts.append(self.vocab.ctc_collapse(best.tokens.tolist()))
        return texts


def make_decoder(cfg: ModelConfig, vocab: Vocabulary) -> Any:
    """A callable ``(logits (N, V, T), frames (N,)) -> list[str]`` for ``model.decoder``."""
    if cfg.decoder == "greedy":
        return lambda logits, frames: greedy_decode(logits, frames, vocab)
    if cfg.decoder == "beam":
        return BeamDecoder(cfg, vocab)
    raise UserError(f"model.decoder={cfg.decoder!r} is not valid; choose greedy or beam")
