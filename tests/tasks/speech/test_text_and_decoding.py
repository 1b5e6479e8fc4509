"""Vocabulary, greedy and beam CTC decoding, CTC lengths after striding, WER/CER plumbing."""

import pytest
import torch

from tasks.core.config import load_config
from tasks.speech.config import SpeechConfig
from tasks.speech.decode import greedy_decode, make_decoder
from tasks.speech.evaluate import evaluate
from tasks.speech.model import CTCModel, build_model, ctc_loss
from tasks.speech.text import TOKENS, Vocabulary, normalize

from .conftest import TINY_MODEL

VOCAB = Vocabulary(TOKENS)


def test_vocabulary_round_trip_and_normalisation() -> None:
    text = "don't call four two at noon"
    ids = VOCAB.encode(text)
    assert 0 not in ids and len(ids) == len(text)
    assert VOCAB.decode(ids) == text
    assert normalize("  Don\u2019t  STOP, 42 now!") == "don't stop now"
    assert len(VOCAB) == 29 and VOCAB.tokens[0] == "<b>" and VOCAB.blank == 0


def _one_hot(path: str) -> torch.Tensor:
    """Logits ``(1, V, T)`` whose argmax spells ``path`` (``-`` = blank)."""
    ids = [0 if c == "-" else VOCAB.index[c] for c in path]
    logits = torch.full((1, len(VOCAB), len(ids)), -5.0)
    logits[0, ids, torch.arange(len(ids))] = 5.0
    return logits


def test_greedy_decoding_of_a_hand_made_matrix() -> None:
    # repeats merge, a blank separates a real double letter, blanks and edge spaces vanish
    logits = _one_hot("--hh-e-ll-ll-oo  --")
    assert greedy_decode(logits, torch.tensor([logits.shape[-1]]), VOCAB) == ["hello"]
    # frames beyond the utterance's length are ignored
    assert greedy_decode(logits, torch.tensor([6]), VOCAB) == ["he"]


def test_beam_decoder_agrees_with_greedy_on_a_peaked_matrix() -> None:
    pytest.importorskip("flashlight.lib.text")
    logits = _one_hot("-cc-aa-t- -s-a-t-")
    beam = make_decoder(load_config(SpeechConfig, None, ["model.decoder=beam", "model.beam_size=8"]), VOCAB)
    assert beam(logits, torch.tensor([logits.shape[-1]])) == ["cat sat"]


def test_output_lengths_after_striding_match_ctc_inputs() -> None:
    cfg = load_config(SpeechConfig, None, TINY_MODEL)
    model: CTCModel = build_model(cfg, {"in_channels": 64, "tokens": list(TOKENS)}).eval()
    frames = torch.tensor([101, 64, 37])
    feats = torch.randn(3, 64, 101)
    with torch.no_grad():
        logits, out = model(feats, frames)
        assert logits.shape[-1] == int(out.max())
        for i, n in enumerate(frames):  # each utterance alone yields exactly its CTC input length
            alone, _ = model(feats[i: i + 1, :, : int(n)], frames[i: i + 1])
            assert alone.shape[-1] == int(out[i])
    assert out.tolist() == [51, 32, 19]  # stride 2, ceil
    targets = torch.randint(1, len(VOCAB), (3, 10))
    assert torch.isfinite(ctc_loss(logits, out, targets, torch.tensor([10, 8, 5])))


class _Spells(torch.nn.Module):
    """A fake acoustic model whose greedy output is fixed text, one per utterance."""

    def __init__(self, texts: list[str]) -> None:
        super().__init__()
        self.texts = texts

    def forward(self, feats: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        paths = [_one_hot("-".join(t) + "-" * 40) for t in self.texts]
        width = max(p.shape[-1] for p in paths)
        out = torch.full((len(paths), len(VOCAB), width), -5.0)
        out[:, 0] = 5.0
        for i, p in enumerate(paths):
            out[i, :, : p.shape[-1]] = p[0]
        return out, torch.full((len(paths),), width)


def test_wer_and_cer_on_known_strings() -> None:
    refs = ["the cat sat", "call one two"]
    hyps = ["the cat sit", "call one two"]
    targets = torch.nn.utils.rnn.pad_sequence([torch.tensor(VOCAB.encode(r)) for r in refs], batch_first=True)
    batch = (torch.zeros(2, 64, 50), torch.tensor([50, 50]), targets, torch.tensor([len(r) for r in refs]))
    metrics = evaluate(_Spells(hyps), [batch], torch.device("cpu"), {"tokens": list(TOKENS)}, SpeechConfig())
    assert metrics["wer"] == pytest.approx(1 / 6)  # one substituted word of six
    assert metrics["cer"] == pytest.approx(1 / 23)  # one substituted character of 23
    assert metrics["utterances"] == 2
