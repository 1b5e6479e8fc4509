"""What the decoder knows about the language: a lexicon and a word n-gram LM from training transcripts.

``model.lexicon=corpus`` and ``model.lm=corpus`` mean "built from the run's own training
transcripts": every training word spelled letter by letter (the lexicon file format of
flashlight's ``ctc_decoder``), and an interpolated Kneser-Ney word n-gram written as an ARPA
file, which the KenLM inside flashlight-text loads like any user's LM. Both are written once
into the suite's cache (``speech/language/``, named by a hash of the transcripts) and reused.

Why estimate here: the ``kenlm`` wheel builds on this machine but carries only KenLM's query
side; its estimator (``lmplz``) is a separate C++ program that needs Boost. A few thousand
template sentences need only an exact count-based estimate, so this module counts n-grams and
applies Chen & Goodman's (1998) interpolated Kneser-Ney with one discount per order; decoding
and LM queries stay in flashlight/KenLM.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.core.cache import cache_dir
from tasks.core.errors import UserError

from .text import normalize

if TYPE_CHECKING:
    from .config import SpeechConfig

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
CORPUS = "corpus"  # the value of model.lexicon / model.lm that means "from the training transcripts"


def spell(word: str) -> list[str]:
    """A word's tokens in the decoder's lexicon: its letters, then the word boundary ``|``."""
    return [*word, "|"]


def write_lexicon(words: Iterable[str], path: str | Path) -> Path:
    """One ``word w o r d |`` line per distinct word (sorted), written atomically."""
    lines = [f"{w} {' '.join(spell(w))}" for w in sorted(set(words)) if w]
    return _write_atomic(Path(path), "\n".join(lines) + "\n")


def read_lexicon_words(path: str | Path) -> list[str]:
    """The words of a lexicon or word-list file (first field of each non-empty line)."""
    return [line.split()[0] for line in Path(path).read_text().splitlines() if line.strip()]


def user_lexicon(path: str | Path) -> Path:
    """A user's lexicon or word list, re-spelled in the model's characters (cached).

    Only the words are read: a lexicon's spellings may be phonemes or upper-case letters,
    while a character CTC model spells ``normalize(word)``. The word itself is kept as
    written, so it still matches the entries of an upper-case LM (LibriSpeech's); output is
    normalised afterwards. Markers (``<unk>``) and words that normalise to nothing are skipped.
    """
    source = Path(path)
    digest = hashlib.sha1(source.read_bytes()).hexdigest()[:12]
    target = cache_dir("speech", "language") / f"user-lexicon-{digest}.txt"
    if not target.is_file():
        words = [w for w in read_lexicon_words(source) if not (w.startswith("<") and w.endswith(">"))]  # <unk>, <s>
        lines = {f"{w} {' '.join(spell(normalize(w).replace(' ', '')))}" for w in words
                 if normalize(w).replace(' ', '')}
        if not lines:
            raise UserError(f"{source} holds no words the model can spell (a-z, '); give a lexicon or word list")
        _write_atomic(target, "\n".join(sorted(lines)) + "\n")
    return target


def _discount(counts: Counter) -> float:
    """Ney's absolute discount ``n1 / (n1 + 2 n2)`` from the counts-of-counts of one order."""
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    return n1 / (n1 + 2 * n2) if n1 and n2 else 0.5


def kneser_ney(sentences: Sequence[Sequence[str]], order: int = 3) -> dict[int, dict[tuple[str, ...],
                                                                                       tuple[float, float]]]:
    """Interpolated Kneser-Ney n-gram model: ``{n: {ngram: (log10 prob, log10 backoff)}}``.

    In ARPA form a listed n-gram carries the interpolated probability and a history its
    interpolation weight as back-off, so KenLM's back-off rule reproduces the interpolated
    model exactly. The highest order uses raw counts, lower orders continuation counts
    (how many distinct words precede the n-gram), except n-grams that start at ``<s>``,
    which have no left context. The unigram level interpolates with a uniform distribution
    over the vocabulary and ``<unk>``.
    """
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    raw: dict[int, Counter] = {n: Counter() for n in range(1, order + 1)}
    for words in sentences:
        padded = [BOS, *words, EOS]
        for n in range(1, order + 1):
            for i in range(len(padded) - n + 1):
                gram = tuple(padded[i: i + n])
                if gram != (BOS,):
                    raw[n][gram] += 1
    # adjusted counts: continuation counts below the top order
    adjusted: dict[int, Counter] = {order: raw[order]}
    for n in range(order - 1, 0, -1):
        left = Counter(gram[1:] for gram in raw[n + 1])
        adjusted[n] = Counter({g: (c if g[0] == BOS else left.get(g, c)) for g, c in raw[n].items()})
    vocab = {g[0] for g in raw[1]} | {UNK}
    model: dict[int, dict[tuple[str, ...], tuple[float, float]]] = {n: {} for n in range(1, order + 1)}
    probs: dict[tuple[str, ...], float] = {}
    gammas: dict[tuple[str, ...], float] = {}
    for n in range(1, order + 1):
        counts, d = adjusted[n], _discount(adjusted[n])
        totals: dict[tuple[str, ...], float] = defaultdict(float)
        followers: dict[tuple[str, ...], int] = defaultdict(int)
        for gram, c in counts.items():
            totals[gram[:-1]] += c
            followers[gram[:-1]] += 1
        for history, total in totals.items():
            gammas[history] = d * followers[history] / total
        grams = list(counts) + ([(UNK,)] if n == 1 else [])
        for gram in grams:
            history, c = gram[:-1], counts.get(gram, 0)
            lower = 1.0 / len(vocab) if n == 1 else _prob(gram[1:], probs, gammas)
            probs[gram] = max(c - d, 0.0) / totals[history] + gammas[history] * lower
    for n in range(1, order + 1):
        for gram in list(adjusted[n]) + ([(UNK,)] if n == 1 else []):
            backoff = gammas.get(gram, 1.0) if n < order else 1.0
            model[n][gram] = (math.log10(probs[gram]), math.log10(backoff))
    model[1][(BOS,)] = (-99.0, math.log10(gammas.get((BOS,), 1.0)))  # never predicted, only a history
    return model


def _prob(gram: tuple[str, ...], probs: dict[tuple[str, ...], float], gammas: dict[tuple[str, ...], float]) -> float:
    """The interpolated probability of ``gram``: listed, or the history's weight times the shorter n-gram's."""
    if gram in probs:
        return probs[gram]
    if len(gram) == 1:
        return probs[(UNK,)]
    return gammas.get(gram[:-1], 1.0) * _prob(gram[1:], probs, gammas)


def write_arpa(model: dict[int, dict[tuple[str, ...], tuple[float, float]]], path: str | Path) -> Path:
    """The model in ARPA text format (KenLM and every other toolkit read it)."""
    order = max(model)
    lines = ["", "\\data\\", *(f"ngram {n}={len(model[n])}" for n in range(1, order + 1)), ""]
    for n in range(1, order + 1):
        lines.append(f"\\{n}-grams:")
        for gram, (logp, backoff) in sorted(model[n].items()):
            tail = f"\t{backoff:.6f}" if n < order else ""
            lines.append(f"{logp:.6f}\t{' '.join(gram)}{tail}")
        lines.append("")
    lines.append("\\end\\")
    return _write_atomic(Path(path), "\n".join(lines) + "\n")


def _write_atomic(path: Path, text: str) -> Path:
    """Write then rename: two processes building the same cached file never see half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def build_language(texts: Sequence[str], folder: str | Path, order: int) -> tuple[Path, Path]:
    """``lexicon.txt`` and ``lm-<order>gram-<hash>.arpa`` of ``texts`` in ``folder`` (made once, then reused).

    The file names carry a hash of the transcripts, so a changed training set never meets a
    stale cached file.
    """
    folder = Path(folder)
    digest = hashlib.sha1("\n".join(texts).encode()).hexdigest()[:12]
    lexicon, lm = folder / f"lexicon-{digest}.txt", folder / f"lm-{order}gram-{digest}.arpa"
    sentences = [t.split() for t in texts if t.strip()]
    if not lexicon.is_file():
        write_lexicon((w for s in sentences for w in s), lexicon)
    if not lm.is_file():
        write_arpa(kneser_ney(sentences, order), lm)
    return lexicon, lm


_RESOLVED: dict[tuple, tuple[Path, Path]] = {}


def training_texts(cfg: SpeechConfig) -> list[str]:
    """The normalised training transcripts of ``cfg``'s dataset.

    The embedded corpus's come from its seeded plan, so no audio is needed (``rsuite predict``
    on another machine does not re-synthesise the corpus); other datasets are read as training reads them.
    """
    from .data import resolved, sources

    cfg = resolved(cfg)
    if cfg.data.dataset == "espeak":
        from .synth import plan

        specs = plan(cfg.seed, cfg.data.num_train, cfg.data.num_val)
        return [normalize(s["text"]) for s in specs if s["split"] == "train"]
    return [u.text for u in sources(cfg, "train")[0]]


def corpus_language(cfg: SpeechConfig) -> tuple[Path, Path]:
    """Lexicon and ARPA LM of ``cfg``'s training transcripts, cached under ``<cache>/speech/language/``.

    Not inside the corpus folder itself: the corpus is renamed into place whole when it is
    synthesised, and the files here, named by a hash of the transcripts, can exist before it.
    """
    from .data import resolved

    cfg = resolved(cfg)
    d = cfg.data
    key = (d.dataset, d.root, d.train_set, d.num_train, d.num_val, d.sample_rate, cfg.seed, cfg.model.lm_order)
    if key not in _RESOLVED or not all(p.is_file() for p in _RESOLVED[key]):
        _RESOLVED[key] = build_language(training_texts(cfg), cache_dir("speech", "language"), cfg.model.lm_order)
    return _RESOLVED[key]


def decoding_files(cfg: SpeechConfig) -> tuple[str | None, str | None]:
    """``(lexicon, lm)`` paths for ``model.lexicon`` / ``model.lm`` (``None`` = not used).

    ``corpus`` builds them from the training transcripts; any other non-empty value must be
    an existing file. An LM without a lexicon is refused: the n-gram scores words, and
    lexicon-free search has none to give it.
    """
    m = cfg.model
    if m.lm and not m.lexicon:
        raise UserError(f"model.lm={m.lm!r} needs a lexicon: set model.lexicon=corpus or a lexicon file")
    for option, value in (("model.lexicon", m.lexicon), ("model.lm", m.lm)):
        if value and value != CORPUS and not Path(value).is_file():
            raise UserError(f"{option}={value!r} does not exist; give an existing file, `corpus` "
                            "(built from the training transcripts) or leave it empty")
    if m.lm_order < 1:
        raise UserError(f"model.lm_order={m.lm_order} is not valid; use 1 or more (3 = trigram)")
    built = corpus_language(cfg) if CORPUS in (m.lexicon, m.lm) else (None, None)
    lexicon = str(built[0]) if m.lexicon == CORPUS else (str(user_lexicon(m.lexicon)) if m.lexicon else None)
    lm = str(built[1]) if m.lm == CORPUS else (m.lm or None)
    return lexicon, lm
