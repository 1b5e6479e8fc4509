"""Lexicon and n-gram LM decoding: hand-built posteriorgrams, a KenLM-loaded ARPA file, config routes."""

import math

import pytest
import torch

from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.speech import language as lang
from tasks.speech.config import SpeechConfig
from tasks.speech.decode import BeamDecoder, make_decoder
from tasks.speech.evaluate import evaluate
from tasks.speech.text import TOKENS, Vocabulary

pytest.importorskip("flashlight.lib.text")

VOCAB = Vocabulary(TOKENS)
TRAIN = ["feed the cat", "feed the cat now", "the cat sat", "cut the paper", "cut the rope", "feed the dog"]


def _posteriorgram(frames: list[dict[str, float]], rest: float = 0.01) -> torch.Tensor:
    """Logits ``(1, V, T)``: each frame gives some tokens probabilities (``-`` = blank), the rest share ``rest``."""
    logits = torch.full((1, len(VOCAB), len(frames)), math.log(rest / len(VOCAB)))
    for t, probs in enumerate(frames):
        for token, p in probs.items():
            logits[0, 0 if token == "-" else VOCAB.index[token], t] = math.log(p)
    return logits


def _spoken(text: str, ambiguous: dict[int, dict[str, float]] | None = None, rest: float = 0.01) -> torch.Tensor:
    """Clear frames for each character of ``text`` with blanks between, except the ``ambiguous`` characters."""
    frames: list[dict[str, float]] = [{"-": 1 - rest}]
    for i, ch in enumerate(text):
        frames.append((ambiguous or {}).get(i, {ch: 1 - rest}))
        frames.append({"-": 1 - rest})
    return _posteriorgram(frames, rest)


def _decode(decoder, logits: torch.Tensor) -> str:
    return decoder(logits, torch.tensor([logits.shape[-1]]))[0]


@pytest.fixture()
def language(tmp_path):
    """Lexicon and trigram ARPA of the TRAIN sentences."""
    return lang.build_language(TRAIN, tmp_path, order=3)


def test_lexicon_beam_writes_only_lexicon_words(language) -> None:
    lexicon, _ = language
    # "cat" heard with its vowel leaning to "s": the best path writes a word no lexicon has
    logits = _spoken("feed the cat", {10: {"s": 0.55, "a": 0.43}})
    greedy = make_decoder(SpeechConfig(), VOCAB)
    assert _decode(greedy, logits) == "feed the cst"
    assert _decode(BeamDecoder(VOCAB, lexicon=str(lexicon), beam_size=16), logits) == "feed the cat"
    assert set(_decode(BeamDecoder(VOCAB, lexicon=str(lexicon)), _spoken("cut the rope")).split()) <= \
        set(lang.read_lexicon_words(lexicon))


def test_the_last_word_is_written_without_a_final_boundary(language) -> None:
    # a trained model never emits a space after the last word; the lexicon search must still close it
    lexicon, lm = language
    confident = _spoken("feed the cat", rest=1e-15)
    for decoder in (BeamDecoder(VOCAB, lexicon=str(lexicon)), BeamDecoder(VOCAB, lexicon=str(lexicon), lm=str(lm))):
        assert _decode(decoder, confident) == "feed the cat"


def test_lm_picks_the_word_its_context_predicts(language) -> None:
    lexicon, lm = language
    # "feed the c?t": acoustically "cut" by a little; only "feed the cat" was ever said
    logits = _spoken("feed the cat", {10: {"u": 0.55, "a": 0.43}})
    no_lm = BeamDecoder(VOCAB, lexicon=str(lexicon), beam_size=16)
    with_lm = BeamDecoder(VOCAB, lexicon=str(lexicon), lm=str(lm), beam_size=16, lm_weight=1.0)
    assert _decode(no_lm, logits) == "feed the cut"
    assert _decode(with_lm, logits) == "feed the cat"
    # and clear acoustics still win over the LM's preference
    assert _decode(with_lm, _spoken("cut the cat")) == "cut the cat"


def test_kneser_ney_arpa_loads_in_kenlm_and_is_normalised(tmp_path) -> None:
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import create_word_dict, load_words

    sentences = [s.split() for s in TRAIN]
    arpa = lang.write_arpa(lang.kneser_ney(sentences, order=3), tmp_path / "lm.arpa")
    lexicon = lang.write_lexicon({w for s in sentences for w in s}, tmp_path / "lexicon.txt")
    words = lang.read_lexicon_words(lexicon)
    assert words == sorted(words) and "paper" in words
    assert (tmp_path / "lexicon.txt").read_text().splitlines()[0] == "cat c a t |"
    word_dict = create_word_dict(load_words(str(lexicon)))
    lm = KenLM(str(arpa), word_dict)

    def after(context: list[str]):
        state = lm.start(False)
        for w in context:
            state, _ = lm.score(state, word_dict.get_index(w))
        return state

    for context in ([], ["feed"], ["feed", "the"], ["the", "rope"], ["cat", "cat"]):
        state = after(context)
        total = sum(10 ** lm.score(state, word_dict.get_index(w))[1] for w in [*words, "<unk>"])
        assert total + 10 ** lm.finish(state)[1] == pytest.approx(1.0, abs=1e-4), context
    state = after(["feed", "the"])
    cat, paper = (lm.score(state, word_dict.get_index(w))[1] for w in ("cat", "paper"))
    assert cat > paper + 0.5


def test_options_route_corpus_and_user_files(tmp_path, speech_cache) -> None:
    cfg = load_config(SpeechConfig, None, ["data.num_train=20", "data.num_val=4", "model.decoder=beam",
                                           "model.lexicon=corpus", "model.lm=corpus"])
    texts = lang.training_texts(cfg)  # the embedded corpus's plan: no audio synthesised for this
    assert len(texts) == 20 and not list(speech_cache.glob("speech/*-train20-val4-*/wav"))
    lexicon, lm = lang.decoding_files(cfg)
    assert set(lang.read_lexicon_words(lexicon)) == {w for t in texts for w in t.split()}
    assert lm.endswith(".arpa") and lang.decoding_files(cfg) == (lexicon, lm)  # cached
    # a user's upper-case lexicon (LibriSpeech style, phoneme spellings) and an upper-case ARPA LM
    (tmp_path / "lex.txt").write_text("FEED F IY D\nTHE DH AH\nCAT K AE T\nCUT K AH T\n<unk> SPN\n")
    lang.write_arpa(lang.kneser_ney([s.upper().split() for s in TRAIN], order=2), tmp_path / "upper.arpa")
    user = load_config(SpeechConfig, None, ["model.decoder=beam", f"model.lexicon={tmp_path / 'lex.txt'}",
                                            f"model.lm={tmp_path / 'upper.arpa'}", "model.lm_weight=1.0"])
    logits = _spoken("feed the cat", {10: {"u": 0.55, "a": 0.43}})
    assert _decode(make_decoder(user, VOCAB), logits) == "feed the cat"
    for bad, needle in ((["model.lm=corpus"], "needs a lexicon"), (["model.lexicon=/nope.txt"], "does not exist"),
                        (["model.lexicon=corpus", "model.lm_order=0"], "lm_order")):
        with pytest.raises(UserError, match=needle):
            make_decoder(load_config(SpeechConfig, None, ["model.decoder=beam", *bad]), VOCAB)
    (tmp_path / "broken.arpa").write_text("not an arpa file\n")
    with pytest.raises(UserError, match="cannot load"):
        make_decoder(load_config(SpeechConfig, None, ["model.decoder=beam", f"model.lexicon={tmp_path / 'lex.txt'}",
                                                      f"model.lm={tmp_path / 'broken.arpa'}"]), VOCAB)


class _Emits(torch.nn.Module):
    """A fake acoustic model that emits fixed posteriorgrams, one per utterance."""

    def __init__(self, grams: list[torch.Tensor]) -> None:
        super().__init__()
        self.grams = grams

    def forward(self, feats: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(g.shape[-1] for g in self.grams)
        out = torch.full((len(self.grams), len(VOCAB), width), -20.0)
        out[:, 0] = 0.0
        for i, g in enumerate(self.grams):
            out[i, :, : g.shape[-1]] = g[0]
        return out, torch.full((len(self.grams),), width)


def test_evaluate_reports_beam_and_greedy_side_by_side(language, tmp_path) -> None:
    lexicon, lm = language
    refs = ["feed the cat", "cut the rope"]
    grams = [_spoken("feed the cat", {10: {"s": 0.55, "a": 0.43}}), _spoken("cut the rope")]
    targets = torch.nn.utils.rnn.pad_sequence([torch.tensor(VOCAB.encode(r)) for r in refs], batch_first=True)
    batch = (torch.zeros(2, 64, 30), torch.tensor([30, 30]), targets, torch.tensor([len(r) for r in refs]))
    cfg = load_config(SpeechConfig, None, ["model.decoder=beam", f"model.lexicon={lexicon}", f"model.lm={lm}"])
    metrics = evaluate(_Emits(grams), [batch], torch.device("cpu"), {"tokens": list(TOKENS)}, cfg, tmp_path)
    assert metrics["wer"] == 0.0 and metrics["cer"] == 0.0
    assert metrics["wer_greedy"] == pytest.approx(1 / 6) and metrics["cer_greedy"] == pytest.approx(1 / 24)
    assert "BEST PATH: feed the cst" in (tmp_path / "transcripts.txt").read_text()
